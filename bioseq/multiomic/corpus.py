"""Mixed DNA + protein corpus for multi-omic masked-LM pretraining, and sequence packing.

Every example is a pure function of ``(seed, index)`` -- the modality, the genome window or the
protein and its crop all come from a generator seeded with both -- so a resumed run sees exactly
the data it would have seen.
"""

from __future__ import annotations

import gzip
import lzma
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from bioseq.multiomic.data import DataError
from bioseq.multiomic.tokens import encode_single
from bioseq.tokenization import MultiOmicTokenizer


def _open_text(path: Path):
    raw = path.open("rb")
    magic = raw.read(6)
    raw.close()
    if magic[:2] == b"\x1f\x8b":
        return gzip.open(path, "rt")
    if magic[:6] == b"\xfd7zXZ\x00":
        return lzma.open(path, "rt")
    return path.open("rt")


def read_fasta(path: str | Path) -> Iterator[tuple[str, str]]:
    """``(name, sequence)`` records of a plain, gzip or xz FASTA file (sequence upper-cased)."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: file not found")
    name, chunks = None, []
    with _open_text(path) as fh:
        for ln, line in enumerate(fh, start=1):
            line = line.strip()
            if not line:
                continue
            if line.startswith(">"):
                if name is not None:
                    yield name, "".join(chunks).upper()
                name, chunks = line[1:].split()[0] if len(line) > 1 else f"record_{ln}", []
            elif name is None:
                raise DataError(f"{path}:{ln}: sequence data before the first '>' header (not FASTA)")
            else:
                chunks.append(line)
    if name is not None:
        yield name, "".join(chunks).upper()


class DNAWindows:
    """Random fixed-length windows of genomes, drawn proportionally to sequence length; windows
    with more than ``max_n_frac`` ambiguous bases are redrawn. Reads FASTA files, or a Zarr genome
    store (:meth:`from_store`, :class:`bioseq.data.WindowSampler` underneath)."""

    def __init__(self, fasta_paths: Sequence[str | Path], window: int = 256, max_n_frac: float = 0.1) -> None:
        self.window, self.max_n_frac = window, max_n_frac
        self.sampler = None
        self.seqs = [s for p in fasta_paths for _, s in read_fasta(p) if len(s) >= window]
        if not self.seqs:
            raise DataError(f"no sequence of at least {window} bp in {list(map(str, fasta_paths))}")
        lens = np.array([len(s) - window + 1 for s in self.seqs], dtype=np.float64)
        self.p = lens / lens.sum()

    @classmethod
    def from_store(cls, store: str | Path, window: int = 256, max_n_frac: float = 0.1, seed: int = 0) -> DNAWindows:
        """Windows of a genome store built by :func:`bioseq.data.build_store` (both strands)."""
        from bioseq.data import WindowSampler

        self = cls.__new__(cls)
        self.window, self.max_n_frac, self.seqs = window, max_n_frac, []
        self.sampler = WindowSampler(str(store), window, seed=seed, max_n_frac=max_n_frac)
        return self

    def sample(self, rng: np.random.Generator) -> str:
        if self.sampler is not None:
            from bioseq.alphabet import decode

            codes, _ = self.sampler.fetch(0, [int(rng.integers(0, 2**62))])  # (1, window) uint8
            return decode(codes[0], keep_case=False)
        for _ in range(100):
            s = self.seqs[rng.choice(len(self.seqs), p=self.p)]
            start = int(rng.integers(0, len(s) - self.window + 1))
            w = s[start : start + self.window]
            if sum(c not in "ACGT" for c in w) <= self.max_n_frac * self.window:
                return w
        raise DataError("could not draw a DNA window with few enough N in 100 tries")


def is_holdout(name: str, frac: float) -> bool:
    """Whether record ``name`` (its first word) falls in the held-out ``frac`` of a corpus."""
    key = name.split()[0].encode() if name.split() else b""
    return zlib.crc32(key) % 1_000_000 < frac * 1_000_000


class ProteinCrops:
    """Proteins from a FASTA file, cropped to a random window of at most ``max_len`` residues.

    ``holdout_frac`` > 0 sets aside a fixed fraction of the records (chosen by a hash of the record
    name, so the split is the same in every run and independent of file order): ``split="train"``
    keeps the rest, ``split="holdout"`` only those, for held-out evaluation on unseen proteins."""

    def __init__(self, fasta_path: str | Path, max_len: int = 256, limit: int | None = None,
                 holdout_frac: float = 0.0, split: str = "train") -> None:
        if not 0.0 <= holdout_frac < 1.0:
            raise DataError(f"holdout_frac must be in [0, 1), got {holdout_frac}")
        if split not in ("train", "holdout"):
            raise DataError(f"split must be 'train' or 'holdout', got {split!r}")
        allowed = set("ACDEFGHIKLMNPQRSTVWYXBZUO")
        self.max_len = max_len
        self.seqs = []
        for name, s in read_fasta(fasta_path):
            if set(s) - allowed:
                raise DataError(f"{fasta_path}: record {name}: non-amino-acid characters {sorted(set(s) - allowed)}")
            if holdout_frac > 0 and (is_holdout(name, holdout_frac) != (split == "holdout")):
                continue
            self.seqs.append(s)
            if limit and len(self.seqs) >= limit:
                break
        if not self.seqs:
            raise DataError(f"{fasta_path}: no protein records" + (f" in the {split} split" if holdout_frac else ""))

    def sample(self, rng: np.random.Generator) -> str:
        s = self.seqs[int(rng.integers(len(self.seqs)))]
        if len(s) > self.max_len:
            start = int(rng.integers(0, len(s) - self.max_len + 1))
            s = s[start : start + self.max_len]
        return s


class MixedCorpus:
    """Tagged token sequences ``[CLS] <modality> residues.. [SEP]`` mixing DNA windows and proteins."""

    def __init__(self, vocab: MultiOmicTokenizer, dna: DNAWindows | None, proteins: ProteinCrops, p_protein: float = 0.5, seed: int = 0) -> None:
        if not 0.0 <= p_protein <= 1.0:
            raise ValueError(f"p_protein must be in [0, 1], got {p_protein}")
        if dna is None and p_protein < 1.0:
            raise ValueError("no DNA windows given, so p_protein must be 1.0 (a protein-only corpus)")
        self.vocab, self.dna, self.proteins, self.p_protein, self.seed = vocab, dna, proteins, p_protein, seed

    def __getitem__(self, index: int) -> np.ndarray:
        rng = np.random.default_rng([self.seed, index])
        if self.dna is None or rng.random() < self.p_protein:
            mod, s = "protein", self.proteins.sample(rng)
        else:
            mod, s = "dna", self.dna.sample(rng)
        return encode_single(self.vocab, s, mod).astype(np.int64)


def pack_greedy(seqs: Sequence[np.ndarray], max_len: int, pad_id: int) -> tuple[np.ndarray, np.ndarray]:
    """Pack sequences in order into rows of ``max_len`` tokens (a sequence longer than ``max_len``
    is cut). Returns ``(ids (R, max_len), segment_ids (R, max_len))`` with segments numbered 1..
    within each row and 0 on padding."""
    rows: list[list[np.ndarray]] = [[]]
    used = 0
    for s in seqs:
        s = s[:max_len]
        if used + len(s) > max_len:
            rows.append([])
            used = 0
        rows[-1].append(s)
        used += len(s)
    ids = np.full((len(rows), max_len), pad_id, dtype=np.int64)
    seg = np.zeros((len(rows), max_len), dtype=np.int64)
    for r, row in enumerate(rows):
        pos = 0
        for k, s in enumerate(row, start=1):
            ids[r, pos : pos + len(s)] = s
            seg[r, pos : pos + len(s)] = k
            pos += len(s)
    return ids, seg
