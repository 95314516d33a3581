"""``bioseq index``: build an embed-search-align index of a reference genome."""

from __future__ import annotations

from pathlib import Path

import typer

HELP = "Build a neural alignment index (.esa) of a reference FASTA."


def command(
    reference: str = typer.Argument(..., help="Reference FASTA (plain, gzip, bgzip or xz)."),
    out: Path = typer.Option(None, "-o", "--out", help="Index directory (default: <reference>.esa)."),
    embedding: str = typer.Option("sketch", "--embedding", help="Fragment embedding: sketch (k-mer count sketch, seconds to build) | neural (the encoder network)."),
    encoder: Path = typer.Option(None, "--encoder", help="Encoder checkpoint for --embedding neural (default: the bundled one)."),
    sketch_k: int = typer.Option(10, "--sketch-k", help="k-mer size of the sketch embedding."),
    sketch_dim: int = typer.Option(2048, "--sketch-dim", help="Dimensions of the sketch embedding."),
    fragment_len: int = typer.Option(None, "--fragment-len", help="Reference fragment length (bp; default 300 for sketch, 256 for neural)."),
    stride: int = typer.Option(None, "--stride", help="Fragment stride; reads up to fragment_len - stride bp fit one fragment (default 150 sketch, 96 neural)."),
    k: int = typer.Option(15, "-k", help="Minimizer k-mer size."),
    w: int = typer.Option(10, "-w", help="Minimizer window."),
    hnsw_above: int = typer.Option(100_000, "--hnsw-above", help="Use HNSW instead of an exact index above this many fragments."),
    threads: int = typer.Option(1, "-t", "--threads", help="Threads."),
    block: int = typer.Option(1024, "--block", help="Fragments per embedding block (the unit split across processes)."),
) -> None:
    """Tile the reference into overlapping fragments, embed them (k-mer sketches by default, or the
    encoder network) and build the FAISS + seed index.

    Under `accelerate launch --num_processes N -m bioseq index ...` the fragments are embedded by N
    processes (CPU or GPU) and gathered; the index is identical to a single-process build."""
    import faiss

    from bioseq.align.encoder import load_encoder
    from bioseq.align.index import IndexParams, build_index
    from bioseq.align.reference import InputError

    faiss.omp_set_num_threads(threads)
    out = out or Path(str(reference).removesuffix(".gz").removesuffix(".xz") + ".esa")
    try:
        if embedding == "sketch":
            from bioseq.align.sketch import SketchEncoder

            enc = SketchEncoder(sketch_k, sketch_dim)
            fragment_len, stride = fragment_len or 300, stride or 150
        elif embedding == "neural":
            import torch  # only the network needs it

            torch.set_num_threads(threads)
            enc = load_encoder(encoder)
            fragment_len, stride = fragment_len or 256, stride or 96
        else:
            raise ValueError(f"--embedding must be sketch or neural, got {embedding!r}")
        params = IndexParams(fragment_len=fragment_len, stride=stride, k=k, w=w, hnsw_above=hnsw_above)
        m = build_index(reference, out, enc, params, block=block)
    except (InputError, ValueError, FileNotFoundError) as e:
        typer.echo(f"bioseq index: error: {e}", err=True)
        raise typer.Exit(1) from None
    if not m:  # a non-main process of a distributed build
        return
    bp = sum(c["length"] for c in m["contigs"])
    typer.echo(f"{out}: {len(m['contigs'])} contigs, {bp:,} bp, {m['n_fragments']:,} fragments "
               f"({m['faiss']}), encoder {m['encoder']['fingerprint']}, {m['build_seconds']} s", err=True)
