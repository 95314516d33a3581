"""The model shipped inside the package designs splice junctions from the CLI with no training."""

from __future__ import annotations

import json

from Bio import SeqIO
from typer.testing import CliRunner

from bioseq.cli import app
from bioseq.design import FlowModel
from bioseq.design.pretrained import ASSETS, resolve_model, shipped_models


def test_list_models_names_the_shipped_splice_model():
    assert "splice" in shipped_models()
    r = CliRunner().invoke(app, ["design", "--list-models"])
    assert r.exit_code == 0 and r.output.splitlines()[0].startswith("splice\t")
    card = (ASSETS / "splice" / "README.md").read_text()
    assert "GT" in card and "splice_uci" in card and "2,000 AdamW steps" in card  # data, steps, metrics
    cfg = json.loads((ASSETS / "splice" / "config.json").read_text())
    assert cfg["class_names"] == ["EI", "IE", "N"] and cfg["seq_len"] == 60
    size = sum(p.stat().st_size for p in (ASSETS / "splice").iterdir())
    assert size < 4_000_000  # a few MB at most


def test_shipped_model_designs_donors_and_acceptors(tmp_path):
    """Donor designs carry GT right after the exon (0-based 30-31), acceptor designs AG right
    before it (28-29), as 99% of the real junctions do."""
    model = FlowModel.from_pretrained(resolve_model("splice"))
    assert model.num_classes == 3
    for cls, pos, dinuc in (("EI", 30, "GT"), ("IE", 28, "AG")):
        out = tmp_path / f"{cls}.fa"
        r = CliRunner().invoke(app, ["design", "--model", "splice", "--class", cls, "--n", "40", "--guidance", "3",
                                     "--steps", "50", "-o", str(out)])
        assert r.exit_code == 0, r.output
        seqs = [str(rec.seq) for rec in SeqIO.parse(out, "fasta")]
        assert len(seqs) == 40 and all(len(s) == 60 for s in seqs)
        rate = sum(s[pos : pos + 2] == dinuc for s in seqs) / len(seqs)
        assert rate >= 0.85, f"{cls}: {dinuc} in {rate:.2f} of designs"
