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

Integrity: the manifest (written last) records the size and SHA-256 of every other file. Opening
an index checks what is cheap: the manifest's keys and types, every file's size, the SHA-256 of
files up to :data:`HASH_ON_OPEN_BYTES`, array shapes and dtypes, and the FAISS file's header
(magic, dimension, vector count, and for flat indexes its exact size) *before* FAISS parses it,
since ``faiss.read_index`` aborts the process on a malformed file. :func:`verify_index`
(``bioseq index --verify``, ``bioseq align --verify-index``) also hashes every file and recomputes
each contig's MD5 from ``reference.npy``. Indexes written before sizes and hashes were recorded
still open, with the shape and header checks only.

Fragments of ``fragment_len`` bp are tiled every ``stride`` bp per contig (the last one flush with
the contig end), so every read window of up to ``fragment_len - stride`` bp lies wholly inside at
least one fragment. Reads longer than that are embedded as several windows.
"""

from __future__ import annotations

import json
import os
import struct
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bioseq.align.encoder import Encoder
from bioseq.align.minimizers import SeedTable, build_table
from bioseq.align.reference import Contig, InputError, read_reference
from bioseq.io.atomic import atomic_dir, check_output
from bioseq.utils.checksum import file_sha256
from bioseq.utils.jsonfile import read_json_object

FORMAT = "bioseq-esa-index"
FORMAT_VERSION = 1  # "files" (sizes + SHA-256) is optional, so version 1 readers still read new indexes
FILES = ("reference.npy", "fragments.npy", "faiss.index", "minimizers.npz")  # required in every index
NETWORK_FILES = ("embeddings.npy",)  # required too when a network (not a k-mer sketch) built the index
HASH_ON_OPEN_BYTES = 64 << 20  # files up to this size are hashed on every open (~0.1 s each at most)


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
    # refuse before writing: an input, a folder that is not an index, a path inside an index
    check_output(out, [reference, getattr(encoder, "path", None)], directory=True, replaces=FORMAT)
    with atomic_dir(out) as tmp:  # swapped in whole; removed on failure or SIGTERM/SIGINT
        np.save(tmp / "reference.npy", ref)
        np.save(tmp / "fragments.npy", starts)
        if not is_sketch(manifest):  # a fragment's sketch is recomputed from the reference when needed
            np.save(tmp / "embeddings.npy", emb)
        faiss.write_index(index, str(tmp / "faiss.index"))
        np.savez(tmp / "minimizers.npz", hashes=hashes, positions=positions)
        if reseed is not None:
            np.savez(tmp / "reseed.npz", hashes=reseed[0], positions=reseed[1])
        manifest["files"] = {f.name: {"size": f.stat().st_size, "sha256": file_sha256(f)}
                             for f in sorted(tmp.iterdir()) if f.name != "manifest.json"}
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    if world > 1:
        state.wait_for_everyone()
    return manifest


def is_sketch(manifest: dict) -> bool:
    """Whether the index's embeddings are k-mer sketches (:mod:`bioseq.align.sketch`), not a network's."""
    config = (manifest.get("encoder") or {}).get("config")
    return isinstance(config, dict) and config.get("model_type") == "sketch"


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

            try:  # load_index checked size and header; this catches what only FAISS can see
                self._faiss = faiss.read_index(str(self.path / "faiss.index"))
            except RuntimeError as e:
                first = str(e).strip().rsplit("Error: ", 1)[-1][:200]
                raise IndexError_(f"{self.path / 'faiss.index'}: FAISS cannot read it ({first}); "
                                  "rebuild the index with `bioseq index`") from None
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


_MANIFEST_KEYS = {"format": str, "format_version": int, "encoder": dict, "fragment_len": int, "stride": int,
                  "window": int, "k": int, "w": int, "faiss": str, "n_fragments": int, "contigs": list}
_CONTIG_KEYS = {"name": str, "length": int, "md5": str, "offset": int}


def read_manifest(path: Path) -> dict:
    """``manifest.json`` of the index at ``path``, with every key the reader uses checked."""
    mf = path / "manifest.json"
    if not mf.exists():
        raise IndexError_(f"{path}: not a bioseq alignment index (no manifest.json); build one with `bioseq index`")
    manifest = read_json_object(mf, IndexError_)
    if manifest.get("format") != FORMAT:
        raise IndexError_(f"{path}: format {manifest.get('format')!r} is not {FORMAT!r}")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise IndexError_(f"{path}: index format_version {manifest.get('format_version')} is not supported "
                          f"(this bioseq reads version {FORMAT_VERSION}); rebuild it with `bioseq index`")

    def check(obj: dict, keys: dict, where: str) -> None:
        for k, t in keys.items():
            if k not in obj:
                raise IndexError_(f"{mf}: {where}lacks the key {k!r}; rebuild the index with `bioseq index`")
            v = obj[k]
            if not isinstance(v, t) or isinstance(v, bool) or (t is int and v < 0):
                raise IndexError_(f"{mf}: {where}{k!r} must be {'a non-negative int' if t is int else t.__name__}, "
                                  f"got {v!r}")

    check(manifest, _MANIFEST_KEYS, "")
    check(manifest["encoder"], {"fingerprint": str}, "encoder: ")
    if not manifest["contigs"]:
        raise IndexError_(f"{mf}: no contigs")
    pos = 0
    for j, c in enumerate(manifest["contigs"]):
        if not isinstance(c, dict):
            raise IndexError_(f"{mf}: contigs[{j}] is not an object")
        check(c, _CONTIG_KEYS, f"contigs[{j}]: ")
        if c["offset"] != pos:
            raise IndexError_(f"{mf}: contigs[{j}] ({c['name']!r}) starts at {c['offset']}, expected {pos}")
        pos += c["length"]
    files = manifest.get("files")
    if files is not None:  # file name -> {size, sha256}; names are plain names inside the index folder
        if not isinstance(files, dict) or not all(
                isinstance(v, dict) and isinstance(v.get("size"), int) and isinstance(v.get("sha256"), str)
                and "/" not in n and "\\" not in n and not n.startswith(".") for n, v in files.items()):
            raise IndexError_(f"{mf}: 'files' must map plain file names to their size and sha256")
        if missing := [n for n in required_files(manifest) if n not in files]:
            raise IndexError_(f"{mf}: 'files' does not record {', '.join(missing)}")
    return manifest


def required_files(manifest: dict) -> tuple[str, ...]:
    """The files an index must hold: a sketch index stores no embedding matrix."""
    return FILES if is_sketch(manifest) else FILES + NETWORK_FILES


def check_files(path: Path, manifest: dict, hash_up_to: int | None = HASH_ON_OPEN_BYTES) -> None:
    """Every index file exists, has the size the manifest records, and (up to ``hash_up_to``
    bytes, None = all) its SHA-256."""
    recorded = manifest.get("files") or {}
    for name in dict.fromkeys([*required_files(manifest), *recorded]):
        f = path / name
        if not f.is_file():
            raise IndexError_(f"{path}: {name} is missing; rebuild the index with `bioseq index`")
        if name not in recorded:
            continue
        size, want = f.stat().st_size, recorded[name]
        if size != want["size"]:
            raise IndexError_(f"{f}: {size:,} bytes, the manifest records {want['size']:,} "
                              "(truncated or replaced); rebuild the index with `bioseq index`")
        if (hash_up_to is None or size <= hash_up_to) and file_sha256(f) != want["sha256"]:
            raise IndexError_(f"{f}: SHA-256 differs from the manifest's (the file is corrupted); "
                              "rebuild the index with `bioseq index`")


_FAISS_MAGIC = {"flat": b"IxFI", "hnsw": b"IHNf"}
_FAISS_HEADER = struct.Struct("<4siqqq?i")  # fourcc, d, ntotal, 2 unused, is_trained, metric (37 bytes)


def check_faiss_header(path: Path, manifest: dict, dim: int) -> None:
    """Check ``faiss.index`` against the manifest before FAISS reads it: FAISS parses the file in
    C++ and aborts the whole process (no exception) on a truncated or malformed one."""
    f = path / "faiss.index"
    size = f.stat().st_size
    with open(f, "rb") as fh:
        head = fh.read(_FAISS_HEADER.size + 8)
    kind = "hnsw" if manifest["faiss"].startswith("hnsw") else manifest["faiss"]
    if kind not in _FAISS_MAGIC:
        raise IndexError_(f"{path}/manifest.json: unknown FAISS kind {manifest['faiss']!r}")
    if len(head) < _FAISS_HEADER.size + 8:
        raise IndexError_(f"{f}: truncated ({size} bytes)")
    magic, d, ntotal, _, _, _, metric = _FAISS_HEADER.unpack_from(head)
    n = manifest["n_fragments"]
    if magic != _FAISS_MAGIC[kind] or d != dim or ntotal != n or metric != 0:  # 0: METRIC_INNER_PRODUCT
        raise IndexError_(f"{f}: header says {magic!r} d={d} n={ntotal} metric={metric}, the index needs "
                          f"{_FAISS_MAGIC[kind]!r} d={dim} n={n} inner product; rebuild the index with `bioseq index`")
    if kind == "flat":  # header, then a length-prefixed float vector of n * d
        (count,) = struct.unpack_from("<Q", head, _FAISS_HEADER.size)
        if count != n * d or size != _FAISS_HEADER.size + 8 + 4 * n * d:
            raise IndexError_(f"{f}: {size:,} bytes, a flat index of {n} x {d} takes "
                              f"{_FAISS_HEADER.size + 8 + 4 * n * d:,} (truncated?)")


def _load_array(f: Path, **kwargs):
    try:
        return np.load(f, allow_pickle=False, **kwargs)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as e:
        raise IndexError_(f"{f}: unreadable ({e}); rebuild the index with `bioseq index`") from None


def _expect(f: Path, arr: np.ndarray, shape: tuple, dtype: str) -> None:
    if arr.shape != shape or arr.dtype != np.dtype(dtype):
        raise IndexError_(f"{f}: array {arr.shape} {arr.dtype}, the manifest implies {shape} {dtype}")


def load_index(path: str | Path, encoder: Encoder | None = None, ef_search: int = 128) -> Index:
    """Open an index, checking its format, version, files (see the module docstring) and, if
    given, that ``encoder`` built it.

    Raises:
        IndexError_: naming the file and the problem.
    """
    path = Path(path)
    manifest = read_manifest(path)
    if encoder is not None:
        _check_encoder(path, manifest, encoder)
    check_files(path, manifest)
    total = sum(c["length"] for c in manifest["contigs"])
    n = manifest["n_fragments"]
    ref = _load_array(path / "reference.npy")
    _expect(path / "reference.npy", ref, (total,), "uint8")
    fragments = _load_array(path / "fragments.npy")
    _expect(path / "fragments.npy", fragments, (n,), "int64")
    if n and (fragments.min() < 0 or fragments.max() >= total):
        raise IndexError_(f"{path / 'fragments.npy'}: fragment starts outside the reference")
    offsets = np.array([c["offset"] for c in manifest["contigs"]] + [ref.shape[0]], dtype=np.int64)
    if is_sketch(manifest):  # sketches are recomputed from the reference when a row is needed
        from bioseq.align.sketch import FragmentSketches, SketchEncoder

        try:
            sketch = SketchEncoder.from_config(manifest["encoder"]["config"])
        except (KeyError, TypeError, ValueError) as e:
            raise IndexError_(f"{path / 'manifest.json'}: bad sketch encoder config ({e})") from None
        emb, dim = FragmentSketches(sketch, ref, fragments, int(manifest["fragment_len"]), offsets), sketch.dim
    else:  # read in place (memory-mapped): only the fragments a search touches are paged in
        emb = _load_array(path / "embeddings.npy", mmap_mode="r")
        dim = emb.shape[1] if emb.ndim == 2 else -1
        _expect(path / "embeddings.npy", emb, (n, dim if encoder is None else encoder.dim), "float32")
    check_faiss_header(path, manifest, dim)
    with _load_array(path / "minimizers.npz") as mz:
        try:
            hashes, positions = mz["hashes"], mz["positions"]
        except (KeyError, ValueError, OSError, EOFError, zipfile.BadZipFile) as e:
            raise IndexError_(f"{path / 'minimizers.npz'}: unreadable ({e})") from None
    if hashes.shape != positions.shape or hashes.ndim != 1:
        raise IndexError_(f"{path / 'minimizers.npz'}: hashes {hashes.shape} and positions {positions.shape} differ")
    seeds = SeedTable(hashes, positions, manifest["k"], manifest["w"])
    contigs = [Contig(c["name"], ref[c["offset"]: c["offset"] + c["length"]]) for c in manifest["contigs"]]
    return Index(path, manifest, ref, fragments, emb, seeds, contigs, offsets, ef_search)


def verify_index(path: str | Path, encoder: Encoder | None = None) -> list[str]:
    """Everything :func:`load_index` checks, plus the SHA-256 of every file, each contig's MD5
    recomputed from ``reference.npy``, and FAISS's own reading of ``faiss.index``.

    Returns:
        problems (empty when the index is intact); each names the file or contig.
    """
    path = Path(path)
    try:
        idx = load_index(path, encoder)
        check_files(path, idx.manifest, hash_up_to=None)
    except IndexError_ as e:
        return [str(e)]
    problems = [f"{path}: contig {c.name!r}: MD5 of reference.npy's bases is {c.md5}, the manifest records {m['md5']}"
                for c, m in zip(idx.contigs, idx.manifest["contigs"], strict=True) if c.md5 != m["md5"]]
    try:
        fi = idx.faiss_index
    except IndexError_ as e:
        return problems + [str(e)]
    dim = idx.embeddings.encoder.dim if is_sketch(idx.manifest) else idx.embeddings.shape[1]
    if fi.ntotal != idx.manifest["n_fragments"] or fi.d != dim:
        problems.append(f"{path / 'faiss.index'}: {fi.ntotal} vectors of {fi.d}, expected "
                        f"{idx.manifest['n_fragments']} of {dim}")
    return problems
