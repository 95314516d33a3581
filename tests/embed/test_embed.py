"""bioseq.embed / ``bioseq embed``: pooling, windows, strand averaging, order, writers, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import bioseq
from bioseq.cli import app
from bioseq.embeddings import EmbedError, embed, read_embeddings, sliding_windows
from bioseq.models import load_pretrained
from bioseq.tokenization import load_tokenizer

RNG = np.random.default_rng(0)
SEQS = ["".join(RNG.choice(list("ACGT"), n)) for n in (7, 40, 95, 130, 61)]
COMP = str.maketrans("ACGT", "TGCA")


def manual_mean(ckpt, seq: str) -> np.ndarray:
    """Mean of the backbone's hidden states over the sequence tokens ([SEP] excluded)."""
    model, tok = load_pretrained(ckpt).eval(), load_tokenizer(ckpt / "tokenizer.json")
    ids = torch.as_tensor(tok.encode(seq))[None]
    with torch.no_grad():
        h = model.backbone(ids)[0]
    return h[: len(seq)].mean(0).numpy()


def test_mean_pooling_matches_the_backbone(tiny_checkpoint):
    ckpt = tiny_checkpoint("clm")
    emb = embed(ckpt, SEQS[:3], window=256)
    assert emb.shape == (3, 16) and emb.dtype == np.float32
    for e, s in zip(emb, SEQS[:3], strict=True):
        np.testing.assert_allclose(e, manual_mean(ckpt, s), atol=1e-5)
    assert bioseq.embed is embed  # the top-level API


def test_order_and_batching_do_not_change_results(tiny_checkpoint):
    ckpt = tiny_checkpoint("clm")
    ref = embed(ckpt, SEQS, window=32, batch_size=64)
    np.testing.assert_allclose(embed(ckpt, SEQS[::-1], window=32, batch_size=3)[::-1], ref, atol=1e-5)
    from bioseq.embeddings import iter_embeddings

    small_chunks = np.stack([e.vector for e in iter_embeddings(ckpt, SEQS, window=32, chunk_tokens=50)])
    np.testing.assert_allclose(small_chunks, ref, atol=1e-5)


def test_long_sequences_average_their_windows(tiny_checkpoint):
    ckpt = tiny_checkpoint("clm")
    seq = SEQS[3][:124]  # 4 windows of 31 bases (+ [SEP]) that tile it exactly when overlap=0
    tok = embed(ckpt, [seq], window=32, overlap=0, per_token=True)[0]
    assert tok.shape == (124, 16)
    # Without overlap the token-weighted window mean is the mean of the per-token states.
    np.testing.assert_allclose(embed(ckpt, [seq], window=32, overlap=0)[0], tok.mean(0), atol=1e-5)
    # Each window is embedded on its own: the first window's tokens match a 31-base sequence.
    np.testing.assert_allclose(tok[:31], embed(ckpt, [seq[:31]], window=32, per_token=True)[0], atol=1e-5)
    np.testing.assert_allclose(tok[93:], embed(ckpt, [seq[93:]], window=32, per_token=True)[0], atol=1e-5)
    # With overlap, tokens covered twice get the mean of their two windows' states.
    both = embed(ckpt, [seq[:52]], window=32, overlap=10, per_token=True)[0]  # windows [0, 31) and [21, 52)
    from bioseq.embeddings import sliding_windows as sw

    (a0, a1), (b0, b1) = sw(52, 31, 21)
    first = embed(ckpt, [seq[a0:a1]], window=32, per_token=True)[0]
    second = embed(ckpt, [seq[b0:b1]], window=32, per_token=True)[0]
    np.testing.assert_allclose(both[b0:a1], (first[b0 - a0 :] + second[: a1 - b0]) / 2, atol=1e-5)


@pytest.mark.parametrize("n", [1, 31, 32, 33, 64, 130, 1000])
def test_windows_cover_evenly_and_mirror(n):
    for body, stride in ((31, 23), (31, 31), (7, 2)):
        w = sliding_windows(n, body, stride)
        assert w[0][0] == 0 and w[-1][1] == n
        assert all(e - s == min(n, body) for s, e in w)
        assert all(b[0] - a[0] <= stride for a, b in zip(w, w[1:], strict=False))
        assert [(n - e, n - s) for s, e in reversed(w)] == w


def test_rc_averaging_is_exactly_strand_invariant(tiny_checkpoint):
    ckpt = tiny_checkpoint("clm")
    rcs = [s.translate(COMP)[::-1] for s in SEQS]
    a, b = embed(ckpt, SEQS, window=32, rc=True), embed(ckpt, rcs, window=32, rc=True)
    np.testing.assert_allclose(a, b, atol=1e-5)
    assert np.abs(embed(ckpt, SEQS, window=32) - embed(ckpt, rcs, window=32)).max() > 1e-3  # not trivially so


def test_pooling_modes_per_backbone_kind(tiny_checkpoint):
    prot = tiny_checkpoint("protein")
    seqs = ["MKTAYIAKQRQISFVKSHFSRQ", "MSTNPKPQRKTKRNTNRRPQDVKFPGG"]
    cls = embed(prot, seqs, pooling="cls")
    model, tok = load_pretrained(prot).eval(), load_tokenizer(prot / "tokenizer.json")
    with torch.no_grad():
        first = model.backbone(torch.as_tensor(tok.encode(seqs[0]))[None])[0, 0].numpy()
    np.testing.assert_allclose(cls[0], first, atol=1e-5)  # the <cls> token's state
    with pytest.raises(EmbedError, match="causal"):
        embed(prot, seqs, pooling="last")
    with pytest.raises(EmbedError, match="bidirectional"):
        embed(tiny_checkpoint("clm"), SEQS, pooling="cls")
    with pytest.raises(EmbedError, match="nucleotide"):
        embed(prot, seqs, rc=True)


def test_bad_sequence_names_the_record(tiny_checkpoint):
    with pytest.raises(EmbedError, match="record 'seq1'.*'J'"):
        embed(tiny_checkpoint("clm"), ["ACGT", "ACJT"])


# ----------------------------------------------------------------------------------------------
# CLI
# ----------------------------------------------------------------------------------------------
def _fasta(path, seqs, names=None):
    path.write_text("".join(f">{n}\n{s}\n" for n, s in zip(names or [f"r{i}" for i in range(len(seqs))], seqs,
                                                          strict=True)))
    return path


@pytest.mark.parametrize("ext", ["npy", "parquet", "zarr"])
def test_cli_writes_each_format_in_input_order(tiny_checkpoint, tmp_path, ext):
    ckpt = tiny_checkpoint("clm")
    fa = _fasta(tmp_path / "in.fa", SEQS)
    out = tmp_path / f"out.{ext}"
    r = CliRunner().invoke(app, ["embed", "-m", str(ckpt), str(fa), "-o", str(out), "--window", "32", "-q"])
    assert r.exit_code == 0, r.output
    names, vecs = read_embeddings(out)
    np.testing.assert_allclose(vecs, embed(ckpt, SEQS, window=32), atol=1e-5)
    if ext != "npy":
        assert names == [f"r{i}" for i in range(len(SEQS))]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["in.fa", out.name])  # no temporaries left


def test_cli_per_token_zarr(tiny_checkpoint, tmp_path):
    ckpt = tiny_checkpoint("clm")
    fa = _fasta(tmp_path / "in.fa", SEQS[:3])
    out = tmp_path / "tok.zarr"
    r = CliRunner().invoke(app, ["embed", "-m", str(ckpt), str(fa), "-o", str(out), "--per-token", "--rc", "-q"])
    assert r.exit_code == 0, r.output
    _, vecs = read_embeddings(out)
    assert [v.shape for v in vecs] == [(len(s), 16) for s in SEQS[:3]]
    np.testing.assert_allclose(vecs[1], embed(ckpt, [SEQS[1]], per_token=True, rc=True)[0], atol=1e-5)


def test_cli_protein_fasta(tiny_checkpoint, tmp_path):
    fa = _fasta(tmp_path / "p.fa", ["MKTAYIAKQRQISFVKSHFSRQ", "MSTNPKPQRK"])
    r = CliRunner().invoke(app, ["embed", "-m", str(tiny_checkpoint("protein")), str(fa), "-o", str(tmp_path / "p.npy"), "-q"])
    assert r.exit_code == 0, r.output
    assert np.load(tmp_path / "p.npy").shape == (2, 16)


def test_multiomic_checkpoint_embeds_each_window_with_its_modality_tag(tiny_checkpoint, tmp_path):
    ckpt = tiny_checkpoint("multiomic")
    tok = load_tokenizer(ckpt / "tokenizer.json")
    prot = "MKTAYIAKQRQISFVKSHFSRQLEERLGLIEVQ"
    model = load_pretrained(ckpt).eval()
    ids = torch.as_tensor(tok.encode(prot, modality="protein"))[None]  # [CLS] <protein> body [SEP]
    with torch.no_grad():
        h = model.backbone(ids)[0, 2 : 2 + len(prot)].numpy()
    np.testing.assert_allclose(embed(ckpt, [prot], modality="protein", window=64)[0], h.mean(0), atol=1e-5)
    # the resolved tokenizer can be handed back with a loaded model (e.g. for an untrained copy)
    from bioseq.embeddings import load_model_and_tokenizer

    _, view, _ = load_model_and_tokenizer(ckpt, modality="protein")
    np.testing.assert_allclose(embed(model, [prot], tokenizer=view, window=64)[0], h.mean(0), atol=1e-5)
    # windows shorter than the protein: each is [CLS] <protein> piece [SEP], never a bare piece
    per = embed(ckpt, [prot], modality="protein", window=14, overlap=0, per_token=True)[0]
    piece = torch.as_tensor(tok.encode(prot[11:22], modality="protein"))[None]
    with torch.no_grad():
        want = model.backbone(piece)[0, 2:13].numpy()
    np.testing.assert_allclose(per[11:22], want, atol=1e-5)
    # a protein read as DNA (the tokenizer's default) fails naming the record; the CLI takes --modality
    with pytest.raises(EmbedError, match="record 'p1'"):
        embed(ckpt, [("p1", prot)])
    fa = _fasta(tmp_path / "p.fa", [prot, "MSTNPKPQRK"])
    r = CliRunner().invoke(app, ["embed", "-m", str(ckpt), str(fa), "-o", str(tmp_path / "p.npy"), "-q", "--modality", "protein"])
    assert r.exit_code == 0, r.output
    assert np.load(tmp_path / "p.npy").shape == (2, 16)
    with pytest.raises(EmbedError, match="multi-omic tokenizers only"):
        embed(tiny_checkpoint("protein"), [prot], modality="protein")


@pytest.mark.parametrize("case", ["bad_char", "no_model", "bad_ext", "not_fasta", "per_token_npy", "missing_input"])
def test_cli_bad_input_one_line_error_nothing_written(tiny_checkpoint, tmp_path, case):
    ckpt = tiny_checkpoint("clm")
    fa = _fasta(tmp_path / "in.fa", ["ACGT" * 50, "ACGTXACGT"])
    out = tmp_path / "out.npy"
    args = {"bad_char": [str(ckpt), str(fa), str(out)], "no_model": [str(tmp_path / "nope"), str(fa), str(out)],
            "bad_ext": [str(ckpt), str(fa), str(tmp_path / "out.csv")],
            "not_fasta": [str(ckpt), str((tmp_path / "x.txt").write_text("hello\n") and tmp_path / "x.txt"), str(out)],
            "per_token_npy": [str(ckpt), str(fa), str(out), "--per-token"],
            "missing_input": [str(ckpt), str(tmp_path / "missing.fa"), str(out)]}[case]
    r = CliRunner().invoke(app, ["embed", "-m", args[0], args[1], "-o", args[2], *args[3:], "-q"])
    assert r.exit_code == 1
    lines = [ln for ln in r.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("bioseq embed: error:"), r.output
    assert "Traceback" not in r.output
    expected = {"bad_char": "record 'r1'", "no_model": "nope", "bad_ext": ".npy, .parquet or .zarr",
                "not_fasta": "not FASTA", "per_token_npy": ".zarr", "missing_input": "missing.fa"}[case]
    assert expected in lines[0]
    assert not any(p.name.startswith(("out", ".out")) for p in tmp_path.iterdir())


def test_cli_help_has_an_example_and_no_python_types():
    r = CliRunner().invoke(app, ["embed", "--help"], env={"COLUMNS": "200"})
    assert r.exit_code == 0 and "Example: bioseq embed" in r.output
    assert "<bool>" not in r.output and "<str>" not in r.output


def test_shards_split_chunks_and_cover_everything(tiny_checkpoint):
    from bioseq.embeddings import iter_embedding_chunks

    ckpt = tiny_checkpoint("clm")
    full = dict(iter_embedding_chunks(ckpt, SEQS, window=32, chunk_tokens=60))
    parts = [dict(iter_embedding_chunks(ckpt, SEQS, window=32, chunk_tokens=60, shard=(r, 2))) for r in range(2)]
    assert len(full) >= 3 and set(parts[0]) | set(parts[1]) == set(full) and not set(parts[0]) & set(parts[1])
    assert set(parts[1]) == {i for i in full if i % 2 == 1}
    for i, embs in full.items():
        other = (parts[0] | parts[1])[i]
        np.testing.assert_allclose(np.stack([e.vector for e in embs]), np.stack([e.vector for e in other]), atol=1e-6)


@pytest.mark.slow
def test_accelerate_launch_gives_the_single_process_output(tiny_checkpoint, tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    fa = _fasta(tmp_path / "in.fa", SEQS * 4)
    env = {**os.environ, "PYTHONPATH": str(root), "OMP_NUM_THREADS": "1"}
    base = ["-m", "bioseq", "embed", "-m", str(tiny_checkpoint("clm")), str(fa), "--window", "32", "-q",
            "--chunk-tokens", "100"]
    subprocess.run([sys.executable, *base, "-o", str(tmp_path / "one.parquet")], check=True, env=env)
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--cpu", "--num_processes", "2", "--num_machines", "1",
              "--mixed_precision", "no", "--dynamo_backend", "no"]
    subprocess.run([*launch, *base, "-o", str(tmp_path / "two.parquet")], check=True, env=env, timeout=300)
    a, b = read_embeddings(tmp_path / "one.parquet"), read_embeddings(tmp_path / "two.parquet")
    assert a[0] == b[0]
    np.testing.assert_allclose(a[1], b[1], atol=1e-5)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.fa", "one.parquet", "two.parquet"]
