"""The registry of shipped checkpoints: load by name, checksums verified, `bioseq models` CLI."""

from __future__ import annotations

import json

import pytest
import torch

from bioseq.models import (
    CausalLM,
    SequenceClassifier,
    build_backbone,
    checkpoints,
    list_checkpoints,
    load_pretrained,
)
from bioseq.models.checkpoints import CheckpointError, get_checkpoint, ship, verify
from bioseq.tokenization import get_tokenizer

CARD = {"task": "clm", "size": "transformer-tiny", "params": 0, "tokenizer": "dna-char", "data": "test genome",
        "tokens": 1000, "steps": 3, "hardware": "test", "heldout": {"strain bits/base": 1.9}}


@pytest.fixture()
def registry(tmp_path, monkeypatch):
    """An empty registry in tmp_path, in place of the package's."""
    root = tmp_path / "models"
    monkeypatch.setattr(checkpoints, "ASSETS", root)
    monkeypatch.setattr(checkpoints, "_VERIFIED", set())
    return root


@pytest.fixture()
def exported(tmp_path):
    torch.manual_seed(0)
    model = CausalLM(build_backbone("transformer-tiny", d_model=32, n_layer=1, n_head=2))
    model.save_pretrained(tmp_path / "final")
    get_tokenizer("dna-char").save(tmp_path / "final" / "tokenizer.json")
    return tmp_path / "final", model


def test_ship_then_load_by_name(registry, exported):
    final, model = exported
    info = ship(final, "dna-test", CARD, "# dna-test\n")
    assert [c.name for c in list_checkpoints()] == ["dna-test"]
    assert get_checkpoint("dna-test").heldout == {"strain bits/base": 1.9}
    assert len(info.sha256) == 64
    loaded = load_pretrained("dna-test")
    ids = torch.randint(7, 11, (1, 20))
    with torch.no_grad():
        assert torch.equal(loaded.eval()(ids).logits, model.eval()(ids).logits)
    # any head can start from a shipped checkpoint by name
    clf = SequenceClassifier.from_pretrained("dna-test", num_labels=3)
    assert torch.equal(clf.backbone.embedding.weight, model.backbone.embedding.weight)


def test_damaged_weights_are_refused(registry, exported):
    ship(exported[0], "dna-test", CARD, "# dna-test\n")
    weights = registry / "dna-test" / "model.safetensors"
    raw = bytearray(weights.read_bytes())
    raw[-1] ^= 0xFF
    weights.write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match="SHA-256"):
        verify(get_checkpoint("dna-test"))
    with pytest.raises(CheckpointError, match="damaged"):
        load_pretrained("dna-test")


def test_unknown_name_lists_what_ships(registry, exported):
    ship(exported[0], "dna-test", CARD, "# dna-test\n")
    with pytest.raises(CheckpointError, match="dna-test"):
        load_pretrained("no-such-model")
    with pytest.raises(CheckpointError):
        get_checkpoint("../models")  # names never leave the registry folder


def test_ship_replaces_only_its_own_entries(registry, exported):
    (registry / "precious").mkdir(parents=True)
    (registry / "precious" / "notes.txt").write_text("keep me")
    with pytest.raises(CheckpointError, match="not a shipped checkpoint"):
        ship(exported[0], "precious", CARD, "# x\n")
    assert (registry / "precious" / "notes.txt").read_text() == "keep me"
    ship(exported[0], "dna-test", CARD, "# v1\n")
    ship(exported[0], "dna-test", {**CARD, "steps": 4}, "# v2\n")  # a new version of our own entry
    assert get_checkpoint("dna-test").steps == 4
    assert sorted(p.name for p in registry.iterdir()) == ["dna-test", "precious"]  # no temporaries left


def test_existing_folder_wins_over_a_name(registry, exported, tmp_path, monkeypatch):
    ship(exported[0], "final", CARD, "# x\n")
    monkeypatch.chdir(tmp_path)  # ./final is the exported folder itself
    assert load_pretrained("final") is not None


def test_models_cli_lists_and_verifies_shipped_checkpoints():
    from typer.testing import CliRunner

    from bioseq.cli import app

    # The package's own registry: every shipped checkpoint passes its checksum and is listed.
    shipped = list_checkpoints()
    runner = CliRunner()
    r = runner.invoke(app, ["models", "list", "--json"])
    assert r.exit_code == 0, r.output
    assert [json.loads(line)["name"] for line in r.stdout.splitlines()] == [c.name for c in shipped]
    r = runner.invoke(app, ["models", "verify"])
    assert r.exit_code == 0, r.output
    assert r.stdout.count(": ok") == len(shipped)
    r = runner.invoke(app, ["models", "info", "no-such-model"])
    assert r.exit_code == 1 and "no-such-model" in r.output


@pytest.mark.parametrize("name", ["dna-clm-bacteria-tiny", "dna-mlm-bacteria-tiny", "protein-mlm-uniprot-tiny"])
def test_every_shipped_checkpoint_verifies_loads_and_fits(name):
    info = get_checkpoint(name)
    verify(info)  # sha256 of the weights matches the card
    assert (info.path / "model.safetensors").stat().st_size <= 10 * 2**20
    assert info.heldout and info.tokens > 0 and info.steps > 0 and (info.path / "README.md").read_text().startswith(f"# {name}")
    model = load_pretrained(name)
    assert all(p.dtype == torch.float32 for p in model.parameters())  # fp16 on disk, fp32 in memory
    assert model.backbone.num_parameters() == info.params


def test_shipped_protein_model_beats_composition_and_embeds_proteins_by_default():
    import numpy as np

    import bioseq

    info = get_checkpoint("protein-mlm-uniprot-tiny")
    h = info.heldout
    assert h["masked-token loss (nats)"] < h["amino-acid frequency loss (nats)"] - 0.1
    # its tokenizer reads bare sequences as protein: no modality needed, and each window is tagged
    e = bioseq.embed("protein-mlm-uniprot-tiny", ["MKTAYIAKQRQISFVKSHFSRQ", "MSTNPKPQRKTKRNTNRRPQDVKFPGG"])
    assert e.shape == (2, load_pretrained("protein-mlm-uniprot-tiny").backbone.config.d_model)
    assert np.isfinite(e).all() and not np.allclose(e[0], e[1])


def test_shipped_dna_masked_lm_is_reverse_complement_equivariant_and_scored_against_both_baselines():
    info = get_checkpoint("dna-mlm-bacteria-tiny")
    assert info.task == "mlm" and any("two-sided context" in k for k in info.heldout)
    model = load_pretrained("dna-mlm-bacteria-tiny").eval()
    cmap = torch.tensor(model.backbone.config.complement_map)
    ids = torch.randint(7, 11, (2, 300), generator=torch.Generator().manual_seed(0))  # A C G T
    with torch.no_grad():
        fwd = model(ids).logits
        rev = model(cmap[ids].flip(1)).logits
    # Caduceus RCPS: predictions on the reverse complement are the complemented, reversed predictions
    v = len(cmap)  # the output layer may be padded past the vocabulary
    assert torch.allclose(rev[..., :v], fwd.flip(1)[..., cmap], atol=1e-4)
