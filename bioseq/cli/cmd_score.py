"""``bioseq score bits`` / ``bioseq score variants``: zero-shot scores from a DNA language model."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer

HELP = "Zero-shot scoring: bits per base of a genome, log-likelihood ratios of variants."
app = typer.Typer(no_args_is_help=True, help=HELP)


def _fail(cmd: str, msg: str) -> None:
    typer.echo(f"bioseq score {cmd}: error: {msg}", err=True)
    raise typer.Exit(1)


def _errors():
    from bioseq.data.store import StoreFormatError
    from bioseq.embeddings import EmbedError
    from bioseq.eval.zeroshot import ScoreError
    from bioseq.io.errors import SequenceFormatError

    return (EmbedError, ScoreError, SequenceFormatError, StoreFormatError, FileNotFoundError, OSError)


@app.command()
def bits(
    model: str = typer.Option(..., "-m", "--model", help="Causal or masked LM checkpoint folder (or shipped model name)."),
    fasta: list[Path] = typer.Option(None, "--fasta", help="FASTA to score (repeatable; plain, gzip, bgzip, xz, bz2).",
                                     metavar="FA"),
    store: Path = typer.Option(None, "--store", help="Zarr genome store to score (every contig).", metavar="ZARR"),
    markov_from: list[Path] = typer.Option(None, "--markov-from", metavar="TRAIN.fa",
                                           help="FASTA to fit the Markov baselines on (repeatable; normally the model's "
                                                "training genomes). Default: the scored sequences themselves (in-sample)."),
    max_order: int = typer.Option(10, "--max-order", help="Largest Markov order fitted.", metavar="K"),
    window: int = typer.Option(None, "--window", help="Bases per scored window (default: the training window).",
                               metavar="N"),
    max_windows: int = typer.Option(2000, "--max-windows", help="Score at most this many windows, evenly spread "
                                    "(0: every window).", metavar="N"),
    json_out: Path = typer.Option(None, "--json", help="Also write the numbers to this JSON file.", metavar="OUT.json"),
    device: str = typer.Option(None, "--device", help="cpu, cuda ... (default: cuda when available).", metavar="DEV"),
) -> None:
    """Bits per base of a genome under the model, with order-k Markov chains on the same positions.

    The genome is tiled into non-overlapping windows; a causal model scores positions 1..L-1 of
    each (A/C/G/T targets), a masked model 15% masked positions (seeded). The Markov chains score
    exactly the causal model's positions.

    Example: bioseq score bits -m runs/demo/final --fasta data/genomes/lambda_NC_001416.fa.gz --markov-from data/genomes/ecoli_K12_MG1655.fa.gz
    """

    from bioseq.eval.markov import MarkovModel
    from bioseq.eval.zeroshot import LanguageModel, read_reference, tile_windows

    if bool(fasta) == bool(store):
        _fail("bits", "give the sequences to score with --fasta or --store (one of them)")
    if not 0 <= max_order <= 14:
        _fail("bits", f"--max-order must be in 0..14, got {max_order}")
    try:
        lm = LanguageModel.load(model, window=window, device=device)
        if fasta:
            contigs = [c for f in fasta for c in read_reference(f).values()]
            source = ", ".join(str(f) for f in fasta)
        else:
            from bioseq.data import GenomeStore

            gs = GenomeStore.open(store)
            contigs = [gs.fetch(i) for i in range(len(gs))]
            source = str(store)
        windows = tile_windows(contigs, lm.window, max_windows or None)
        typer.echo(f"scoring {len(windows):,} windows of {lm.window} bases from {source} with the {lm.kind} model",
                   err=True)
        b, n = lm.bits(windows)
        train = [c for f in markov_from for c in read_reference(f).values()] if markov_from else contigs
        mb = sum(len(c) for c in train) / 1e6
        typer.echo(f"fitting order 0..{max_order} Markov chains on {mb:.1f} Mb "
                   f"({'--markov-from' if markov_from else 'in-sample: the scored sequences'}), both strands", err=True)
        big = MarkovModel(max_order).fit(train)
    except _errors() as e:
        _fail("bits", str(e))
    rows = {"model": {"name": str(model), "kind": lm.kind, "bits_per_base": b / max(n, 1), "positions": n}}
    markov = {}
    for k in range(max_order + 1):
        mbits, mn = MarkovModel(k, big.alpha, counts=big.counts[: k + 1]).window_bits(windows)
        markov[k] = mbits / max(mn, 1)
    best = min(markov, key=markov.get)
    rows["markov"] = {"fitted_on": [str(f) for f in markov_from] if markov_from else "in-sample",
                      "bits_per_base": {str(k): v for k, v in markov.items()}, "best_order": best}
    rows.update({"source": source, "windows": len(windows), "window": lm.window})
    print(f"# {source}: {len(windows):,} windows x {lm.window} bases; lower is better, uniform = 2.0000")
    print("model\tbits_per_base\tpositions")
    print(f"{model} ({lm.kind})\t{b / max(n, 1):.4f}\t{n}")
    for k, v in markov.items():
        print(f"order-{k} Markov{' (best)' if k == best else ''}\t{v:.4f}\t")
    if json_out:
        from bioseq.io.atomic import atomic_file

        with atomic_file(json_out) as tmp:
            Path(tmp).write_text(json.dumps(rows, indent=2) + "\n")
    sys.stdout.flush()


@app.command()
def variants(
    model: str = typer.Option(..., "-m", "--model", help="Causal or masked LM checkpoint folder (or shipped model name)."),
    ref: Path = typer.Option(..., "--ref", help="Reference FASTA the VCF's positions refer to.", metavar="REF.fa"),
    vcf: Path = typer.Option(..., "--vcf", help="Input VCF/BCF (plain or bgzip).", metavar="IN.vcf.gz"),
    out: Path = typer.Option(..., "-o", "--out", help="Output VCF (.vcf or bgzipped .vcf.gz) with the score in INFO.",
                             metavar="OUT.vcf.gz"),
    window: int = typer.Option(None, "--window", help="Bases of context around each variant (default: the training "
                               "window).", metavar="N"),
    info: str = typer.Option("LLR", "--info", help="INFO field for the score.", metavar="KEY"),
    single_strand: bool = typer.Option(False, "--single-strand", help="Forward strand only (default: both averaged)."),
    max_indel: int = typer.Option(50, "--max-indel", help="Longest indel scored (bases).", metavar="N"),
    batch_size: int = typer.Option(32, "-b", "--batch-size", help="Windows per forward pass.", metavar="N"),
    device: str = typer.Option(None, "--device", help="cpu, cuda ... (default: cuda when available).", metavar="DEV"),
) -> None:
    """Log-likelihood ratio (natural log, ALT minus REF) of every variant, written to an INFO field.

    Causal models: log P of the window with ALT minus with REF, summed from the variant to the
    window's end (SNVs, MNVs, short indels). Masked models: masked marginal at the changed
    positions (substitutions). Both strands averaged. A record that cannot be scored (REF not
    matching the reference, unknown contig, symbolic ALT ...) is kept, gets INFO <KEY>_SKIP
    with the reason, and is reported on stderr.

    Example: bioseq score variants -m runs/demo/final --ref data/genomes/ecoli_K12_MG1655.fa.gz --vcf calls.vcf.gz -o scored.vcf.gz
    """
    import pysam

    from bioseq.eval.zeroshot import (
        LanguageModel,
        Variant,
        check_variant,
        read_reference,
        variant_scores,
    )
    from bioseq.io.atomic import atomic_file

    if not vcf.exists():
        _fail("variants", f"{vcf}: no such file")
    if out.exists() and out.resolve() == vcf.resolve():
        _fail("variants", f"{out}: the output would overwrite the input")
    if not out.name.endswith((".vcf", ".vcf.gz", ".vcf.bgz")):
        _fail("variants", f"{out}: the output must end in .vcf or .vcf.gz")
    try:
        lm = LanguageModel.load(model, window=window, device=device, batch_size=batch_size)
        contigs = read_reference(ref)
        pysam.set_verbosity(0)  # htslib's own warnings (no index, undeclared contig) are not ours
        try:
            vin = pysam.VariantFile(str(vcf))
        except (ValueError, OSError) as e:
            raise ValueError(f"{vcf}: not a readable VCF/BCF ({e})") from None
        header = vin.header
        header.add_meta("INFO", items=[("ID", info), ("Number", "A"), ("Type", "Float"), (
            "Description", f"log P(ALT) - log P(REF) (nats) from {model} ({lm.kind}, "
                           f"{'forward strand' if single_strand else 'both strands averaged'}, {lm.window}-base window)")])
        header.add_meta("INFO", items=[("ID", f"{info}_SKIP"), ("Number", "1"), ("Type", "String"),
                                       ("Description", "why the record was not scored")])
        records = list(vin)  # plain iteration: no index needed
    except (*_errors(), ValueError) as e:
        _fail("variants", str(e))

    # Check every allele first, then score all the good ones in batches.
    todo, skipped, reasons = [], 0, {}
    for ri, rec in enumerate(records):
        for ai, alt in enumerate(rec.alts or ()):
            v = Variant(rec.chrom, rec.pos - 1, rec.ref, alt)
            why = check_variant(v, contigs, max_indel=max_indel)
            if why is None and not lm.causal and len(v.ref) != len(v.alt):
                why = "indel: masked models score substitutions only"
            if why is None:
                todo.append((ri, ai, v))
            else:
                reasons.setdefault(ri, []).append(why)
                typer.echo(f"bioseq score variants: {vcf}: record {ri + 1} ({v.label}): skipped: {why}", err=True)
                skipped += 1
        if not rec.alts:
            reasons.setdefault(ri, []).append("no ALT allele")
            typer.echo(f"bioseq score variants: {vcf}: record {ri + 1} ({rec.chrom}:{rec.pos}): skipped: no ALT allele",
                       err=True)
            skipped += 1
    scores: dict[tuple[int, int], float] = {}
    if todo:
        from tqdm.auto import tqdm

        step = 256
        with tqdm(total=len(todo), desc="score variants", unit="variant", file=sys.stderr, leave=False) as bar:
            for s in range(0, len(todo), step):
                part = todo[s : s + step]
                llr = variant_scores(lm, contigs, [v for _, _, v in part], both_strands=not single_strand)
                scores.update({(ri, ai): float(x) for (ri, ai, _), x in zip(part, llr, strict=True)})
                bar.update(len(part))
    try:
        # Records are written as text with the INFO column extended: htslib refuses to re-encode
        # some records it reads (e.g. a symbolic ALT without END), and a scorer must not drop them.
        with atomic_file(out) as tmp:
            fh = pysam.BGZFile(str(tmp), "wb") if out.name.endswith(("gz", "bgz")) else open(tmp, "wb")
            with fh:
                fh.write(str(header).encode())
                for ri, rec in enumerate(records):
                    cols = str(rec).rstrip("\n").split("\t")
                    vals = [scores.get((ri, ai)) for ai in range(len(rec.alts or ()))]
                    extra = []
                    if any(x is not None for x in vals):
                        extra.append(f"{info}=" + ",".join("." if x is None else f"{x:.4f}" for x in vals))
                    if ri in reasons:
                        why = "|".join(reasons[ri])
                        extra.append(f"{info}_SKIP=" + "".join(c if c.isalnum() or c in "._:|>-'" else "_" for c in why))
                    if extra:
                        cols[7] = ";".join(([] if cols[7] == "." else [cols[7]]) + extra)
                    fh.write(("\t".join(cols) + "\n").encode())
    except (OSError, ValueError) as e:
        _fail("variants", f"{out}: {e}")
    finally:
        vin.close()
    typer.echo(f"{out}: {len(scores):,} alleles scored, {skipped:,} skipped (reported above) "
               f"in {len(records):,} records", err=True)
