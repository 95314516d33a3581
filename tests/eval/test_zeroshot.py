"""Zero-shot scoring: variant LLRs against direct computations, Markov scores, ``bioseq score``."""

from __future__ import annotations

import json

import numpy as np
import pysam
import pytest
import torch
from typer.testing import CliRunner

from bioseq.alphabet import encode, reverse_complement_codes
from bioseq.cli import app
from bioseq.eval.markov import MarkovModel
from bioseq.eval.zeroshot import (
    LanguageModel,
    ScoreError,
    Variant,
    check_variant,
    markov_variant_scores,
    tile_windows,
    variant_scores,
    variant_windows,
)

RNG = np.random.default_rng(3)
CONTIG = RNG.integers(0, 4, 600).astype(np.uint8)
REF = {"c1": CONTIG}
B = "ACGT"


def base(i: int) -> str:
    return B[CONTIG[i]]


def log_lik(lm: LanguageModel, codes: np.ndarray) -> float:
    """log P of a whole window under a causal model, positions 1..L-1 (the direct definition)."""
    ids = torch.as_tensor(lm.tok.encode_codes(codes))[None]
    with torch.no_grad():
        lp = torch.log_softmax(lm.model(ids).logits.float(), -1)[0]
    return float(lp[torch.arange(len(codes) - 1), ids[0, 1:]].sum())


VARIANTS = [Variant("c1", 300, base(300), B[(CONTIG[300] + 1) % 4]),           # SNV
            Variant("c1", 200, base(200) + base(201) + base(202), base(200)),   # 2-base deletion
            Variant("c1", 100, base(100), base(100) + "GAT"),                   # 3-base insertion
            Variant("c1", 5, base(5), B[(CONTIG[5] + 2) % 4])]                  # near the contig start


def test_causal_llr_is_the_window_likelihood_ratio(tiny_checkpoint):
    lm = LanguageModel.load(tiny_checkpoint("clm"), window=64)
    fwd = variant_scores(lm, REF, VARIANTS, both_strands=False)
    for v, s in zip(VARIANTS, fwd, strict=True):
        ref, alt = variant_windows(v, CONTIG, 64)
        assert s == pytest.approx(log_lik(lm, alt) - log_lik(lm, ref), abs=1e-3)
    both = variant_scores(lm, REF, VARIANTS)
    for v, s, f in zip(VARIANTS, both, fwd, strict=True):
        ref, alt = variant_windows(v, CONTIG, 64)
        rev = log_lik(lm, reverse_complement_codes(alt)) - log_lik(lm, reverse_complement_codes(ref))
        assert s == pytest.approx((f + rev) / 2, abs=1e-3)


def test_masked_marginal(tiny_checkpoint):
    lm = LanguageModel.load(tiny_checkpoint("mlm"), window=64)
    v = VARIANTS[0]
    s = variant_scores(lm, REF, [v], both_strands=False)[0]
    ref, alt = variant_windows(v, CONTIG, 64)
    site = int(np.flatnonzero(ref != alt)[0])
    ids = torch.as_tensor(lm.tok.encode_codes(ref))[None].clone()
    ids[0, site] = lm.tok.mask_token_id
    with torch.no_grad():
        lp = torch.log_softmax(lm.model(ids).logits.float(), -1)[0, site]
    a_id, r_id = lm.tok.encode_codes(alt[site : site + 1])[0], lm.tok.encode_codes(ref[site : site + 1])[0]
    assert s == pytest.approx(float(lp[a_id] - lp[r_id]), abs=1e-4)
    with pytest.raises(ScoreError, match="substitutions"):
        variant_scores(lm, REF, [VARIANTS[1]])


def test_markov_llr_and_position_log_probs():
    m = MarkovModel(3).fit([RNG.integers(0, 4, 5000).astype(np.uint8)])
    v = VARIANTS[1]
    ref, alt = variant_windows(v, CONTIG, 64)
    direct = (np.nansum(m.position_log2_probs(alt)) - np.nansum(m.position_log2_probs(ref))) * np.log(2)
    assert markov_variant_scores(m, REF, [v], 64, both_strands=False)[0] == pytest.approx(direct)
    w = tile_windows([CONTIG], 50)
    bits, n = m.window_bits(w)
    lp = np.stack([m.position_log2_probs(x) for x in w])
    assert -np.nansum(lp) == pytest.approx(bits) and np.isfinite(lp).sum() == n


def test_check_variant_reasons():
    assert check_variant(VARIANTS[0], REF) is None
    wrong = B[(CONTIG[10] + 1) % 4]
    assert "does not match" in check_variant(Variant("c1", 10, wrong, "A"), REF)
    assert "not in the reference" in check_variant(Variant("chrZ", 10, "A", "C"), REF)
    assert "symbolic" in check_variant(Variant("c1", 10, base(10), "<DEL>"), REF)
    assert "outside" in check_variant(Variant("c1", 599, base(599) + "A", "A"), REF)


def test_tile_windows_thins_evenly():
    w = tile_windows([CONTIG, CONTIG[:120]], 50)
    assert w.shape == (14, 50) and (w[12] == CONTIG[:50]).all()
    assert tile_windows([CONTIG], 50, max_windows=3).shape == (3, 50)
    with pytest.raises(ScoreError):
        tile_windows([CONTIG[:10]], 50)


# ----------------------------------------------------------------------------------------------
# CLI
# ----------------------------------------------------------------------------------------------
def _write_ref(tmp_path):
    fa = tmp_path / "ref.fa"
    fa.write_text(">c1\n" + "".join(B[c] for c in CONTIG) + "\n")
    return fa


def _write_vcf(tmp_path, rows):
    text = "##fileformat=VCFv4.2\n##contig=<ID=c1,length=600>\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n"
    text += "".join(f"{c}\t{p}\t.\t{r}\t{a}\t.\t.\t.\n" for c, p, r, a in rows)
    plain = tmp_path / "in.vcf"
    plain.write_text(text)
    pysam.tabix_compress(str(plain), str(tmp_path / "in.vcf.gz"), force=True)
    return tmp_path / "in.vcf.gz"


def test_score_variants_cli(tiny_checkpoint, tmp_path):
    ckpt, fa = tiny_checkpoint("clm"), _write_ref(tmp_path)
    wrong = B[(CONTIG[10] + 1) % 4]
    rows = [("c1", v.pos + 1, v.ref, v.alt) for v in VARIANTS] + [("c1", 11, wrong, "A"), ("chrZ", 5, "A", "C"),
                                                                   ("c1", 301, base(300), f"{B[(CONTIG[300] + 1) % 4]},<DEL>")]
    vcf = _write_vcf(tmp_path, rows)
    out = tmp_path / "out.vcf.gz"
    r = CliRunner().invoke(app, ["score", "variants", "-m", str(ckpt), "--ref", str(fa), "--vcf", str(vcf), "-o", str(out),
                                 "--window", "64"])
    assert r.exit_code == 0, r.output
    recs = list(pysam.VariantFile(str(out)))
    assert len(recs) == len(rows)  # nothing dropped
    expect = variant_scores(LanguageModel.load(ckpt, window=64), REF, VARIANTS)
    for rec, e in zip(recs[:4], expect, strict=True):
        assert rec.info["LLR"][0] == pytest.approx(e, abs=1e-3)
    assert "does_not_match" in recs[4].info["LLR_SKIP"] and "LLR" not in recs[4].info
    assert "not_in_the_reference" in recs[5].info["LLR_SKIP"]
    assert recs[6].info["LLR"][0] == pytest.approx(expect[0], abs=1e-3) and recs[6].info["LLR"][1] is None
    assert "symbolic" in recs[6].info["LLR_SKIP"]
    skipped = [ln for ln in r.output.splitlines() if "skipped:" in ln]
    assert len(skipped) == 3 and "record 5" in skipped[0] and "record 6" in skipped[1]


@pytest.mark.parametrize("case", ["not_vcf", "missing_ref", "no_model", "same_file"])
def test_score_variants_bad_input(tiny_checkpoint, tmp_path, case):
    fa = _write_ref(tmp_path)
    vcf = _write_vcf(tmp_path, [("c1", 301, base(300), "A")])
    bad = tmp_path / "bad.vcf"
    bad.write_text("this is not a VCF\n")
    args = {"not_vcf": (tiny_checkpoint("clm"), fa, bad, tmp_path / "out.vcf.gz"),
            "missing_ref": (tiny_checkpoint("clm"), tmp_path / "nope.fa", vcf, tmp_path / "out.vcf.gz"),
            "no_model": (tmp_path / "nomodel", fa, vcf, tmp_path / "out.vcf.gz"),
            "same_file": (tiny_checkpoint("clm"), fa, vcf, vcf)}[case]
    before = sorted(p.name for p in tmp_path.iterdir())
    r = CliRunner().invoke(app, ["score", "variants", "-m", str(args[0]), "--ref", str(args[1]), "--vcf", str(args[2]),
                                 "-o", str(args[3])])
    assert r.exit_code == 1
    lines = [ln for ln in r.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("bioseq score variants: error:"), r.output
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing written


def test_score_bits_cli(tiny_checkpoint, tmp_path):
    fa = _write_ref(tmp_path)
    r = CliRunner().invoke(app, ["score", "bits", "-m", str(tiny_checkpoint("clm")), "--fasta", str(fa), "--window", "50",
                                 "--max-order", "3", "--json", str(tmp_path / "b.json")])
    assert r.exit_code == 0, r.output
    res = json.loads((tmp_path / "b.json").read_text())
    lm = LanguageModel.load(tiny_checkpoint("clm"), window=50)
    bits, n = lm.bits(tile_windows([CONTIG], 50))
    assert res["model"]["bits_per_base"] == pytest.approx(bits / n) and res["model"]["positions"] == n == 12 * 49
    assert set(res["markov"]["bits_per_base"]) == {"0", "1", "2", "3"} and res["markov"]["fitted_on"] == "in-sample"
    assert "order-3 Markov" in r.output
    r = CliRunner().invoke(app, ["score", "bits", "-m", str(tiny_checkpoint("mlm")), "--fasta", str(fa), "--window", "50",
                                 "--max-order", "2", "--markov-from", str(fa)])
    assert r.exit_code == 0 and "(masked)" in r.output
    r = CliRunner().invoke(app, ["score", "bits", "-m", str(tiny_checkpoint("clm"))])
    assert r.exit_code == 1 and "--fasta or --store" in r.output
    r = CliRunner().invoke(app, ["score", "bits", "-m", str(tiny_checkpoint("protein")), "--fasta", str(fa)])
    assert r.exit_code == 1 and "nucleotide" in r.output and "Traceback" not in r.output


def test_score_help_has_examples():
    for sub in ("bits", "variants"):
        r = CliRunner().invoke(app, ["score", sub, "--help"], env={"COLUMNS": "200"})
        assert r.exit_code == 0 and f"Example: bioseq score {sub}" in r.output and "<bool>" not in r.output


def test_encode_roundtrip_for_variant_windows():
    v = VARIANTS[2]
    ref, alt = variant_windows(v, CONTIG, 20)
    assert len(alt) == len(ref) + 3 and (alt[: len(alt) - len(ref) + 10] != 99).all()
    assert (ref[9:10] == encode(v.ref)).all()
