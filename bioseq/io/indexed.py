"""Indexed random access to FASTA files (plain or bgzip) through ``pysam.FastaFile`` (htslib faidx).

htslib writes ``<file>.fai`` (and ``<file>.gzi`` for bgzip) beside the FASTA on first use; when
that folder is read-only the index goes to ``index_dir`` (default: a per-user cache folder).
Plain gzip, xz and bz2 files cannot be seeked: opening one raises an error that says how to
recompress it with bgzip (or :func:`to_bgzip`).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

from bioseq.alphabet import decode, encode, reverse_complement_codes
from bioseq.io.atomic import atomic_file
from bioseq.io.compression import detect_compression, open_binary
from bioseq.io.errors import SequenceFormatError

_CAT = {"gzip": "zcat", "xz": "xzcat", "bz2": "bzcat"}


def _cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "bioseq" / "faidx"


def to_bgzip(src: str | os.PathLike, dst: str | os.PathLike | None = None) -> Path:
    """Recompress any readable FASTA (plain/gzip/xz/bz2) to BGZF so it can be indexed.

    Args:
        src: the input file.
        dst: output path (default: ``src`` with its compression suffix replaced by ``.bgz``).

    Returns:
        the written path (atomic).
    """
    import pysam

    src = Path(src)
    if dst is None:
        stem = src.name
        for ext in (".gz", ".xz", ".bz2", ".bgz"):
            stem = stem.removesuffix(ext)
        dst = src.with_name(stem + ".bgz")
    dst = Path(dst)
    with atomic_file(dst) as tmp, open_binary(src) as inp, pysam.BGZFile(str(tmp), "wb") as out:
        while block := inp.read(1 << 22):
            out.write(block)
    return dst


class IndexedFasta:
    """Random access to a plain or bgzip FASTA.

    Example::

        fa = IndexedFasta("genome.fa.gz")          # bgzip; builds .fai/.gzi on first use
        fa.lengths["NC_000913.3"]                  # 4641652
        fa.fetch("NC_000913.3", 100, 200)          # (100,) uint8 codes
        fa.fetch("NC_000913.3", 100, 200, strand="-", as_str=True)
    """

    def __init__(self, path: str | os.PathLike, *, index_dir: str | os.PathLike | None = None) -> None:
        import pysam

        self.path = Path(path)
        if not self.path.exists():
            raise FileNotFoundError(f"{self.path}: no such file")
        kind = detect_compression(self.path)
        if kind not in ("none", "bgzip"):
            raise SequenceFormatError(
                self.path,
                f"random access needs a plain or bgzip (BGZF) FASTA, but this file is {kind}. "
                f"Recompress it once, e.g. `{_CAT[kind]} {self.path} "
                f"| bgzip -c > {self.path.name.rsplit('.', 1)[0]}.gz` (bgzip comes with htslib/"
                "samtools), or in Python: bioseq.io.to_bgzip(path)",
            )
        fai = gzi = None
        if not os.access(self.path.parent, os.W_OK) or index_dir is not None:
            idx = Path(index_dir) if index_dir is not None else _cache_dir()
            idx.mkdir(parents=True, exist_ok=True)
            key = hashlib.sha1(str(self.path.resolve()).encode()).hexdigest()[:12]
            fai = str(idx / f"{self.path.name}.{key}.fai")
            gzi = str(idx / f"{self.path.name}.{key}.gzi") if kind == "bgzip" else None
        try:
            if fai is not None and not os.path.exists(fai):
                args = ["--fai-idx", fai] + (["--gzi-idx", gzi] if gzi else [])
                pysam.faidx(str(self.path), *args)
            self._fa = pysam.FastaFile(str(self.path), filepath_index=fai, filepath_index_compressed=gzi)
        except (OSError, ValueError, pysam.SamtoolsError) as e:
            raise SequenceFormatError(self.path, f"cannot index this FASTA with htslib faidx ({e})") from e
        self.names: list[str] = list(self._fa.references)
        self.lengths: dict[str, int] = dict(zip(self.names, self._fa.lengths, strict=True))

    def fetch(self, contig: str, start: int = 0, end: int | None = None, *, strand: str = "+",
              as_str: bool = False) -> np.ndarray | str:
        """Bases ``[start, end)`` (0-based, half-open) of ``contig``, as codes or a string."""
        if contig not in self.lengths:
            raise KeyError(f"{self.path}: no contig {contig!r}")
        length = self.lengths[contig]
        end = length if end is None else end
        if not 0 <= start <= end <= length:
            raise IndexError(f"{self.path}: interval [{start}, {end}) outside {contig!r} (length {length})")
        codes = encode(self._fa.fetch(contig, start, end))
        if strand == "-":
            codes = reverse_complement_codes(codes)
        elif strand != "+":
            raise ValueError(f"strand must be '+' or '-', got {strand!r}")
        return decode(codes) if as_str else codes

    def close(self) -> None:
        self._fa.close()

    def __enter__(self) -> IndexedFasta:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
