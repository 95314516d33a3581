"""The ``.esa`` alignment index: on-disk format, building and loading.

An index is a directory (written under a temporary name and renamed, so a killed build never
leaves something that looks complete)::

    ref.esa/
      manifest.json     format "bioseq-esa-index", format_version, encoder fingerprint + config,
                        fragment_len, stride, read window, minimizer k/w, FAISS kind,
                        contigs [{name, length, md5, offset}]
      reference.npy     (G,) uint8 alphabet codes of all contigs, concatenated
      fragments.npy     (N,) int64 global start of every fragment
      embeddings.npy    (N, dim) float32 L2-normalised fragment embeddings (network encoders only:
                        a k-mer sketch is recomputed from the reference when needed)
      faiss.index       inner-product index over the embeddings (flat, or HNSW for large genomes)
      minimizers.npz    sorted minimizer hashes and their global positions
      reseed.npz        the same for short (k ~ 12) minimizers, for the re-seeding round

Fragments of ``fragment_len`` bp are tiled every ``stride`` bp per contig (the last one flush with
the contig end), so every read window of up to ``fragment_len - stride`` bp lies wholly inside at
least one fragment. Reads longer than that are embedded as several windows.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bioseq.align.encoder import Encoder
from bioseq.align.minimizers import SeedTable, build_table
from bioseq.align.reference import Contig, InputError, read_reference

FORMAT = "bioseq-esa-index"
FORMAT_VERSION = 1


class IndexError_(InputError):
    """An index that cannot be used (wrong format, version or encoder)."""


@dataclass
class IndexParams:
    """How a reference is tiled and indexed.

    Attributes:
        fragment_len: bp per reference fragment (the encoder's training fragment length).
        stride: bp between fragment starts; reads up to ``fragment_len - stride`` fit one fragment.
        k, w: minimizer k-mer size and window for the seed table.
        reseed_k, reseed_w: the same for the short-seed table of the re-seeding round (divergent
            and short reads); ``reseed_k=0`` builds none.
        hnsw_above: number of fragments above which the FAISS index is HNSW instead of exact.
    """

    fragment_len: int = 256
    stride: int = 96
    k: int = 15
    w: int = 10
    hnsw_above: int = 100_000
    reseed_k: int = 12
    reseed_w: int = 4

    def __post_init__(self) -> None:
        if not 0 < self.stride < self.fragment_len:
            raise ValueError(f"stride must be in (0, fragment_len); got {self.stride}, {self.fragment_len}")
        if not 8 <= self.k <= 31 or self.w < 1:
            raise ValueError(f"minimizer k must be 8..31 and w >= 1; got k={self.k} w={self.w}")
        if self.reseed_k and (not 8 <= self.reseed_k <= 31 or self.reseed_w < 1):
            raise ValueError(f"re-seeding k must be 8..31 and w >= 1; got k={self.reseed_k} w={self.reseed_w}")

    @property
    def window(self) -> int:
        return self.fragment_len - self.stride


def tile(length: int, fragment_len: int, stride: int) -> np.ndarray:
    """Fragment starts covering ``[0, length)``: every ``stride``, plus one flush with the end."""
    if length <= fragment_len:
        return np.zeros(1, dtype=np.int64)
    starts = np.arange(0, length - fragment_len + 1, stride, dtype=np.int64)
    if starts[-1] != length - fragment_len:
        starts = np.append(starts, length - fragment_len)
    return starts


def build_index(reference: str | Path, out: str | Path, encoder, params: IndexParams | None = None,
                progress: bool = True, block: int | None = None) -> dict:
    """Build an index for ``reference`` (FASTA, plain/gzip/xz) with ``encoder`` (a network
    :class:`~bioseq.align.encoder.Encoder` or a :class:`~bioseq.align.sketch.SketchEncoder`) into ``out``.
    ``block`` fragments are embedded per progress step (and per process when distributed)."""
    import faiss
    from tqdm import tqdm

    params = params or IndexParams()
    t0 = time.time()
    contigs = read_reference(reference)
    offsets = np.cumsum([0] + [c.length for c in contigs])
    ref = np.concatenate([c.codes for c in contigs])
    starts = np.concatenate([tile(c.length, params.fragment_len, params.stride) + off
                             for c, off in zip(contigs, offsets[:-1])])
    ends = np.minimum(starts + params.fragment_len, np.repeat(offsets[1:], [len(tile(c.length, params.fragment_len, params.stride)) for c in contigs]))
    emb = np.empty((len(starts), encoder.dim), dtype=np.float32)
    block = block or encoder.micro_batch * 16
    rank, world, state = _distributed()
    # under `accelerate launch` every process embeds every world-th block; embeddings do not
    # depend on batching (fixed micro-batches), so the gathered result equals one process's
    mine = list(range(0, len(starts), block))[rank::world]
    done = []
    for s in tqdm(mine, desc="embedding fragments", unit="blk", disable=not progress or rank != 0):
        e = min(len(starts), s + block)
        x = encoder.embed([ref[a:b] for a, b in zip(starts[s:e], ends[s:e])], params.fragment_len)
        if world > 1:
            done.append((s, x))
        else:  # straight into place: no second copy of every embedding
            emb[s:e] = x
    if world > 1:
        from accelerate.utils import gather_object

        done = gather_object(done)
    for s, x in done:
        emb[s : s + len(x)] = x
    if rank != 0:  # only the main process writes the index
        state.wait_for_everyone()
        return {}
    if len(starts) > params.hnsw_above:
        index = faiss.IndexHNSWFlat(encoder.dim, 32, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = 80
        kind = "hnsw32"
    else:
        index = faiss.IndexFlatIP(encoder.dim)
        kind = "flat"
    index.add(emb)
    hashes, positions = build_table(ref, params.k, params.w)
    reseed = build_table(ref, params.reseed_k, params.reseed_w) if params.reseed_k else None
    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "encoder": {"fingerprint": encoder.fingerprint, "config": encoder.config},
        "fragment_len": params.fragment_len, "stride": params.stride, "window": params.window,
        "k": params.k, "w": params.w, "reseed_k": params.reseed_k, "reseed_w": params.reseed_w, "faiss": kind, "n_fragments": int(len(starts)),
        "reference": str(reference),
        "contigs": [{"name": c.name, "length": c.length, "md5": c.md5, "offset": int(o)}
                    for c, o in zip(contigs, offsets[:-1])],
        "build_seconds": round(time.time() - t0, 2),
    }
    out = Path(out)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent if str(out.parent) else "."))
    try:
        np.save(tmp / "reference.npy", ref)
        np.save(tmp / "fragments.npy", starts)
        if not is_sketch(manifest):  # a fragment's sketch is recomputed from the reference when needed
            np.save(tmp / "embeddings.npy", emb)
        faiss.write_index(index, str(tmp / "faiss.index"))
        np.savez(tmp / "minimizers.npz", hashes=hashes, positions=positions)
        if reseed is not None:
            np.savez(tmp / "reseed.npz", hashes=reseed[0], positions=reseed[1])
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
        old = None
        if out.exists():
            old = out.with_name(f".{out.name}.old-{os.getpid()}")
            os.replace(out, old)
        os.replace(tmp, out)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    if world > 1:
        state.wait_for_everyone()
    return manifest


def is_sketch(manifest: dict) -> bool:
    """Whether the index's embeddings are k-mer sketches (:mod:`bioseq.align.sketch`), not a network's."""
    return manifest["encoder"]["config"].get("model_type") == "sketch"


def index_encoder(index: Index, path: str | Path | None = None, threads: int | None = None):
    """The encoder that embeds reads for ``index``: the sketch it was built with, or the network at
    ``path`` (default: the bundled one), checked against the index's fingerprint."""
    from bioseq.align.encoder import load_encoder
    from bioseq.align.sketch import SketchEncoder

    if is_sketch(index.manifest):
        return SketchEncoder.from_config(index.manifest["encoder"]["config"])
    enc = load_encoder(path, threads=threads)
    _check_encoder(index.path, index.manifest, enc)
    return enc


def _check_encoder(path: Path, manifest: dict, encoder) -> None:
    if manifest["encoder"]["fingerprint"] != encoder.fingerprint:
        raise IndexError_(f"{path}: built with encoder {manifest['encoder']['fingerprint']} but aligning with "
                          f"encoder {encoder.fingerprint} ({encoder.path}); embeddings from different encoders "
                          f"are not comparable: rebuild the index or pass the matching --encoder")


def _distributed() -> tuple[int, int, object]:
    """(rank, world size, accelerate state) when launched with several processes, else (0, 1, None)."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return 0, 1, None
    from accelerate import PartialState

    state = PartialState()
    return state.process_index, state.num_processes, state


@dataclass
class Index:
    """A loaded index (see the module docstring for the files)."""

    path: Path
    manifest: dict
    reference: np.ndarray
    fragments: np.ndarray
    embeddings: np.ndarray
    seeds: SeedTable
    contigs: list[Contig]
    offsets: np.ndarray  # (n_contigs + 1,) global start of each contig, then the total length
    ef_search: int = 128  # HNSW search breadth
    _faiss: object = field(default=None, init=False, repr=False)  # read on first use
    _reseed: object = field(default=False, init=False, repr=False)  # read on first use (False: not yet)

    @property
    def fragment_len(self) -> int:
        return int(self.manifest["fragment_len"])

    @property
    def window(self) -> int:
        return int(self.manifest["window"])

    @property
    def faiss_index(self):
        """The FAISS index, read on first use (seed-only alignment never needs it)."""
        if self._faiss is None:
            import faiss

            self._faiss = faiss.read_index(str(self.path / "faiss.index"))
            if self.manifest["faiss"].startswith("hnsw"):
                self._faiss.hnsw.efSearch = self.ef_search
        return self._faiss

    @property
    def reseed(self) -> SeedTable | None:
        """The short-seed table of the re-seeding round, read on first use (None: the index has none)."""
        if self._reseed is False:
            self._reseed = None
            if self.manifest.get("reseed_k") and (self.path / "reseed.npz").exists():
                rz = np.load(self.path / "reseed.npz")
                self._reseed = SeedTable(rz["hashes"], rz["positions"], self.manifest["reseed_k"],
                                         self.manifest["reseed_w"])
        return self._reseed

    def contig_of(self, pos: int) -> int:
        return int(np.searchsorted(self.offsets, pos, "right") - 1)


def load_index(path: str | Path, encoder: Encoder | None = None, ef_search: int = 128) -> Index:
    """Open an index, checking its format, version and (if given) that ``encoder`` built it."""
    path = Path(path)
    mf = path / "manifest.json"
    if not mf.exists():
        raise IndexError_(f"{path}: not a bioseq alignment index (no manifest.json); build one with `bioseq index`")
    manifest = json.loads(mf.read_text())
    if manifest.get("format") != FORMAT:
        raise IndexError_(f"{path}: format {manifest.get('format')!r} is not {FORMAT!r}")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise IndexError_(f"{path}: index format_version {manifest.get('format_version')} is not supported "
                          f"(this bioseq reads version {FORMAT_VERSION}); rebuild it with `bioseq index`")
    if encoder is not None:
        _check_encoder(path, manifest, encoder)
    ref = np.load(path / "reference.npy")
    contigs = [Contig(c["name"], ref[c["offset"]: c["offset"] + c["length"]]) for c in manifest["contigs"]]
    offsets = np.array([c["offset"] for c in manifest["contigs"]] + [ref.shape[0]], dtype=np.int64)
    if not (path / "faiss.index").exists():
        raise IndexError_(f"{path}: faiss.index is missing; rebuild the index with `bioseq index`")
    mz = np.load(path / "minimizers.npz")
    seeds = SeedTable(mz["hashes"], mz["positions"], manifest["k"], manifest["w"])
    fragments = np.load(path / "fragments.npy")
    if is_sketch(manifest):
        from bioseq.align.sketch import FragmentSketches, SketchEncoder

        emb = FragmentSketches(SketchEncoder.from_config(manifest["encoder"]["config"]), ref, fragments,
                               int(manifest["fragment_len"]), offsets)
    else:  # read in place (memory-mapped): only the fragments a search touches are paged in
        emb = np.load(path / "embeddings.npy", mmap_mode="r")
    return Index(path, manifest, ref, fragments, emb, seeds, contigs, offsets, ef_search)
