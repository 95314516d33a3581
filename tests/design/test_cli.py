"""``bioseq design`` writes valid FASTA atomically and fails clearly on bad input."""

from __future__ import annotations

import pytest
import torch
from Bio import SeqIO
from typer.testing import CliRunner

from bioseq.cli import app
from bioseq.design import DilatedCNN, DirichletPath, FlowModel


def _model(tmp_path):
    torch.manual_seed(0)
    m = FlowModel(DirichletPath(K=4), DilatedCNN(K=4, d=16, num_classes=3), seq_len=20, class_names=["EI", "IE", "N"])
    return m.save_pretrained(tmp_path / "model")


def test_cli_writes_valid_fasta(tmp_path):
    model = _model(tmp_path)
    out = tmp_path / "sub" / "designs.fa"
    r = CliRunner().invoke(app, ["design", "--model", str(model), "--n", "7", "--class", "ei", "--guidance", "3",
                                 "--steps", "5", "-o", str(out)])
    assert r.exit_code == 0, r.output
    recs = list(SeqIO.parse(out, "fasta"))
    assert len(recs) == 7 and len({r.id for r in recs}) == 7
    assert all(len(r.seq) == 20 and set(str(r.seq)) <= set("ACGT") for r in recs)
    assert all("class=EI" in r.description for r in recs)
    assert [p.name for p in out.parent.iterdir()] == ["designs.fa"]  # no temp file left behind


def test_cli_errors(tmp_path):
    model = _model(tmp_path)
    out = tmp_path / "x.fa"
    r = CliRunner().invoke(app, ["design", "--model", str(model), "--class", "XX", "-o", str(out)])
    assert r.exit_code == 2 and "unknown class 'XX'" in r.output and not out.exists()
    r = CliRunner().invoke(app, ["design", "--model", str(model), "--guidance", "2", "-o", str(out)])
    assert r.exit_code == 2 and "need --class" in r.output
    r = CliRunner().invoke(app, ["design", "--model", str(tmp_path / "nope"), "-o", str(out)])
    assert r.exit_code == 2 and "neither a model folder nor a shipped model" in r.output


def test_sequence_csv_loader(tmp_path, data_dir):
    from bioseq.design.data import load_sequence_csv, stratified_split

    ids, labels, names = load_sequence_csv(data_dir / "classification" / "splice_uci" / "uci_splice_junction_statlog.csv")
    assert ids.shape == (3000, 60) and names == ["EI", "IE", "N"]
    assert labels.bincount().tolist() == [679, 669, 1652]
    # donors carry GT right after the exon (0-based 30-31), acceptors AG right before it (28-29)
    donors, acceptors = ids[labels == 0], ids[labels == 1]
    assert ((donors[:, 30] == 2) & (donors[:, 31] == 3)).float().mean() > 0.98
    assert ((acceptors[:, 28] == 0) & (acceptors[:, 29] == 2)).float().mean() > 0.98
    parts = stratified_split(labels, (0.8, 0.2), seed=0)
    assert sum(len(p) for p in parts) == 3000 and not set(parts[0].tolist()) & set(parts[1].tolist())
    bad = tmp_path / "bad.csv"
    bad.write_text("sequence,label\nACGT,a\nACGX,b\n")
    with pytest.raises(ValueError, match=r"bad.csv:3: .*'X'"):
        load_sequence_csv(bad)
    bad.write_text("sequence,label\nACGT,a\nACG,b\n")
    with pytest.raises(ValueError, match=r"bad.csv:3: sequence length 3"):
        load_sequence_csv(bad)
