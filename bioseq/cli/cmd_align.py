"""``bioseq align``: align reads to an ``.esa`` index, writing SAM (stdout) or BAM."""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path

import typer

from bioseq.cli import debug_enabled

HELP = "Align reads (FASTQ/FASTA, gzip or stdin '-') to a `bioseq index`; SAM to stdout or -o out.sam/out.bam."


def command(
    index: Path = typer.Argument(..., help="Index directory from `bioseq index`."),
    reads: str = typer.Argument(..., help="Reads (FASTQ or FASTA, plain/gzip/xz; '-' for stdin)."),
    reads2: str = typer.Argument(None, help="Mate reads for paired-end input."),
    out: str = typer.Option(None, "-o", "--out", help="Output .sam or .bam (default: SAM on stdout)."),
    threads: int = typer.Option(1, "-t", "--threads", min=1, help="Worker processes (and torch threads for the embedding)."),
    top_k: int = typer.Option(16, "-k", "--top-k", min=1, max=2048, help="Fragments retrieved per read strand and window."),
    mode: str = typer.Option("rescue", "--mode", help="Candidates: rescue (seeds, embedding search for reads they miss) | seed | hybrid | emb+vote | emb (see docs/align.md)."),
    max_align: int = typer.Option(10, "--max-align", min=1, help="Candidates realigned per read."),
    min_score: int = typer.Option(30, "-T", "--min-score", min=0, help="Minimum alignment score to report a hit."),
    min_len: int = typer.Option(30, "--min-len", min=0, help="Reads shorter than this are reported unmapped."),
    max_insert: int = typer.Option(1000, "--max-insert", min=1, help="Largest insert size of a proper pair."),
    secondary: int = typer.Option(0, "--secondary", min=0, help="Secondary alignments to report per read."),
    batch_size: int = typer.Option(2048, "--batch-size", min=1, help="Reads per batch (affects speed, never output)."),
    encoder: Path = typer.Option(None, "--encoder", help="Encoder checkpoint of an --embedding neural index (default: the bundled one)."),
    verify_index: bool = typer.Option(False, "--verify-index", help="Check the whole index first (file hashes, "
                                      "contig MD5s): slower to start on large genomes; opening always checks sizes and headers."),
    reseed: bool = typer.Option(True, "--reseed/--no-reseed", help="Re-seed poorly placed reads with the index's short seeds."),
    verbosity: int = typer.Option(1, "-v", "--verbosity", min=0, max=3, help="0: errors only; 1: progress and summary on stderr."),
) -> None:
    """Seed both strands of every read against the index, embed and search the top-K fragments for
    reads the seeds miss (--mode rescue), realign the candidates and write SAM/BAM."""
    from bioseq.align.aligner import Aligner, AlignParams
    from bioseq.align.index import index_encoder, load_index
    from bioseq.align.index import verify_index as verify
    from bioseq.align.pipeline import align_files
    from bioseq.align.reference import InputError

    if reads == "-" and reads2 == "-":
        typer.echo("bioseq align: error: only one of the read inputs can be stdin", err=True)
        raise typer.Exit(1)
    _check_paths(index, [reads, reads2], out, encoder)
    try:
        params = AlignParams(top_k=top_k, mode=mode, max_align=max_align, min_score=min_score, min_len=min_len,
                             max_insert=max_insert, secondary=secondary, reseed=reseed)
        idx = _open_index(load_index, index)
        enc = index_encoder(idx, encoder, threads=threads)
        if verify_index and (problems := verify(index, enc)):
            raise InputError("; ".join(problems))
        cl = "bioseq align " + " ".join(shlex.quote(a) for a in sys.argv[2:] if a != "align") if sys.argv else "bioseq align"
        stats = align_files(Aligner(idx, enc, params), [reads] + ([reads2] if reads2 else []), out, threads,
                            batch_size, command_line=cl.replace("\t", " "), progress=verbosity > 0)
    except (InputError, ValueError, FileNotFoundError) as e:
        if debug_enabled():
            raise
        typer.echo(f"bioseq align: error: {e}", err=True)
        raise typer.Exit(1) from None
    if int(os.environ.get("RANK", "0")) != 0 or verbosity <= 0:
        return  # under `accelerate launch` the main process reports for all; -v 0: errors only
    for ex in stats.examples:
        typer.echo(f"bioseq align: warning: {ex}", err=True)
    if stats.problems:
        summary = ", ".join(f"{v} {k}" for k, v in sorted(stats.problems.items()))
        typer.echo(f"bioseq align: warning: {sum(stats.problems.values())} reads not aligned ({summary})", err=True)
    emb = f"; {stats.embedded} searched by embedding, {stats.placed} placed by it" if stats.embedded else ""
    typer.echo(f"bioseq align: {stats.reads} reads, {stats.mapped} mapped{emb}", err=True)


def _check_paths(index: Path, reads: list[str | None], out: str | None, encoder: Path | None) -> None:
    """Everything that can be checked before any output exists: inputs readable, output safe."""
    from bioseq.io.atomic import check_output
    from bioseq.io.compression import check_input_file
    from bioseq.io.errors import OutputPathError

    for r in reads:
        if r is not None:
            check_input_file(r)
    if out is not None and out != "-":
        suffix = Path(out).suffix.lower()
        if suffix == ".cram":
            raise OutputPathError(f"{out}: CRAM output is not supported; write .bam (or .sam) and convert "
                                  "with `samtools view -C -T ref.fa`")
        check_output(out, [index, encoder, *reads])


def _open_index(load_index, index: Path):
    """load_index, with a damaged manifest reported as one error naming the file."""
    import json

    from bioseq.io.errors import FileFormatError

    try:
        return load_index(index)
    except (KeyError, TypeError, IndexError, AttributeError, json.JSONDecodeError, UnicodeDecodeError) as e:
        raise FileFormatError(f"{index / 'manifest.json'}: damaged or incomplete index manifest "
                              f"({type(e).__name__}: {e}); rebuild the index with `bioseq index`") from None
