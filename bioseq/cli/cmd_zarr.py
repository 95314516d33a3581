"""``bioseq zarr build`` / ``bioseq zarr info``: make and inspect Zarr v3 genome stores."""

from __future__ import annotations

from pathlib import Path

import typer

from bioseq.cli import debug_enabled

HELP = "Build and inspect chunked Zarr v3 genome stores."
app = typer.Typer(no_args_is_help=True, help=HELP)
LEVELS = {"blosc-zstd": (0, 9), "zstd": (1, 22)}  # valid --level per --compression


@app.command()
def build(
    fastas: list[Path] = typer.Argument(..., help="FASTA files (plain, gzip, bgzip, xz or bz2)."),
    out: Path = typer.Option(..., "-o", "--out", help="Output store directory (e.g. genomes.zarr)."),
    genome: list[str] = typer.Option(
        None, "--genome", "-g",
        help="Genome/species name, once per FASTA in the same order (default: the file name).",
    ),
    chunk_size: int = typer.Option(1 << 20, "--chunk-size", min=1, help="Bases per zarr chunk."),
    shard: bool = typer.Option(False, "--shard/--no-shard", help="Store chunks inside zarr v3 shards."),
    chunks_per_shard: int = typer.Option(64, "--chunks-per-shard", min=1, help="Chunks per shard with --shard."),
    compression: str = typer.Option("blosc-zstd", "--compression", help="blosc-zstd or zstd."),
    level: int = typer.Option(5, "--level", help="Compression level (blosc-zstd 0-9, zstd 1-22)."),
) -> None:
    """Build a genome store (atomic: written under a temporary name, renamed at the end)."""
    from bioseq.data.store import FORMAT_NAME, GenomeStore, build_store
    from bioseq.io.atomic import check_output
    from bioseq.io.compression import check_input_file
    from bioseq.io.errors import SequenceFormatError

    if genome and len(genome) != len(fastas):
        raise typer.BadParameter(f"{len(genome)} --genome names for {len(fastas)} FASTA files", param_hint="--genome")
    lo, hi = LEVELS.get(compression, (None, None))
    if lo is not None and not lo <= level <= hi:
        raise typer.BadParameter(f"{level} is outside {lo}..{hi} for {compression}", param_hint="--level")
    check_output(out, fastas, directory=True, replaces=FORMAT_NAME)  # before reading anything
    for f in fastas:
        check_input_file(f)
    try:
        build_store(
            fastas, out, genome or None, chunk_size=chunk_size,
            chunks_per_shard=chunks_per_shard if shard else None,
            compression=compression, level=level, progress=True,
        )
    except (SequenceFormatError, FileNotFoundError, FileExistsError, ValueError) as e:
        if debug_enabled():
            raise
        typer.secho(f"error: {e}", fg="red", err=True)
        raise typer.Exit(1) from None
    store = GenomeStore.open(out)
    typer.echo(f"wrote {out}: {len(store.genomes)} genomes, {len(store.contigs)} contigs, "
               f"{int(store.lengths.sum()):,} bp")


@app.command()
def info(
    store: str = typer.Argument(..., help="Store path or fsspec URL."),
    json_out: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """List the genomes and contigs of a store."""
    import json

    from rich.console import Console
    from rich.table import Table

    from bioseq.data.store import GenomeStore, StoreFormatError

    try:
        gs = GenomeStore.open(store)
    except (StoreFormatError, FileNotFoundError) as e:
        if debug_enabled():
            raise
        typer.secho(f"error: {e}", fg="red", err=True)
        raise typer.Exit(1) from None
    if json_out:
        typer.echo(json.dumps({"url": gs.url, "format_version": gs.format_version,
                               "chunk_size": gs.chunk_size, "contigs": gs.info()}, indent=1))
        return
    table = Table(title=f"{gs.url}  (format v{gs.format_version}, chunk {gs.chunk_size:,} bp)")
    for col in ("genome", "contig", "length", "non-ACGT", "md5", "source"):
        table.add_column(col, justify="right" if col in ("length", "non-ACGT") else "left")
    for c in gs.contigs:
        table.add_row(c.genome, c.name, f"{c.length:,}", f"{c.n_ambiguous:,}", c.md5, c.source)
    console = Console()
    if not console.is_terminal:  # piped: do not squeeze names and MD5s into 80 columns
        console = Console(width=200)
    console.print(table)
    console.print(f"{len(gs.genomes)} genomes, {len(gs.contigs)} contigs, {int(gs.lengths.sum()):,} bp")


@app.command()
def verify(
    store: str = typer.Argument(..., help="Store path or fsspec URL."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Read every chunk and recompute every contig's MD5 against the store's record (exit 1 on any mismatch)."""
    from bioseq.data.store import GenomeStore, StoreFormatError, StoreIntegrityError

    try:
        gs = GenomeStore.open(store)
        problems = gs.verify(progress=not quiet)
    except (StoreFormatError, StoreIntegrityError, FileNotFoundError) as e:
        typer.secho(f"error: {e}", fg="red", err=True)
        raise typer.Exit(1) from None
    for contig, problem in problems:
        typer.secho(f"error: {store}: contig {contig.name!r} (genome {contig.genome!r}): {problem}", fg="red", err=True)
    if problems:
        typer.secho(f"{store}: {len(problems)} of {len(gs.contigs)} contigs FAILED verification", fg="red", err=True)
        raise typer.Exit(1)
    checks = "chunk CRC32Cs and contig MD5s" if gs.checksummed else "contig MD5s only (format v1: no chunk checksums)"
    typer.echo(f"{store}: OK, {len(gs.contigs)} contigs, {int(gs.lengths.sum()):,} bp; checked {checks}")
