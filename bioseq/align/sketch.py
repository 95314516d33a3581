"""A k-mer sketch embedding: signed feature hashing of canonical k-mer counts.

Every canonical k-mer (the smaller of a k-mer and its reverse complement, so both strands of a
read get the same vector) adds +1 or -1 to one of ``dim`` coordinates chosen by a hash of the
k-mer; the vector is L2-normalised. The inner product of two sketches estimates the number of
k-mers they share (count sketch), so a read's sketch is nearest to the reference fragments it
overlaps even when many of its k-mers differ from them: at 15% divergence about one 10-mer in five
survives, which no 15-mer seed sees but the sketch still ranks (see docs/align.md for recall).

:class:`SketchEncoder` has the interface of :class:`bioseq.align.encoder.Encoder` (``embed``,
``dim``, ``fingerprint``, ``config``), needs no weights and is deterministic, so an index can be
built with either and searched the same way. It costs a few numpy passes over the sequence: a
bacterial genome's fragments are sketched in seconds.
"""

from __future__ import annotations

import numpy as np

from bioseq.align.minimizers import _ranges, invalid_kmers, mix, pack_kmers

VERSION = 1


class SketchEncoder:
    """Signed canonical k-mer count sketch (``k``-mers into ``dim`` coordinates)."""

    threads = None
    micro_batch = 1 << 14  # sequences per vectorised pass (memory bound only; output is per sequence)
    #: cosine below which a fragment is no candidate: an unrelated 150 bp read against a 300 bp
    #: fragment scores about 0 +- 0.02 (hash collisions; the best of E. coli's 31k fragments about
    #: 0.08), its own fragment at 15% divergence 0.08-0.15 (measured: none below 0.076)
    min_similarity = 0.05

    def __init__(self, k: int = 10, dim: int = 2048) -> None:
        if not 4 <= k <= 31 or dim < 2:
            raise ValueError(f"sketch k must be 4..31 and dim >= 2; got k={k} dim={dim}")
        self.k, self.dim = k, dim
        self.config = {"model_type": "sketch", "k": k, "dim": dim, "version": VERSION}
        self.fingerprint = f"sketch-k{k}-d{dim}-v{VERSION}"
        self.path = None

    @classmethod
    def from_config(cls, config: dict) -> SketchEncoder:
        return cls(int(config["k"]), int(config["dim"]))

    def embed(self, codes_list: list[np.ndarray], length: int | None = None) -> np.ndarray:
        """Sketch sequences -> ``(N, dim)`` float32, rows L2-normalised (``length`` is ignored:
        a sketch needs no padding)."""
        out = np.zeros((len(codes_list), self.dim), dtype=np.float32)
        for s in range(0, len(codes_list), self.micro_batch):
            out[s : s + self.micro_batch] = self._counts(codes_list[s : s + self.micro_batch])
        norm = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.maximum(norm, 1e-12)

    def _counts(self, seqs: list[np.ndarray]) -> np.ndarray:
        """Unnormalised signed counts of many sequences in one pass over their concatenation."""
        k, n = self.k, len(seqs)
        lens = np.fromiter((len(x) for x in seqs), dtype=np.int64, count=n)
        nk = np.maximum(lens - k + 1, 0)
        out = np.zeros((n, self.dim), dtype=np.float32)
        if nk.sum() == 0:
            return out
        # sequences joined by one N, so no k-mer spans two of them
        offs = np.concatenate([[0], np.cumsum(lens + 1)[:-1]])
        cat = np.full(int(lens.sum() + n), 4, dtype=np.uint8)
        cat[np.repeat(offs, lens) + _ranges(lens)] = np.concatenate(seqs) & 0x0F
        cat = np.minimum(cat, 4)
        fwd = pack_kmers(cat, k)
        rc_cat = np.where(cat < 4, 3 - cat, 4)[::-1]
        rev = pack_kmers(rc_cat, k)[::-1]  # reverse complement of the k-mer starting at each position
        h = mix(np.minimum(fwd, rev))
        starts = np.repeat(offs, nk) + _ranges(nk)
        ok = ~invalid_kmers(cat, k)[starts]
        sid = np.repeat(np.arange(n), nk)[ok]
        h = h[starts[ok]]
        col = (h % np.uint64(self.dim)).astype(np.int64)
        sign = np.where((h >> np.uint64(40)) & np.uint64(1), 1.0, -1.0)
        flat = np.bincount(sid * self.dim + col, weights=sign, minlength=n * self.dim)
        return flat.reshape(n, self.dim).astype(np.float32)


class FragmentSketches:
    """``sketches[f]``: the sketch of reference fragment ``f``, computed on access (a sketch index
    stores no embedding matrix beside the FAISS index; only hybrid ranking reads single rows)."""

    def __init__(self, encoder: SketchEncoder, reference: np.ndarray, fragments: np.ndarray, fragment_len: int,
                 offsets: np.ndarray) -> None:
        self.encoder, self.reference, self.fragments = encoder, reference, fragments
        self.fragment_len, self.offsets = fragment_len, offsets

    def __len__(self) -> int:
        return len(self.fragments)

    def __getitem__(self, f: int) -> np.ndarray:
        s = int(self.fragments[f])
        end = int(self.offsets[np.searchsorted(self.offsets, s, "right")])  # the fragment's contig end
        return self.encoder.embed([self.reference[s : min(s + self.fragment_len, end)]])[0]
