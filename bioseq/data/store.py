"""The Zarr v3 genome store: build it from FASTA files, read random windows from it fast.

On-disk layout (full spec: ``docs/zarr_genome_store.md``)::

    genomes.zarr/
      zarr.json            group; attributes: format, format_version, encoding, chunk_size, contigs[], ...
      seq/0, seq/1, ...    one uint8 array per contig (bioseq.alphabet codes, bit 0x80 = soft-masked)
      ambiguous_runs       (K, 2) int64 [start, end) runs of non-ACGT bases, all contigs concatenated

Reading is designed around how training reads: many short random windows. A zarr slice per window
pays zarr's per-call overhead and decompresses a whole ~1 MiB chunk to return 1 kb, so
:class:`GenomeStore` instead keeps an LRU cache of *decoded* chunks per process, reads the chunks a
batch is missing at once (file reads for local stores, one concurrent gather through the zarr store
for URLs) and decodes them with numcodecs, then groups the windows by chunk and copies each group
out with one vectorised numpy gather. The store itself stays compressed, chunked
and readable through any fsspec URL.

Fork safety: zarr 3 runs an event-loop thread. :meth:`GenomeStore.open` reads only the root
``zarr.json`` (through fsspec, no zarr); zarr is first touched on the first data read, in the
process doing it, and a store that finds itself in a new process (a forked DataLoader worker)
reopens. Pickling keeps the URL and settings only, so a store is cheap to send to workers.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bioseq.alphabet import BASES, CODE_MASK, COMPLEMENT_LUT, DECODE_LUT, N_CODE, SOFTMASK, decode
from bioseq.io.atomic import atomic_dir
from bioseq.io.errors import SequenceFormatError, UserError
from bioseq.io.fasta import read_fasta

FORMAT_NAME = "bioseq-genome-store"
FORMAT_VERSION = 1
READABLE_VERSIONS = (1,)  # every version this reader understands; tests keep a store of each
ENCODING = "bioseq-nt8-v1"
DEFAULT_CHUNK_SIZE = 1 << 20
DEFAULT_CACHE_BYTES = 256 << 20


class StoreFormatError(UserError):
    """A path that is not a bioseq genome store, or one written by a newer bioseq."""


@dataclass(frozen=True)
class ContigInfo:
    """One contig of a store.

    Attributes:
        name: the FASTA record name.
        length: bases.
        md5: hex MD5 of the uppercase sequence (SAM ``@SQ M5``).
        genome: the genome/species group it belongs to.
        source: the FASTA file name it was read from.
        index: its position in the store (the id used by :meth:`GenomeStore.fetch_batch`).
        array: the zarr array path inside the store (``seq/<index>``).
        n_ambiguous: number of non-ACGT bases (N and other IUPAC codes).
    """

    name: str
    length: int
    md5: str
    genome: str
    source: str
    index: int
    array: str
    n_ambiguous: int = 0


# ---------------------------------------------------------------------------------------------
# building
# ---------------------------------------------------------------------------------------------

_FASTA_SUFFIXES = (".gz", ".bgz", ".xz", ".bz2", ".fa", ".fasta", ".fna", ".fas", ".ffn", ".seq")


def default_genome_name(path: str | os.PathLike) -> str:
    """``ecoli_K12.fa.gz`` -> ``ecoli_K12``: the file name without FASTA/compression suffixes."""
    name = Path(path).name
    changed = True
    while changed:
        changed = False
        for suf in _FASTA_SUFFIXES:
            if name.lower().endswith(suf) and len(name) > len(suf):
                name, changed = name[: -len(suf)], True
    return name


_MD5_STEP = 1 << 24


def sequence_md5(codes: np.ndarray) -> str:
    """MD5 of the uppercase sequence, as SAM ``@SQ M5`` defines it."""
    h = hashlib.md5()
    for i in range(0, len(codes), _MD5_STEP):  # in slices: no chromosome-sized temporaries
        h.update(DECODE_LUT[codes[i : i + _MD5_STEP] & CODE_MASK].tobytes())
    return h.hexdigest()


def ambiguous_runs(codes: np.ndarray) -> np.ndarray:
    """``(K, 2)`` int64 ``[start, end)`` runs of non-ACGT codes (N, IUPAC ambiguity, gaps)."""
    padded = np.zeros(len(codes) + 2, dtype=bool)
    padded[1:-1] = (codes & CODE_MASK) >= 4
    edges = np.flatnonzero(padded[1:] != padded[:-1])  # run starts and ends alternate
    return edges.reshape(-1, 2).astype(np.int64)


def _codecs(compression: str, level: int) -> list[Any]:
    from zarr.codecs import BloscCodec, ZstdCodec

    if compression == "blosc-zstd":
        # Bit-shuffling 1-byte codes puts the always-zero high bits of A/C/G/T (codes 0-3) in
        # separate bit planes: ~2.0 bits/base vs ~2.4 for plain zstd at a similar speed.
        return [BloscCodec(cname="zstd", clevel=level, shuffle="bitshuffle", typesize=1)]
    if compression == "zstd":
        return [ZstdCodec(level=level)]
    raise ValueError(f"compression must be 'blosc-zstd' or 'zstd', got {compression!r}")


def build_store(
    fastas: Sequence[str | os.PathLike],
    out: str | os.PathLike,
    genome_names: Sequence[str] | None = None,
    *,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    chunks_per_shard: int | None = None,
    compression: str = "blosc-zstd",
    level: int = 5,
    progress: bool = False,
) -> Path:
    """Build a genome store from FASTA files (any compression), atomically.

    Args:
        fastas: input FASTA files; contigs keep file order, then record order.
        out: the store directory (local). Built under a temporary sibling name and renamed into
            place at the end, so an interrupted build never leaves a complete-looking store, and
            rebuilding with the same inputs gives byte-identical files.
        genome_names: one genome/species group name per file (default: the file name without
            suffixes). Several files may share a genome (e.g. one file per chromosome).
        chunk_size: bases per zarr chunk (default 1 MiB).
        chunks_per_shard: if set, store chunks inside zarr v3 shards of this many chunks (fewer,
            larger objects: better for object stores and file systems with many small files).
        compression: ``"blosc-zstd"`` (bit-shuffled, default) or ``"zstd"``.
        level: compression level.
        progress: show a progress bar.

    Returns:
        the store path.

    Raises:
        SequenceFormatError: malformed FASTA, or a contig name repeated within one genome.
        FileExistsError: ``out`` exists and is not a genome store (it is never replaced).
    """
    import zarr

    fastas = [Path(f) for f in fastas]
    if not fastas:
        raise ValueError("build_store: no FASTA files given")
    if genome_names is None:
        genome_names = [default_genome_name(f) for f in fastas]
    if len(genome_names) != len(fastas):
        raise ValueError(f"build_store: {len(genome_names)} genome names for {len(fastas)} files")
    if chunk_size <= 0 or (chunks_per_shard is not None and chunks_per_shard <= 0):
        raise ValueError("chunk_size and chunks_per_shard must be positive")
    for f in fastas:
        if not f.exists():
            raise FileNotFoundError(f"{f}: no such file")
    codecs = _codecs(compression, level)
    out = Path(out)
    if out.exists():  # rebuilding replaces a store, never anything else that happens to be there
        try:
            _read_root_metadata(str(out), None)
        except (StoreFormatError, FileNotFoundError, NotADirectoryError) as e:
            raise FileExistsError(
                f"{out} exists and is not a {FORMAT_NAME} ({e}); remove it or choose another path"
            ) from None

    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=sum(f.stat().st_size for f in fastas), unit="B", unit_scale=True, desc="zarr build")

    with atomic_dir(out) as tmp:
        root = zarr.open_group(zarr.storage.LocalStore(tmp), mode="w", zarr_format=3)
        contigs: list[dict[str, Any]] = []
        runs: list[np.ndarray] = []
        n_runs = 0
        names_in_genome: dict[tuple[str, str], Path] = {}
        for path, genome in zip(fastas, genome_names, strict=True):
            for rec in read_fasta(path):
                if (genome, rec.name) in names_in_genome:
                    raise SequenceFormatError(
                        path,
                        f"duplicate contig name {rec.name!r} in genome {genome!r} "
                        f"(also in {names_in_genome[(genome, rec.name)]})",
                        record=rec.name,
                    )
                names_in_genome[(genome, rec.name)] = path
                i = len(contigs)
                info = {
                    "name": rec.name,
                    "length": len(rec.codes),
                    "md5": sequence_md5(rec.codes),
                    "genome": genome,
                    "source": path.name,
                }
                length = max(len(rec.codes), 1)
                chunks = min(chunk_size, length)
                shards = None
                if chunks_per_shard is not None:
                    shards = (min(chunk_size * chunks_per_shard, -(-length // chunks) * chunks),)
                arr = root.create_array(
                    f"seq/{i}", shape=(len(rec.codes),), chunks=(chunks,), shards=shards,
                    dtype="uint8", compressors=codecs, fill_value=N_CODE,
                    attributes=info, dimension_names=["position"],
                )
                arr[:] = rec.codes
                r = ambiguous_runs(rec.codes)
                runs.append(r)
                contigs.append({**info, "array": f"seq/{i}", "n_ambiguous": int((r[:, 1] - r[:, 0]).sum()),
                                "ambiguous_runs": [n_runs, n_runs + len(r)]})
                n_runs += len(r)
            if bar is not None:
                bar.update(path.stat().st_size)
        all_runs = np.concatenate(runs) if runs else np.zeros((0, 2), np.int64)
        root.create_array(
            "ambiguous_runs", shape=all_runs.shape, chunks=(max(len(all_runs), 1), 2), dtype="int64",
            compressors=[_codecs("zstd", 3)[0]], fill_value=0, dimension_names=["run", "bound"],
        )[...] = all_runs
        root.attrs.update({
            "format": FORMAT_NAME,
            "format_version": FORMAT_VERSION,
            "encoding": ENCODING,
            "alphabet": BASES,
            "softmask_bit": SOFTMASK,
            "chunk_size": chunk_size,
            "chunks_per_shard": chunks_per_shard,
            "compression": compression,
            "contigs": contigs,
        })
    if bar is not None:
        bar.close()
    return out


# ---------------------------------------------------------------------------------------------
# reading
# ---------------------------------------------------------------------------------------------

_COMPLEMENT_BYTES = COMPLEMENT_LUT.tobytes()


def _reverse_complement_rows(out: np.ndarray, rows: np.ndarray) -> None:
    """Reverse-complement rows of ``out`` (N, L) in place.

    ``bytes.translate`` on ~256 KiB groups of rows: a numpy lookup-table gather casts the uint8
    codes to 8-byte indices first and runs several times slower on long windows.
    """
    step = max(1, (1 << 18) // max(out.shape[1], 1))
    for a in range(0, len(rows), step):
        r = rows[a : a + step]
        sub = out[r]  # (k, L) copy
        comp = np.frombuffer(sub.tobytes().translate(_COMPLEMENT_BYTES), dtype=np.uint8).reshape(sub.shape)
        out[r] = comp[:, ::-1]


_URL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")


def _read_root_metadata(url: str, storage_options: dict | None) -> dict:
    try:
        if _URL.match(url):
            import fsspec

            with fsspec.open(url.rstrip("/") + "/zarr.json", "rb", **(storage_options or {})) as fh:
                meta = json.loads(fh.read())
        else:
            if not os.path.isdir(url):
                raise FileNotFoundError(f"{url}: no such store directory")
            with open(os.path.join(url, "zarr.json"), "rb") as fh:
                meta = json.loads(fh.read())
    except FileNotFoundError as e:
        if not _URL.match(url) and not os.path.isdir(url):
            raise
        raise StoreFormatError(f"{url}: not a zarr v3 store (no zarr.json)") from e
    except json.JSONDecodeError as e:
        raise StoreFormatError(f"{url}: zarr.json is not valid JSON ({e})") from e
    if meta.get("zarr_format") != 3 or meta.get("node_type") != "group":
        raise StoreFormatError(f"{url}: not a zarr v3 group (zarr.json says {meta.get('zarr_format')!r})")
    attrs = meta.get("attributes", {})
    if attrs.get("format") != FORMAT_NAME:
        raise StoreFormatError(
            f"{url}: not a {FORMAT_NAME} (format attribute is {attrs.get('format')!r}); "
            "build one with `bioseq zarr build`"
        )
    version = attrs.get("format_version")
    if isinstance(version, int) and version > FORMAT_VERSION:
        raise StoreFormatError(
            f"{url}: {FORMAT_NAME} format version {version} is newer than this bioseq reads "
            f"(<= {FORMAT_VERSION}); upgrade bioseq or rebuild the store"
        )
    if version not in READABLE_VERSIONS:
        raise StoreFormatError(
            f"{url}: unknown {FORMAT_NAME} format version {version!r} (this bioseq reads "
            f"{', '.join(map(str, READABLE_VERSIONS))}); rebuild the store with `bioseq zarr build`"
        )
    if attrs.get("encoding") != ENCODING:
        raise StoreFormatError(f"{url}: unknown sequence encoding {attrs.get('encoding')!r} (expected {ENCODING})")
    return attrs


class GenomeStore:
    """Read access to a genome store (local path, ``file://``, ``memory://`` or any fsspec URL).

    Example::

        store = GenomeStore.open("genomes.zarr")
        store.contigs[0]                               # ContigInfo(name=..., length=..., md5=...)
        store.fetch("NC_000913.3", 1000, 2000)         # (1000,) uint8 codes
        store.fetch("NC_000913.3", 1000, 2000, strand="-", as_str=True)
        store.fetch_batch([0, 0, 3], [5, 900, 17], 1024, ["+", "-", "+"])   # (3, 1024) uint8

    Args:
        url: the store location.
        cache_bytes: capacity of the decoded-chunk LRU cache of this process (per DataLoader
            worker). A batch always holds the chunks it needs, even beyond the capacity.
        storage_options: passed to fsspec for URLs (credentials, endpoints).
    """

    def __init__(self, url: str | os.PathLike, *, cache_bytes: int = DEFAULT_CACHE_BYTES,
                 storage_options: dict | None = None) -> None:
        self.url = str(url)
        self.cache_bytes = cache_bytes
        self.storage_options = storage_options
        attrs = _read_root_metadata(self.url, storage_options)
        self.format_version: int = attrs["format_version"]
        self.chunk_size: int = attrs["chunk_size"]
        self._meta = attrs["contigs"]
        self.contigs: list[ContigInfo] = [
            ContigInfo(name=c["name"], length=c["length"], md5=c["md5"], genome=c["genome"],
                       source=c["source"], index=i, array=c["array"], n_ambiguous=c["n_ambiguous"])
            for i, c in enumerate(self._meta)
        ]
        self.lengths = np.array([c.length for c in self.contigs], dtype=np.int64)
        self.genomes: list[str] = list(dict.fromkeys(c.genome for c in self.contigs))
        self._by_name: dict[str, list[int]] = {}
        for c in self.contigs:
            self._by_name.setdefault(c.name, []).append(c.index)
        self._reset()

    @classmethod
    def open(cls, url: str | os.PathLike, **kwargs: Any) -> GenomeStore:
        """Open a store; reads only its root metadata (no zarr, no event loop, fork-safe)."""
        return cls(url, **kwargs)

    # -- process-local state: zarr handles and the chunk cache ----------------------------------

    def _reset(self) -> None:
        self._pid = os.getpid()
        self._group = None
        self._arrays: dict[int, Any] = {}
        self._cache: OrderedDict[tuple[int, int], np.ndarray] = OrderedDict()
        self._cached_bytes = 0
        self._runs: np.ndarray | None = None

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        for k in ("_group", "_arrays", "_cache", "_cached_bytes", "_runs", "_pid"):
            state.pop(k, None)
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._reset()

    def _zgroup(self):
        if self._pid != os.getpid():  # forked since the handles were made: never reuse them
            self._reset()
        if self._group is None:
            import zarr

            if _URL.match(self.url):
                store = zarr.storage.FsspecStore.from_url(
                    self.url, read_only=True, storage_options=self.storage_options)
            else:
                store = zarr.storage.LocalStore(self.url, read_only=True)
            self._group = zarr.open_group(store, mode="r")
        return self._group

    def _array(self, i: int):
        """``(zarr array, ChunkSource)`` for contig ``i``, opened on first use in this process."""
        group = self._zgroup()
        entry = self._arrays.get(i)
        if entry is None:
            from bioseq.data.chunks import ChunkSource

            arr = group[self.contigs[i].array]
            entry = self._arrays[i] = (arr, ChunkSource(arr))
        return entry

    def _load_chunks(self, keys: list[tuple[int, int]]) -> dict[tuple[int, int], np.ndarray]:
        """Decoded chunks for ``keys`` (contig, chunk): cached ones, the rest read at once.

        Missing chunks of the layouts :func:`build_store` writes are read raw (file reads for
        local stores, one concurrent gather through the zarr store otherwise) and decoded with
        numcodecs (:mod:`bioseq.data.chunks`), 2-3x faster than zarr's per-chunk pipeline; any
        other layout is read through zarr.
        """
        got: dict[tuple[int, int], np.ndarray] = {}
        missing = []
        for k in keys:
            hit = self._cache.get(k)
            if hit is None:
                missing.append(k)
            else:
                self._cache.move_to_end(k)
                got[k] = hit
        if not missing:
            return got
        cs = self.chunk_size
        results: list[Any] = [None] * len(missing)
        jobs: list[tuple[int, Any]] = []  # (position in missing, coroutine) for zarr's event loop
        for pos, (i, c) in enumerate(missing):
            arr, src = self._array(i)
            if not src.direct:
                jobs.append((pos, arr.async_array.getitem(slice(c * cs, min((c + 1) * cs, int(self.lengths[i]))))))
            elif src.root is not None:
                results[pos] = src.read_local(c)
            else:
                jobs.append((pos, src.read_remote(c)))
        if jobs:
            from zarr.core.sync import sync

            async def gather():
                return await asyncio.gather(*(job for _, job in jobs))

            for (pos, _), res in zip(jobs, sync(gather()), strict=True):
                results[pos] = res
        for (i, c), res in zip(missing, results, strict=True):
            src = self._arrays[i][1]
            if src.direct:
                data = src.decode(res, min(cs, int(self.lengths[i]) - c * cs))
            else:
                data = np.asarray(res, dtype=np.uint8)
            got[(i, c)] = data
            self._cache[(i, c)] = data
            self._cached_bytes += data.nbytes
        while self._cached_bytes > self.cache_bytes and len(self._cache) > 1:
            _, old = self._cache.popitem(last=False)
            self._cached_bytes -= old.nbytes
        return got

    def clear_cache(self) -> None:
        """Drop every decoded chunk (benchmarks use it to time cold reads)."""
        self._cache.clear()
        self._cached_bytes = 0

    # -- lookup -------------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.contigs)

    def __repr__(self) -> str:
        return (f"GenomeStore({self.url!r}: {len(self.genomes)} genomes, {len(self.contigs)} contigs, "
                f"{int(self.lengths.sum()):,} bp)")

    def contig_id(self, contig: int | str | ContigInfo, genome: str | None = None) -> int:
        """Index of a contig given by index, name (unique, or with ``genome``), or ContigInfo."""
        if isinstance(contig, ContigInfo):
            return contig.index
        if isinstance(contig, (int, np.integer)):
            if not 0 <= contig < len(self.contigs):
                raise IndexError(f"{self.url}: contig index {contig} out of range (0..{len(self.contigs) - 1})")
            return int(contig)
        ids = self._by_name.get(contig, [])
        if genome is not None:
            ids = [i for i in ids if self.contigs[i].genome == genome]
        if len(ids) == 1:
            return ids[0]
        if not ids:
            raise KeyError(f"{self.url}: no contig {contig!r}" + (f" in genome {genome!r}" if genome else ""))
        raise KeyError(f"{self.url}: contig name {contig!r} is in several genomes "
                       f"({', '.join(self.contigs[i].genome for i in ids)}); pass genome=")

    def ambiguous_runs(self, contig: int | str) -> np.ndarray:
        """``(K, 2)`` ``[start, end)`` runs of non-ACGT bases in a contig (sorted, disjoint)."""
        i = self.contig_id(contig)
        if self._pid != os.getpid():
            self._reset()
        if self._runs is None:
            self._runs = np.asarray(self._zgroup()["ambiguous_runs"][...], dtype=np.int64).reshape(-1, 2)
        a, b = self._meta[i]["ambiguous_runs"]
        return self._runs[a:b]

    # -- reading ------------------------------------------------------------------------------

    def fetch(self, contig: int | str | ContigInfo, start: int = 0, end: int | None = None, *,
              strand: str = "+", as_str: bool = False, genome: str | None = None) -> np.ndarray | str:
        """Bases ``[start, end)`` (0-based, half-open) of a contig.

        Args:
            contig: index, name, or :class:`ContigInfo`.
            strand: ``"-"`` returns the reverse complement.
            as_str: return a string (soft-masked bases lowercase) instead of uint8 codes.

        Returns:
            ``(end - start,)`` uint8 codes, or a str.
        """
        i = self.contig_id(contig, genome)
        length = int(self.lengths[i])
        end = length if end is None else end
        if not 0 <= start <= end <= length:
            raise IndexError(f"{self.url}: interval [{start}, {end}) outside contig "
                             f"{self.contigs[i].name!r} (length {length})")
        if strand not in ("+", "-"):
            raise ValueError(f"strand must be '+' or '-', got {strand!r}")
        cs = self.chunk_size
        c0, c1 = start // cs, max(start, end - 1) // cs
        if end == start:
            codes = np.zeros(0, dtype=np.uint8)
        elif c1 - c0 > 8:  # long reads bypass the cache rather than flushing it
            codes = np.asarray(self._array(i)[0][start:end], dtype=np.uint8)
        else:
            chunks = self._load_chunks([(i, c) for c in range(c0, c1 + 1)])
            # slice each chunk before joining: never copy a whole cached chunk for a short read
            parts = [chunks[(i, c)][max(start - c * cs, 0) : end - c * cs] for c in range(c0, c1 + 1)]
            codes = parts[0].copy() if len(parts) == 1 else np.concatenate(parts)
        if strand == "-":
            codes = COMPLEMENT_LUT[codes[::-1]]
        return decode(codes) if as_str else codes

    def fetch_batch(self, contigs: Sequence[int | str] | np.ndarray, starts: Sequence[int] | np.ndarray,
                    length: int, strands: Sequence[str] | np.ndarray | None = None) -> np.ndarray:
        """Many equal-length windows at once: the fast path for training.

        Args:
            contigs: ``(N,)`` contig indices (or names).
            starts: ``(N,)`` 0-based window starts.
            length: window length L (every window must lie inside its contig).
            strands: ``(N,)`` of ``"+"``/``"-"`` (or booleans, True = minus); None = all plus.

        Returns:
            ``(N, L)`` uint8 codes; minus-strand rows are reverse complemented.
        """
        ids = np.asarray([self.contig_id(c) for c in contigs] if not isinstance(contigs, np.ndarray)
                         or contigs.dtype.kind not in "iu" else contigs, dtype=np.int64)
        starts = np.asarray(starts, dtype=np.int64)
        n = len(ids)
        if starts.shape != (n,):
            raise ValueError(f"fetch_batch: {len(starts)} starts for {n} contigs")
        if n and (ids.min() < 0 or ids.max() >= len(self.contigs)):
            raise IndexError(f"{self.url}: contig index out of range (0..{len(self.contigs) - 1})")
        bad = (starts < 0) | (starts + length > self.lengths[ids])
        if bad.any():
            j = int(np.argmax(bad))
            raise IndexError(f"{self.url}: window [{starts[j]}, {starts[j] + length}) outside contig "
                             f"{self.contigs[ids[j]].name!r} (length {self.lengths[ids[j]]})")
        out = np.empty((n, length), dtype=np.uint8)
        cs = self.chunk_size
        if length > cs:  # windows longer than a chunk: rare, take the simple path
            for j in range(n):
                out[j] = self.fetch(int(ids[j]), int(starts[j]), int(starts[j]) + length)
        elif n:
            c0 = starts // cs
            c1 = (starts + length - 1) // cs
            keys = np.unique(np.concatenate([ids * (1 << 32) + c0, ids * (1 << 32) + c1]))
            chunks = self._load_chunks([(int(k >> 32), int(k & 0xFFFFFFFF)) for k in keys])
            inside = np.flatnonzero(c0 == c1)
            # windows inside one chunk: group by chunk, one fancy-index gather per group
            group_key = ids[inside] * (1 << 32) + c0[inside]
            order = np.argsort(group_key, kind="stable")
            rows = inside[order]
            uniq, first = np.unique(group_key[order], return_index=True)
            bounds = np.append(first, len(rows))
            for g, k in enumerate(uniq):
                i, c = int(k >> 32), int(k & 0xFFFFFFFF)
                r = rows[bounds[g] : bounds[g + 1]]
                chunk = chunks[(i, c)]
                if len(r) >= 4:  # a strided (chunk-L+1, L) view: one gather copies every row
                    out[r] = np.lib.stride_tricks.sliding_window_view(chunk, length)[starts[r] - c * cs]
                else:  # few rows (genomes much larger than a batch): plain slices are cheaper
                    for j in r:
                        off = int(starts[j]) - c * cs
                        out[j] = chunk[off : off + length]
            # windows crossing a chunk boundary (a fraction L/chunk of them): two copies each
            for j in np.flatnonzero(c0 != c1):
                i, a = int(ids[j]), int(c0[j])
                off = int(starts[j]) - a * cs
                head = chunks[(i, a)][off:]
                out[j, : len(head)] = head
                out[j, len(head):] = chunks[(i, a + 1)][: length - len(head)]
        if strands is not None:
            strands = np.asarray(strands)
            if strands.dtype.kind in "UO":
                bad = ~np.isin(strands, ["+", "-"])
                if bad.any():
                    raise ValueError(f"strands must be '+' or '-', got {strands[bad][0]!r}")
                minus = strands == "-"
            elif strands.dtype.kind == "b":
                minus = strands
            else:  # 0/1 or +1/-1 would be ambiguous
                raise TypeError(f"strands must be '+'/'-' strings or booleans (True = minus), not {strands.dtype}")
            if minus.shape != (n,):
                raise ValueError(f"fetch_batch: {minus.size} strands for {n} windows")
            _reverse_complement_rows(out, np.flatnonzero(minus))
        return out

    def info(self) -> list[dict[str, Any]]:
        """Per-contig metadata as plain dicts (for tables and JSON)."""
        return [asdict(c) for c in self.contigs]
