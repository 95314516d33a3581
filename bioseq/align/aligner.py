"""Candidate generation, local realignment, best-hit choice, MAPQ and read pairing.

Candidates come from seeds first: minimizer seed clusters per read strand, a deeper round for
poorly placed or ambiguous reads, and a re-seeding round with every 12-mer of the read against the
index's short-seed table. Reads no seed placed are embedded (a k-mer sketch, or the encoder
network) and searched in the FAISS index for the top-K fragments; each fragment implies a range of
read start positions. Every candidate window is realigned with parasail's striped SIMD
Smith-Waterman (bwa-mem scores: match 1, mismatch 4, gap open 6 + extend 1 per base), and the
union of seed and embedding hits is kept one per locus, best first.

Candidate modes (``AlignParams.mode``) make the contribution of each part measurable:

* ``rescue`` (default): seeds (and re-seeding) for the whole batch at once; only the reads they
  leave unplaced (or, with ``rescue_below`` > 0, placed below ``rescue_below`` x read length) go
  through the embedding search, whose candidates (re-ranked by the seed vote) are realigned and
  merged with the seed hits.
* ``seed``: seeds and re-seeding only (``reseed=False``: seeds only), the ablation baseline.
* ``hybrid``: every read embedded; ``emb+vote`` re-ranked by the seed vote plus the best
  seed-diagonal clusters the embedding search missed.
* ``emb+vote``: embedding candidates re-ranked by a seed vote, then by similarity.
* ``emb``: embedding search only; candidates ranked by similarity.

The ``max_align`` best-ranked candidates are scored; the best gets a traceback (CIGAR, NM, MD):
directly from the diagonal when the best local alignment is ungapped and reaches both read ends
(most reads), otherwise from parasail's striped traceback with gapped end extension. XS is the
best score at another locus; MAPQ follows bwa mem's relative-gap estimate (:func:`mapq`).

Seeding, clustering and candidate windows run on whole batches of reads with numpy; a read's
result depends only on the read, so batch size and thread count never change the output.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from bioseq import alphabet
from bioseq.align.index import Index
from bioseq.align.minimizers import batch_clusters
from bioseq.align.minimizers import clusters as _clusters

MODES = ("rescue", "seed", "hybrid", "emb+vote", "emb")
MAX_SPAN = 1000  # widest spread of seed diagonals one candidate window covers (tandem repeats)
LOCUS_TOL = 20  # hits whose alignment ends are this close (same strand) are one locus
END_SLACK = 12  # reference bases beyond a clipped read end that a gapped end extension may use
_ACGTN = np.frombuffer(b"ACGTNNNNNNNNNNNN", dtype=np.uint8)


@dataclass
class AlignParams:
    """Aligner settings (defaults follow bwa mem where there is an equivalent)."""

    top_k: int = 16
    mode: str = "rescue"
    max_align: int = 10
    seed_clusters: int = 5
    pad: int = 24
    match: int = 1
    mismatch: int = 4
    gap_open: int = 6
    gap_extend: int = 1
    min_score: int = 30
    clip_penalty: int = 5
    min_len: int = 30
    max_insert: int = 1000
    unpaired_penalty: int = 17
    secondary: int = 0
    deep_below: float = 0.8
    deep_clusters: int = 12
    deep_max_occ: int = 1000
    rescue_below: float = 0.0
    reseed: bool = True
    emb_min_len: int = 60
    reseed_clusters: int = 12
    short_len: int = 50

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"unknown mode {self.mode!r}; use one of {MODES}")
        if not 1 <= self.top_k <= 2048:
            raise ValueError(f"top_k must be in 1..2048, got {self.top_k}")
        if self.max_align < 1:
            raise ValueError("max_align must be >= 1")


@dataclass
class Hit:
    """One local alignment of a read strand against the reference (0-based, contig-local)."""

    score: int
    contig: int
    pos: int
    end: int  # exclusive reference end
    strand: int  # 0 forward, 1 reverse
    cigar: str = ""
    nm: int = 0
    md: str = ""
    gpos: int = 0  # global alignment end before traceback, start after
    win: tuple[int, int] = (0, 0)  # global reference window the hit was found in
    qend: int = -1  # last aligned read base of the local alignment (before traceback)
    gend: int = 0  # global reference position of the local alignment's last base (locus comparisons)
    source: str = "seed"  # candidate source: "seed", "emb" or "mate" (mate rescue)

    @property
    def traced(self) -> bool:
        return self.contig >= 0


@dataclass
class ReadResult:
    """The hits of one read, best first, and why it is unmapped if it is."""

    hits: list[Hit] = field(default_factory=list)
    problem: str | None = None  # "empty", "shorter than ...", "all N"

    @property
    def best(self) -> Hit | None:
        return self.hits[0] if self.hits else None

    def xs(self, hit: Hit) -> int | None:
        """Best score at a locus other than ``hit``'s (hits are already one per locus)."""
        for h in self.hits:
            if h is not hit:
                return h.score
        return None


def min_score_for(length: int, p: AlignParams) -> int:
    """Minimum score of a reported hit for a read of ``length`` bp: ``p.min_score`` for reads of
    ``p.short_len`` bp or more, scaled down in proportion for shorter reads (the default 30 becomes
    21 at 35 bp), so that a 35 bp read with two mismatches, or one near an end, still maps."""
    return int(min(p.min_score, -(-p.min_score * length // p.short_len)))


def same_locus(a: Hit, b: Hit, tol: int = LOCUS_TOL) -> bool:
    """Same strand and alignment ends within ``tol`` bp (one locus)."""
    return a.strand == b.strand and abs(a.gend - b.gend) <= tol


def mapq(as_: int, xs: int | None, length: int, p: AlignParams, others: list[int] | None = None) -> int:
    """Mapping quality from the best score and the scores at other loci (``others``; ``xs`` alone if
    not given), as bwa mem estimates it: ``30 (1 - sub / AS) ln(length)``, ``sub`` the best other
    score (at least the minimum score, so a read with no other hit gets 60), minus
    ``10 log10(1 + n)`` for the ``n`` other loci within two mismatches of the best: such a repeat
    family's members are a sample the candidate search drew, and one it did not draw may score
    higher; hits below 95% identity are scaled by identity squared. The relative gap (rather than 6 per score point) keeps a near-repeat at low MAPQ: on
    P. falciparum this cut wrong MAPQ >= 20 calls from 17 to bwa mem's level. Capped at 60."""
    floor = min_score_for(length, p) - 1
    scores = [s for s in (others if others is not None else ([] if xs is None else [xs])) if s > floor]
    sub = max(scores, default=floor)
    if sub >= as_:
        return 0
    q = 30.0 * (1.0 - sub / as_) * math.log(max(length, 2))
    # a hit far from the read (divergent copy, many errors) is less certain: scaled by identity^2
    ident = 1.0 - (length * p.match - as_) / (p.match + p.mismatch) / max(length, 1)
    if ident < 0.95:
        q *= max(ident, 0.0) ** 2
    close = sum(1 for s in scores if as_ - s <= 2 * (p.match + p.mismatch))
    q -= 10.0 * math.log10(1.0 + close)
    return int(max(0, min(60, round(q))))


def windows(length: int, w: int) -> list[tuple[int, int]]:
    """(offset, length) read windows of at most ``w`` bp covering the read."""
    if length <= w:
        return [(0, length)]
    offs = list(range(0, length - w + 1, w))
    if offs[-1] != length - w:
        offs.append(length - w)
    return [(o, w) for o in offs]


class Aligner:
    """Aligns reads against a loaded :class:`~bioseq.align.index.Index` with an encoder."""

    def __init__(self, index: Index, encoder, params: AlignParams | None = None) -> None:
        import parasail

        self.index, self.encoder, self.p = index, encoder, params or AlignParams()
        self._parasail = parasail
        self.matrix = parasail.matrix_create("ACGTN", self.p.match, -self.p.mismatch)
        for i in range(5):  # N against anything costs 1, as in bwa
            self.matrix.set_value(i, 4, -1)
            self.matrix.set_value(4, i, -1)
        self.ref_ascii = _ACGTN[index.reference & 0x0F]  # (G,) uint8 ACGTN bytes
        self.ref4 = np.minimum(index.reference & 0x0F, 4).astype(np.uint8)  # (G,) codes, 4 = any ambiguity
        self.search_block = 256
        # an encoder may state the similarity below which a fragment is noise (the sketch does)
        self.min_similarity = float(getattr(encoder, "min_similarity", -np.inf))
        self._counts = {"embedded": 0, "placed": 0}

    def take_counts(self) -> dict:
        """Reads searched by embedding, and of those the reads placed by it (best hit from an
        embedding candidate, after merging with the seed hits), since the last call."""
        c, self._counts = self._counts, {"embedded": 0, "placed": 0}
        return c

    # -- embedding search -------------------------------------------------------------------------
    def search(self, queries: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Embed query windows and search the index -> (sims (Q, K), fragment ids (Q, K)).
        Searches run in fixed-size blocks so results never depend on the batch size."""
        k = self.p.top_k
        if not queries:
            return np.empty((0, k), np.float32), np.empty((0, k), np.int64)
        emb = self.encoder.embed(queries, self.index.window)
        if self.encoder.threads:
            import faiss

            faiss.omp_set_num_threads(self.encoder.threads)
        sims, ids = [], []
        b = self.search_block
        for s in range(0, len(emb), b):
            q = emb[s : s + b]
            n = len(q)
            if n < b:
                q = np.concatenate([q, np.repeat(q[-1:], b - n, 0)])
            d, i = self.index.faiss_index.search(np.ascontiguousarray(q), k)
            # fragments hardly more similar than chance are no candidates (-1, as FAISS marks none)
            i[d < self.min_similarity] = -1
            sims.append(d[:n])
            ids.append(i[:n])
        self._last_emb = emb
        return np.concatenate(sims), np.concatenate(ids)

    # -- one read ---------------------------------------------------------------------------------
    def prepare(self, codes: np.ndarray) -> tuple[str | None, list[np.ndarray]]:
        """Check a read and return (problem, [forward codes, reverse-complement codes])."""
        n = codes.shape[0]
        if n == 0:
            return "empty sequence", []
        if n < self.p.min_len:
            return f"shorter than the minimum length {self.p.min_len} bp ({n} bp)", []
        c = codes & alphabet.CODE_MASK
        if (c < 4).sum() < self.p.min_len:
            return "all N (fewer unambiguous bases than the minimum length)", []
        fwd = np.where(c < 4, c, 4).astype(np.uint8)
        rc = np.where(fwd < 4, 3 - fwd, 4)[::-1].astype(np.uint8)
        return None, [fwd, rc]

    def queries(self, strands: list[np.ndarray]) -> list[np.ndarray]:
        if self.p.mode == "seed":
            return []
        w = self.index.window
        return [s[o : o + n] for s in strands for o, n in windows(len(s), w)]

    def candidates(self, strands, sims, ids, qemb, diags, mode: str | None = None) -> list[tuple]:
        """Ranked candidate windows [(rank key, source, strand, lo, hi)] in global coordinates for
        the embedding modes (source "emb", or "seed" for hybrid's seed clusters); ``diags`` are the
        seed diagonals of the two strands."""
        idx, p = self.index, self.p
        mode = mode or p.mode
        F, W, stride = idx.fragment_len, idx.window, int(idx.manifest["stride"])
        L = len(strands[0])
        wins = windows(L, W)
        nw = len(wins)
        diags = diags if mode != "emb" else None
        # one row per candidate: sim, votes, lo, hi, read-start range lo_s..hi_s, strand
        cands: list[tuple] = []
        offs = np.array([o for o, _ in wins])[:, None]  # (nw, 1)
        wlen = np.array([w for _, w in wins])[:, None]
        for strand in (0, 1):
            I = ids[strand * nw : (strand + 1) * nw]  # (nw, K)
            ok = I >= 0
            fs = idx.fragments[np.where(ok, I, 0)]
            lo_s = (fs - offs)[ok]  # read-start range implied by each fragment
            hi_s = (fs + F - wlen - offs)[ok]
            sim = sims[strand * nw : (strand + 1) * nw][ok].astype(np.float64)
            c = np.searchsorted(idx.offsets, fs[ok], "right") - 1
            if diags is not None:
                d = diags[strand]
                v = np.searchsorted(d, hi_s + 8, "right") - np.searchsorted(d, lo_s - 8, "left")
            else:
                v = np.zeros(len(lo_s), dtype=np.int64)
            lo = np.maximum(idx.offsets[c], lo_s - p.pad)
            hi = np.minimum(idx.offsets[c + 1], hi_s + L + p.pad)
            # one candidate per coarse locus: the one with most votes, then highest similarity
            key = (lo_s + stride // 2) // stride
            order = np.lexsort((-sim, -v, key))
            first = np.ones(len(order), dtype=bool)
            first[1:] = key[order][1:] != key[order][:-1]
            for k in order[first]:
                cands.append((float(sim[k]), int(v[k]), int(lo[k]), int(hi[k]), int(lo_s[k]), int(hi_s[k]), strand))
        cands = [c + ("emb",) for c in cands]
        if mode == "hybrid":
            G = int(idx.offsets[-1])
            for strand in (0, 1):
                for v, d in _clusters(diags[strand])[: p.seed_clusters]:
                    if v < 2 or not -L < d < G:
                        continue
                    if any(x[6] == strand and x[4] - 8 <= d <= x[5] + 8 for x in cands):
                        continue  # the embedding search already found this locus
                    c = idx.contig_of(min(max(d + L // 2, 0), G - 1))  # the contig holding most of the read
                    sim = 0.0
                    if qemb is not None:  # similarity of the read to the fragment holding the hit
                        f = max(0, int(np.searchsorted(idx.fragments, max(d, 0), "right")) - 1)
                        sim = float(idx.embeddings[f] @ qemb[strand * nw])
                    lo = max(int(idx.offsets[c]), d - p.pad)
                    hi = min(int(idx.offsets[c + 1]), d + L + p.pad)
                    cands.append((sim, v, lo, hi, d, d, strand, "seed"))
        ranked = []
        for sim, v, lo, hi, _, _, strand, src in cands:
            rank = (-sim, lo) if mode == "emb" else (-v, -sim, lo)
            ranked.append((rank, src, strand, lo, hi))
        ranked.sort()
        return ranked[: p.max_align]

    # -- a batch of reads --------------------------------------------------------------------------
    def align_batch(self, reads: list[list[np.ndarray]], n_trace: int = 1) -> list[list[Hit]]:
        """Align a batch of prepared reads (``[forward, reverse complement]`` codes from
        :meth:`prepare`, or ``[]`` for a read that is reported unmapped) -> hits per read, best
        first, the first ``n_trace`` with a full traceback."""
        p = self.p
        out: list[list[Hit]] = [[] for _ in reads]
        live = [i for i, r in enumerate(reads) if r]
        if not live:
            return out
        seqs = [s for i in live for s in reads[i]]  # strand index 2 * j + strand for live read j
        bounds, diags = self.index.seeds.batch_diagonals(seqs)

        def strand_diags(j: int) -> list[np.ndarray]:
            return [diags[bounds[2 * j + t] : bounds[2 * j + t + 1]] for t in (0, 1)]

        if p.mode in ("seed", "rescue"):
            lens = np.array([len(s) for s in seqs])
            first = self._seed_candidates(bounds, diags, lens, p.seed_clusters, p.max_align)
            for j, cands in enumerate(first):
                out[live[j]] = self._score(reads[live[j]], cands)
            # reads placed poorly or not at all (repeats, low complexity, divergent copies) get a
            # deeper seed round: more clusters per strand and the frequent minimizers back in
            # (and reads with a near-equal hit elsewhere: repeat families, whose other members the
            # first round's few clusters may not all reach; MAPQ needs them)
            deep = [j for j, i in enumerate(live) if not out[i] or out[i][0].score < p.deep_below * p.match * len(reads[i][0])
                    or (len(out[i]) > 1 and out[i][1].score >= out[i][0].score - 2 * (p.match + p.mismatch))]
            if deep:
                b2, d2 = self.index.seeds.batch_diagonals([s for j in deep for s in reads[live[j]]], p.deep_max_occ)
                l2 = np.array([len(s) for j in deep for s in reads[live[j]]])
                for j, cands in zip(deep, self._seed_candidates(b2, d2, l2, p.deep_clusters, 2 * p.deep_clusters)):
                    done = set(first[j])  # windows the first round already scored
                    new = [c for c in cands if c not in done]
                    if new:
                        out[live[j]] = _merge(out[live[j]], self._score(reads[live[j]], new))
            # re-seeding (as bwa mem re-seeds reads with few hits): reads still placed poorly look up
            # every k-mer of the read in the index's short-seed table (k ~ 12): divergent and short
            # reads keep far more intact 12-mers than 15-mers
            if p.reseed and self.index.reseed is not None:
                self._reseed(reads, live, out)
            # reads the seeds did not place go through the embedding search (rescue_below > 0: also
            # those placed with a score below it x length). A read with any seed hit is skipped:
            # on 15%-divergent reads 98% of the seed hits are right whatever their score, and the
            # sketch placed only reads with none
            # (reads much shorter than a fragment share too few k-mers with it for the sketch to rank it)
            todo = [] if p.mode == "seed" else [
                j for j, i in enumerate(live) if len(reads[i][0]) >= p.emb_min_len
                and (not out[i] or out[i][0].score < p.rescue_below * p.match * len(reads[i][0]))]
            emb_mode = "emb+vote"
        else:
            emb_mode, todo = p.mode, list(range(len(live)))
        if todo:
            queries, spans = [], []
            for j in todo:
                q = self.queries(reads[live[j]])
                spans.append((len(queries), len(q)))
                queries += q
            sims, ids = self.search(queries)
            emb = self._last_emb
            for j, (s, k) in zip(todo, spans):
                i = live[j]
                cands = self.candidates(reads[i], sims[s : s + k], ids[s : s + k], emb[s : s + k], strand_diags(j),
                                        emb_mode)
                hits = self._score(reads[i], cands, source=[c[1] for c in cands])
                # rescue: merge with the seed hits, one hit per locus, best first
                out[i] = _merge(out[i], hits) if p.mode == "rescue" else hits
                self._counts["placed"] += bool(out[i]) and out[i][0].source == "emb"
            self._counts["embedded"] += len(todo)
        out = self._trace_batch(reads, out, n_trace)
        if self.mate_window:
            out = self._rescue_mates(reads, out, n_trace)
        return out

    def _reseed(self, reads: list[list[np.ndarray]], live: list[int], out: list[list[Hit]]) -> None:
        """Short-seed round for the reads whose best score is below ``deep_below`` x length: every
        read k-mer against the short-seed table, clusters with a single seed allowed, windows at a
        locus some hit of the read already covers skipped."""
        p = self.p
        # (and short reads with a mismatch and no second hit: with a few 15-mer seeds a repeat copy
        # can go unseen, and a missing XS would make a wrong copy look unique)
        todo = [j for j, i in enumerate(live)
                if not out[i] or out[i][0].score < p.deep_below * p.match * len(reads[i][0])
                or (len(reads[i][0]) < p.short_len and len(out[i]) == 1 and out[i][0].score < p.match * len(reads[i][0]))]
        if not todo:
            return
        seqs = [s for j in todo for s in reads[live[j]]]
        b, d = self.index.reseed.batch_diagonals(seqs, every_kmer=True)
        lens = np.array([len(s) for s in seqs])
        for j, cands in zip(todo, self._seed_candidates(b, d, lens, p.reseed_clusters, 2 * p.reseed_clusters,
                                                         min_votes=1)):
            i = live[j]
            new = [c for c in cands if not any(h.strand == c[0] and c[1] <= h.gend < c[2] for h in out[i])]
            if new:
                out[i] = _merge(out[i], self._score(reads[i], new))

    #: paired input: reads 2i and 2i + 1 are mates, and a mate is searched for within this many bp
    #: downstream of its partner's hits (0: single-end; set by the pipeline from the insert sizes)
    mate_window: int = 0

    def _rescue_mates(self, reads: list[list[np.ndarray]], hits: list[list[Hit]], n_trace: int) -> list[list[Hit]]:
        """Mate rescue (as in bwa mem): for each of a read's two best hits whose mate has no hit
        where a proper pair puts it, Smith-Waterman the mate's facing strand over that window.
        Finds the right copy of a repeat when the other mate is unique."""
        offs = self.index.offsets
        changed = False
        for i in range(0, len(reads) - 1, 2):
            for me, mate in ((i, i + 1), (i + 1, i)):
                if not reads[mate] or not hits[me]:
                    continue
                cands = []
                for h in hits[me][:2]:
                    if not h.traced:
                        continue
                    c0, c1 = int(offs[h.contig]), int(offs[h.contig + 1])
                    if h.strand == 0:  # mate on the reverse strand, downstream
                        s, lo, hi = 1, h.gpos, min(c1, h.gpos + self.mate_window)
                    else:  # mate forward, upstream of this hit's end
                        e = h.gpos + (h.end - h.pos)
                        s, lo, hi = 0, max(c0, e - self.mate_window), e
                    if hi - lo < len(reads[mate][s]) or any(x.strand == s and lo <= x.gend < hi for x in hits[mate][:4]):
                        continue
                    cands.append((s, lo, hi))
                if cands:
                    found = self._score(reads[mate], cands, source="mate")
                    # a rescued hit goes ahead of equal-scoring copies elsewhere, so pairing sees it
                    hits[mate] = _merge(found, hits[mate], prefer="mate")
                    changed = True
        return self._trace_batch(reads, hits, n_trace) if changed else hits

    def _trace_batch(self, reads: list[list[np.ndarray]], hits: list[list[Hit]], n_trace: int) -> list[list[Hit]]:
        """Trace back the first ``n_trace`` hits of every read: all gapless ones at once with numpy
        (:meth:`_ungapped`), the rest one by one with parasail (:meth:`traceback`)."""
        while True:
            todo = [(i, k) for i, hs in enumerate(hits) for k in range(min(n_trace, len(hs))) if not hs[k].traced]
            if not todo:
                return hits
            fast = self._ungapped([reads[i][hits[i][k].strand] for i, k in todo], [hits[i][k] for i, k in todo])
            for (i, k), f in zip(todo, fast):
                hits[i][k] = f if f is not None else self.traceback(reads[i][hits[i][k].strand], hits[i][k])
            # extending an end to the read's end can cost up to clip_penalty - 1: a hit that falls
            # below the minimum score is dropped (and the next one traced), never reported
            for i in {i for i, _ in todo}:
                floor = min_score_for(len(reads[i][0]), self.p)
                hits[i] = [h for h in hits[i] if not (h.traced and h.score < floor)]

    def _seed_candidates(self, bounds: np.ndarray, diags: np.ndarray, lens: np.ndarray, top: int,
                         max_align: int, min_votes: int = 2) -> list[list[tuple]]:
        """Candidate windows ``[(strand, lo, hi)]`` per read from the ``top`` best seed clusters of
        each strand with at least ``min_votes`` seeds, ranked by votes then position, at most
        ``max_align`` per read."""
        idx, p = self.index, self.p
        n_reads = (bounds.size - 1) // 2
        cs, votes, d, dlo, dhi = batch_clusters(bounds, diags, top, span=True)
        G, n_contigs = int(idx.offsets[-1]), len(idx.offsets) - 1
        L = lens[cs]
        # a read may hang over either end of a contig (circular genomes): its diagonal is then
        # before the contig's start (in the previous contig, or negative) or its end past the end
        ok = (votes >= min_votes) & (d + L > 0) & (d < G)
        cs, votes, d, dlo, dhi, L = cs[ok], votes[ok], d[ok], dlo[ok], dhi[ok], L[ok]
        # the window spans the cluster's diagonals (at most MAX_SPAN bp around the median)
        dlo, dhi = np.maximum(dlo, d - MAX_SPAN // 2), np.minimum(dhi, d + MAX_SPAN // 2)
        # one window in the contig where the read starts and one in the contig where it ends, when
        # they differ: each clipped to its contig, so the overhang is soft-clipped at either end
        ca = np.searchsorted(idx.offsets, d, "right") - 1
        cb = np.searchsorted(idx.offsets, d + L - 1, "right") - 1
        two = (cb != ca) & (ca >= 0) & (cb < n_contigs)
        cs, votes, d, dlo, dhi, L = (np.concatenate([x, x[two]]) for x in (cs, votes, d, dlo, dhi, L))
        c = np.concatenate([np.where(ca >= 0, ca, cb), cb[two]])
        c = np.minimum(c, n_contigs - 1)
        lo = np.maximum(idx.offsets[c], dlo - p.pad)
        hi = np.minimum(idx.offsets[c + 1], dhi + L + p.pad)
        keep = hi - lo >= min(p.min_len, 20)
        cs, votes, lo, hi = cs[keep], votes[keep], lo[keep], hi[keep]
        read = cs // 2
        order = np.lexsort((cs % 2, lo, -votes, read))
        read, strand, lo, hi = read[order], (cs % 2)[order], lo[order], hi[order]
        starts = np.searchsorted(read, np.arange(n_reads + 1), "left")
        out = []
        for j in range(n_reads):
            a, b = starts[j], min(starts[j + 1], starts[j] + max_align)
            out.append(list(zip(strand[a:b].tolist(), lo[a:b].tolist(), hi[a:b].tolist())))
        return out

    def _score(self, strands: list[np.ndarray], cands: list[tuple], source: str | list[str] = "seed") -> list[Hit]:
        """Smith-Waterman score every candidate window ``(…, strand, lo, hi)`` (the last three
        fields; ``source`` names where each came from, one name or one per candidate) -> untraced
        hits, one per locus, best first."""
        ps, p = self._parasail, self.p
        profiles = [None, None]
        scored = []
        floor = min_score_for(len(strands[0]), p)
        srcs = [source] * len(cands) if isinstance(source, str) else source
        for cand, src in zip(cands, srcs):
            strand, lo, hi = cand[-3:]
            if profiles[strand] is None:
                profiles[strand] = ps.profile_create_16(_ACGTN[strands[strand]].tobytes().decode(), self.matrix)
            L = len(strands[strand])
            todo, top = [(lo, hi)], True
            while todo:  # the window, then (once) the parts of a wide one beside its best hit
                a, b = todo.pop()
                r = ps.sw_striped_profile_16(profiles[strand], self.ref_ascii[a:b].tobytes().decode(),
                                             p.gap_open + p.gap_extend, p.gap_extend)
                if r.score >= floor:
                    scored.append((r.score, strand, a, b, a + r.end_ref, r.end_query, src))
                if top and r.score >= floor and hi - lo > 2 * L + 2 * p.pad:
                    # a wide window (a tandem repeat's seed cluster) may hold other copies, or the
                    # same read shifted by whole periods of the repeat: one SW finds only the best,
                    # so score the window again without it, ending further left and starting
                    # further right than another locus needs (same_locus's tolerance)
                    e, t = a + r.end_ref, LOCUS_TOL + 1
                    parts = ((lo, e - t), (max(lo, e - L + t), hi))
                    todo = [w for w in parts if w[1] - w[0] >= L // 2]
                top = False
        # best first; ties broken by position then strand so the choice is deterministic
        scored.sort(key=lambda t: (-t[0], t[4], t[1]))
        hits: list[Hit] = []
        for score, strand, lo, hi, gend, qend, src in scored:
            h = Hit(score=score, contig=-1, pos=0, end=0, strand=strand, gpos=gend, win=(lo, hi), qend=qend, gend=gend,
                    source=src)
            if any(same_locus(h, x) for x in hits):
                continue
            hits.append(h)
        return hits

    def _extend_end(self, q: str, r: str, left: bool) -> tuple[int, list[tuple[int, str]], int]:
        """Best alignment of the clipped read end ``q`` that reaches the read's end, anchored at the
        junction with the local alignment (the end of ``r`` when ``left``, else its start), the far
        end of ``r`` free -> (score, =/X/I/D runs, reference bases used). An alignment whose
        outermost read base is an insertion is refused (a very low score): the end stays clipped."""
        if not r:
            return -(1 << 30), [], 0
        p, ps = self.p, self._parasail
        fn = ps.sg_db_trace_scan_16 if left else ps.sg_de_trace_scan_16
        res = fn(q, r, p.gap_open + p.gap_extend, p.gap_extend, self.matrix)
        ops = _parse_cigar(res.cigar.decode.decode())
        # the free reference gap at the far end is not part of the alignment
        while ops and ops[0 if left else -1][1] == "D":
            ops.pop(0 if left else -1)
        if not ops or ops[0 if left else -1][1] == "I":
            return -(1 << 30), [], 0
        return int(res.score), ops, sum(n for n, op in ops if op in "=XD")

    def traceback(self, codes: np.ndarray, h: Hit) -> Hit:
        """Full alignment of the hit's window: CIGAR (M/I/D/S), NM, MD, contig-local position."""
        if h.traced:
            return h
        p, idx = self.p, self.index
        seq = _ACGTN[codes].tobytes().decode()
        L = len(seq)
        lo, hi = h.win
        c = idx.contig_of(lo)
        ref = self.ref_ascii[lo:hi].tobytes().decode()
        r = self._parasail.sw_trace_striped_16(seq, ref, p.gap_open + p.gap_extend, p.gap_extend, self.matrix)
        ops = _parse_cigar(r.cigar.decode.decode())
        qb, rb = r.cigar.beg_query, r.cigar.beg_ref
        while ops and ops[0][1] in "DI":  # parasail may start/end with gaps; they are clips
            n, op = ops.pop(0)
            if op == "D":
                rb += n
            else:
                qb += n
        while ops and ops[-1][1] in "DI":
            ops.pop()
        # Local alignment clips an end as soon as clipping scores no worse; like bwa mem's clipping
        # penalty, extend an end to the read's end (gaps allowed: divergent reads often have an
        # indel near an end) unless that costs more than `clip_penalty`.
        score = int(r.score)
        if qb > 0:
            ext, run, used = self._extend_end(seq[:qb], ref[max(0, rb - qb - END_SLACK) : rb], left=True)
            if ext > -p.clip_penalty:
                ops, score, rb, qb = run + ops, score + ext, rb - used, 0
        qend = qb + sum(n for n, op in ops if op in "=XI")
        rend = rb + sum(n for n, op in ops if op in "=XD")
        tail = L - qend
        if tail > 0:
            ext, run, _ = self._extend_end(seq[qend:], ref[rend : rend + tail + END_SLACK], left=False)
            if ext > -p.clip_penalty:
                ops, score = ops + run, score + ext
        cig, md, nm = [], [], 0
        qi, ri, mrun = qb, lo + rb, 0
        ref_codes = idx.reference
        if qb:
            cig.append((qb, "S"))
        for n, op in ops:
            if op == "=":
                mrun += n
                _push(cig, n, "M")
                qi += n
                ri += n
            elif op == "X":
                for j in range(n):
                    md.append(str(mrun))
                    md.append(alphabet.BASES[ref_codes[ri + j] & 0x0F])
                    mrun = 0
                _push(cig, n, "M")
                nm += n
                qi += n
                ri += n
            elif op == "I":
                _push(cig, n, "I")
                nm += n
                qi += n
            elif op == "D":
                md.append(str(mrun))
                md.append("^" + alphabet.decode(ref_codes[ri : ri + n] & 0x0F))
                mrun = 0
                _push(cig, n, "D")
                nm += n
                ri += n
        md.append(str(mrun))
        if L - qi:
            cig.append((L - qi, "S"))
        start = lo + rb
        return Hit(score=score, contig=c, pos=start - int(idx.offsets[c]), end=ri - int(idx.offsets[c]),
                   strand=h.strand, cigar="".join(f"{n}{op}" for n, op in cig), nm=nm, md="".join(md), gpos=start,
                   win=h.win, qend=h.qend, gend=h.gend, source=h.source)

    def _ungapped(self, codes: list[np.ndarray], hits: list[Hit]) -> list[Hit | None]:
        """Traced hits for those whose best local alignment is gapless (the best gapless segment
        ending at the Smith-Waterman end scores the Smith-Waterman score), None for the others.
        Same clipping rule as :meth:`traceback`; all hits at once on a padded (n, L) array."""
        p, idx = self.p, self.index
        n = len(hits)
        L = np.array([c.shape[0] for c in codes])
        Lmax = int(L.max())
        qend = np.array([h.qend for h in hits])
        gend = np.array([h.gend for h in hits])
        score = np.array([h.score for h in hits])
        d0 = gend - qend  # reference position facing read base 0 on each hit's diagonal
        c = np.searchsorted(idx.offsets, gend, "right") - 1
        c0, c1 = idx.offsets[c], idx.offsets[c + 1]
        fits = (d0 >= c0) & (d0 + L <= c1)  # else the read hangs off the contig: full traceback
        col = np.arange(Lmax)
        inside = col[None, :] < L[:, None]  # (n, Lmax)
        q = np.full((n, Lmax), 4, dtype=np.uint8)
        q[inside] = np.concatenate(codes)
        r = self.ref4[np.clip(d0[:, None] + col[None, :], 0, self.ref4.size - 1)]  # (n, Lmax)
        eq = (q == r) & (q < 4)
        sc = np.where(eq, p.match, np.where((q >= 4) | (r >= 4), -1, -p.mismatch))
        sc[~inside] = 0
        cum = np.zeros((n, Lmax + 1), dtype=np.int64)
        np.cumsum(sc, axis=1, out=cum[:, 1:])
        e = qend + 1
        rows = np.arange(n)
        masked = np.where(col[None, :] < e[:, None], cum[:, :-1], np.iinfo(np.int64).max)
        a = np.argmin(masked, axis=1)  # leftmost start of the best gapless segment ending at qend
        ok = fits & (cum[rows, e] - cum[rows, a] == score)
        # bwa-mem-like clipping penalty, as in traceback: reach the read ends unless it costs > clip
        left = cum[rows, a]
        ext_l = (a > 0) & (left > -p.clip_penalty)
        right = cum[rows, L] - cum[rows, e]
        ext_r = (e < L) & (right > -p.clip_penalty)
        score = score + np.where(ext_l, left, 0) + np.where(ext_r, right, 0)
        a = np.where(ext_l, 0, a)
        e = np.where(ext_r, L, e)
        ok &= (a == 0) & (e == L)  # an end still clipped may reach the read's end with a gap: full traceback
        out: list[Hit | None] = []
        for i in range(n):
            if not ok[i]:
                out.append(None)
                continue
            ai, ei, Li, di = int(a[i]), int(e[i]), int(L[i]), int(d0[i])
            mis = np.flatnonzero(~eq[i, ai:ei]).tolist()
            md, last = [], 0
            for m in mis:
                md.append(f"{m - last}{alphabet.BASES[idx.reference[di + ai + m] & 0x0F]}")
                last = m + 1
            md.append(str(ei - ai - last))
            cigar = (f"{ai}S" if ai else "") + f"{ei - ai}M" + (f"{Li - ei}S" if ei < Li else "")
            h, base = hits[i], int(c0[i])
            out.append(Hit(score=int(score[i]), contig=int(c[i]), pos=di + ai - base, end=di + ei - base,
                           strand=h.strand, cigar=cigar, nm=len(mis), md="".join(md), gpos=di + ai, win=h.win,
                           qend=h.qend, gend=h.gend, source=h.source))
        return out


def _merge(a: list[Hit], b: list[Hit], prefer: str | None = None) -> list[Hit]:
    """Union of two hit lists, one hit per locus (the higher-scoring), best first; among equal
    scores hits from source ``prefer`` come first, then by position."""
    hits: list[Hit] = []
    for h in sorted(a + b, key=lambda t: (-t.score, t.source != prefer, t.gend, t.strand)):
        if not any(same_locus(h, x) for x in hits):
            hits.append(h)
    return hits


def _parse_cigar(s: str) -> list[tuple[int, str]]:
    out, num = [], 0
    for ch in s:
        if ch.isdigit():
            num = num * 10 + ord(ch) - 48
        else:
            out.append((num, ch))
            num = 0
    return out


def _push(cig: list, n: int, op: str) -> None:
    if cig and cig[-1][1] == op:
        cig[-1] = (cig[-1][0] + n, op)
    else:
        cig.append((n, op))
