"""``bioseq embed``: one embedding per FASTA record (or per token), streamed to .npy/.parquet/.zarr."""

from __future__ import annotations

from pathlib import Path

import typer

HELP = """Embed the sequences of a FASTA file with a pretrained model (.npy, .parquet or .zarr).

Long sequences are cut into overlapping windows of the model's training length; each window is
pooled (mean over its sequence tokens by default) and the windows are averaged. Output is in input
order, written under a temporary name and renamed when complete.

Example: bioseq embed -m runs/demo/final data/genomes/lambda_NC_001416.fa.gz -o runs/lambda.parquet --rc

Across processes or GPUs (same output): accelerate launch --num_processes 2 -m bioseq embed -m MODEL in.fa -o out.npy
"""


def command(
    fasta: Path = typer.Argument(..., help="FASTA of DNA, RNA or protein sequences (plain, gzip, bgzip, xz or bz2).",
                                 metavar="IN.fa[.gz]"),
    model: str = typer.Option(..., "-m", "--model", help="Checkpoint folder (config.json + model.safetensors) or shipped model name."),
    out: Path = typer.Option(..., "-o", "--out", help="Output: .npy (N x d), .parquet (name, n_tokens, embedding) or .zarr.",
                             metavar="OUT"),
    tokenizer: str = typer.Option(None, "--tokenizer", help="Tokenizer name or file (default: the checkpoint's tokenizer.json).",
                                  metavar="NAME"),
    modality: str = typer.Option(None, "--modality", help="dna, rna or protein: what the records are, for a multi-omic "
                                 "checkpoint (default: its tokenizer's default).", metavar="KIND"),
    window: int = typer.Option(None, "--window", help="Tokens per window, specials included (default: the training window).",
                               metavar="N"),
    overlap: int = typer.Option(None, "--overlap", help="Tokens shared by consecutive windows (default: window / 4).",
                                metavar="N"),
    pooling: str = typer.Option("mean", "--pooling", help="mean (any model), cls (bidirectional) or last (causal).",
                                metavar="MODE"),
    rc: bool = typer.Option(False, "--rc", help="Average with the reverse complement (strand-invariant DNA embeddings)."),
    per_token: bool = typer.Option(False, "--per-token", help="One vector per token instead of per sequence (.zarr only)."),
    batch_size: int = typer.Option(32, "-b", "--batch-size", help="Windows per forward pass.", metavar="N"),
    chunk_tokens: int = typer.Option(1 << 20, "--chunk-tokens", help="Tokens read, bucketed and embedded together "
                                     "(bounds memory; the unit split across processes).", metavar="N"),
    device: str = typer.Option(None, "--device", help="cpu, cuda, cuda:1 ... (default: cuda when available).", metavar="DEV"),
    threads: int = typer.Option(0, "-t", "--threads", help="CPU threads (0: torch's default).", metavar="N"),
    quiet: bool = typer.Option(False, "-q", "--quiet", help="No progress bar."),
) -> None:
    """Embed every record of a FASTA file, in input order (help text: ``HELP``)."""
    from bioseq.embeddings import EmbedError, embed_file, output_format
    from bioseq.io.errors import SequenceFormatError

    def fail(msg: str) -> None:
        typer.echo(f"bioseq embed: error: {msg}", err=True)
        raise typer.Exit(1)

    try:
        output_format(out)
        if out.exists() and fasta.exists() and out.resolve() == fasta.resolve():
            fail(f"{out}: the output would overwrite the input")
        if not fasta.exists():
            fail(f"{fasta}: no such file")
        import torch

        if threads:
            torch.set_num_threads(threads)
        attrs = {"model": str(model), "modality": modality, "pooling": pooling, "rc": rc, "per_token": per_token, "input": str(fasta)}
        n = embed_file(model, fasta, out, per_token=per_token, attrs=attrs, tokenizer=tokenizer, window=window,
                       overlap=overlap, pooling=pooling, rc=rc, batch_size=batch_size, device=device,
                       chunk_tokens=chunk_tokens, progress=not quiet, modality=modality)
    except (EmbedError, SequenceFormatError, FileNotFoundError, OSError) as e:
        fail(str(e))
    if n is not None and not quiet:  # None: a non-main process of `accelerate launch`
        typer.echo(f"{out}: {n:,} sequences embedded", err=True)
