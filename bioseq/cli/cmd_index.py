"""``bioseq index``: build an embed-search-align index of a reference genome."""

from __future__ import annotations

from pathlib import Path

import typer

from bioseq.cli import debug_enabled

HELP = "Build a neural alignment index (.esa) of a reference FASTA."


def command(
    reference: str = typer.Argument(..., help="Reference FASTA (plain, gzip, bgzip or xz)."),
    out: Path = typer.Option(None, "-o", "--out", help="Index directory (default: <reference>.esa)."),
    embedding: str = typer.Option(None, "--embedding", help="Fragment embedding: sketch (k-mer count sketch, seconds to build; the default) | neural (the encoder network; the default when --encoder is given)."),
    encoder: Path = typer.Option(None, "--encoder", help="Encoder checkpoint for --embedding neural (default: the bundled one)."),
    sketch_k: int = typer.Option(10, "--sketch-k", min=4, max=31, help="k-mer size of the sketch embedding."),
    sketch_dim: int = typer.Option(2048, "--sketch-dim", min=2, help="Dimensions of the sketch embedding."),
    fragment_len: int = typer.Option(None, "--fragment-len", min=2, help="Reference fragment length (bp; default 300 for sketch; for neural, the encoder's own, else 256)."),
    stride: int = typer.Option(None, "--stride", min=1, help="Fragment stride; reads up to fragment_len - stride bp fit one fragment (default 150 sketch; for neural, the encoder's own, else 96)."),
    k: int = typer.Option(15, "-k", min=8, max=31, help="Minimizer k-mer size."),
    w: int = typer.Option(10, "-w", min=1, help="Minimizer window."),
    hnsw_above: int = typer.Option(100_000, "--hnsw-above", min=1, help="Use HNSW instead of an exact index above this many fragments."),
    threads: int = typer.Option(1, "-t", "--threads", min=1, help="Threads."),
    block: int = typer.Option(1024, "--block", min=1, help="Fragments per embedding block (the unit split across processes)."),
    verify: bool = typer.Option(False, "--verify", help="Build nothing: check an existing index (REFERENCE may be the "
                                "index itself): file hashes, contig MD5s of reference.npy, the FAISS file. Exit 1 on any problem."),
) -> None:
    """Tile the reference into overlapping fragments, embed them (k-mer sketches by default, or the
    encoder network) and build the FAISS + seed index.

    Under `accelerate launch --num_processes N -m bioseq index ...` the fragments are embedded by N
    processes (CPU or GPU) and gathered; the index is identical to a single-process build."""
    import faiss

    from bioseq.align.encoder import load_encoder
    from bioseq.align.index import FORMAT, IndexParams, build_index
    from bioseq.align.reference import InputError
    from bioseq.io.atomic import check_output

    faiss.omp_set_num_threads(threads)
    out = out or Path(str(reference).removesuffix(".gz").removesuffix(".xz") + ".esa")
    if verify:
        raise typer.Exit(_verify(Path(reference) if (Path(reference) / "manifest.json").exists() else out))
    # before any work: -o must not be the reference, a folder that is not an index, or inside one
    check_output(out, [reference, encoder], directory=True, replaces=FORMAT)
    try:
        embedding = embedding or ("neural" if encoder is not None else "sketch")
        if embedding == "sketch" and encoder is not None:
            raise ValueError("--encoder applies to --embedding neural, not to the k-mer sketch")
        if embedding == "sketch":
            from bioseq.align.sketch import SketchEncoder

            enc = SketchEncoder(sketch_k, sketch_dim)
            fragment_len, stride = fragment_len or 300, stride or 150
        elif embedding == "neural":
            import torch  # only the network needs it

            torch.set_num_threads(threads)
            enc = load_encoder(encoder)
            # an encoder trained for a tile geometry states it in its config
            fragment_len = fragment_len or int(enc.config.get("fragment_len", 256))
            stride = stride or int(enc.config.get("stride", 96))
        else:
            raise ValueError(f"--embedding must be sketch or neural, got {embedding!r}")
        params = IndexParams(fragment_len=fragment_len, stride=stride, k=k, w=w, hnsw_above=hnsw_above)
        m = build_index(reference, out, enc, params, block=block)
    except (InputError, ValueError, FileNotFoundError) as e:
        if debug_enabled():
            raise
        typer.echo(f"bioseq index: error: {e}", err=True)
        raise typer.Exit(1) from None
    if not m:  # a non-main process of a distributed build
        return
    bp = sum(c["length"] for c in m["contigs"])
    typer.echo(f"{out}: {len(m['contigs'])} contigs, {bp:,} bp, {m['n_fragments']:,} fragments "
               f"({m['faiss']}), encoder {m['encoder']['fingerprint']}, {m['build_seconds']} s", err=True)


def _verify(index: Path) -> int:
    """``bioseq index --verify``: print each problem of the index at ``index``; the exit code."""
    from bioseq.align.index import verify_index

    problems = verify_index(index)
    for p in problems:
        typer.echo(f"bioseq index: error: {p}", err=True)
    if not problems:
        typer.echo(f"{index}: OK (file hashes, contig MD5s, FAISS index)", err=True)
    return 1 if problems else 0
