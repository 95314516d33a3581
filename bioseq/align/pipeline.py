"""``bioseq align`` end to end: stream reads, embed + search per batch, align, pair, write SAM/BAM.

Output is a pure function of the reads, the index and the settings: reads keep their input order,
embeddings and searches run in fixed-size blocks, and alignment ties are broken by position. So
``-t`` (threads) and ``--batch-size`` change only the speed.
"""

from __future__ import annotations

import itertools
import logging
import math
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from bioseq import __version__
from bioseq.align.aligner import Aligner, AlignParams, Hit, ReadResult, mapq
from bioseq.align.reference import InputError, Read, read_reads
from bioseq.align.sam import (
    FLAG_MREVERSE, FLAG_MUNMAP, FLAG_PAIRED, FLAG_PROPER, FLAG_READ1, FLAG_READ2, FLAG_REVERSE,
    FLAG_SECONDARY, FLAG_UNMAP, SamWriter, header_lines, oriented, record,
)

log = logging.getLogger(__name__)
SUB_BATCH = 512  # reads per align_batch call
INSERT_PAIRS = 1000  # leading pairs the insert-size model is estimated from


@dataclass
class Stats:
    reads: int = 0
    mapped: int = 0
    embedded: int = 0  # reads sent to the embedding search (rescue mode: those the seeds missed)
    placed: int = 0  # of those, reads whose best hit came from the embedding candidates
    insert: object = None  # InsertModel of paired input, when one could be estimated
    problems: dict[str, int] = field(default_factory=dict)
    examples: list[str] = field(default_factory=list)

    def merge(self, other: Stats) -> None:
        self.reads += other.reads
        self.mapped += other.mapped
        self.embedded += other.embedded
        self.placed += other.placed
        for k, v in other.problems.items():
            self.problems[k] = self.problems.get(k, 0) + v
        self.examples += other.examples[: max(0, 5 - len(self.examples))]

    def note(self, path, n: int, name: str, problem: str) -> None:
        self.problems[problem.split(" (")[0]] = self.problems.get(problem.split(" (")[0], 0) + 1
        if len(self.examples) < 5:
            self.examples.append(f"{path}: record {n} {name!r}: {problem}; reported unmapped")


def _batches(paths: list[str], size: int) -> Iterator[list[tuple]]:
    """Batches of reads (single) or read pairs; pairs must carry the same name."""
    its = [read_reads(p) for p in paths]
    n = 0
    while True:
        batch = []
        for recs in itertools.islice(itertools.zip_longest(*its), size):
            n += 1
            if any(r is None for r in recs):
                short = paths[[r is None for r in recs].index(True)]
                raise InputError(f"{short}: ends before its mate file (record {n}); paired files must have the same reads")
            if len(recs) == 2 and recs[0].name != recs[1].name:
                raise InputError(f"{paths[1]}: record {n} {recs[1].name!r} does not match mate {recs[0].name!r} in {paths[0]}")
            batch.append((n, recs))
        if not batch:
            return
        yield batch


@dataclass
class InsertModel:
    """Insert-size distribution of the library (mean, standard deviation), estimated from the
    first pairs of the input whose mates both map uniquely and properly."""

    mean: float
    std: float
    n: int

    def log_weight(self, insert: int) -> float:
        """bwa mem's pair-score term, in match units: 0.721 ln(2 erfc(|z| / sqrt 2)) (0.721 = 1 / ln 4)."""
        z = abs(insert - self.mean) / self.std
        return 0.721 * math.log(max(2.0 * math.erfc(z / math.sqrt(2.0)), 1e-300))


def estimate_insert(pairs: list[tuple[ReadResult, ReadResult]], p: AlignParams, min_pairs: int = 20) -> InsertModel | None:
    """Insert model from pairs whose mates both map uniquely (best score >= 10 above the second)
    and face each other within ``max_insert``; quartile-trimmed like bwa mem. None if too few."""
    sizes = []
    for r1, r2 in pairs:
        a, b = r1.best, r2.best
        if a is None or b is None or not is_proper(a, b, p.max_insert):
            continue
        if any(x is not None and h.score - x < 10 for h, x in ((a, r1.xs(a)), (b, r2.xs(b)))):
            continue
        sizes.append(max(a.end, b.end) - min(a.pos, b.pos))
    if len(sizes) < min_pairs:
        return None
    q1, q3 = np.percentile(sizes, [25, 75])
    lo, hi = q1 - 2 * (q3 - q1), q3 + 2 * (q3 - q1)
    kept = np.array([x for x in sizes if lo <= x <= hi], dtype=np.float64)
    return InsertModel(float(kept.mean()), max(1.0, float(kept.std())), int(kept.size))


def _choose_pair(r1: ReadResult, r2: ReadResult, p: AlignParams, names: list[str], model: InsertModel | None = None):
    """Pick the mate hits maximising score sum, minus ``unpaired_penalty`` unless the pair is
    proper (same contig, facing each other, insert <= max_insert), plus the insert-size term of
    ``model`` for proper pairs. -> (h1, h2, proper, pair mapq)."""
    best = []
    for h1 in r1.hits[:4] or [None]:
        for h2 in r2.hits[:4] or [None]:
            proper = h1 is not None and h2 is not None and h1.contig >= 0 and is_proper(h1, h2, p.max_insert)
            s = (h1.score if h1 else 0) + (h2.score if h2 else 0) - (0 if proper else p.unpaired_penalty)
            if proper and model is not None:
                s += model.log_weight(max(h1.end, h2.end) - min(h1.pos, h2.pos))
            best.append((s, proper, h1, h2))
    best.sort(key=lambda t: (-t[0], (t[2].gpos if t[2] else -1), (t[3].gpos if t[3] else -1)))
    s, proper, h1, h2 = best[0]
    second = next((t[0] for t in best[1:] if t[2] is not h1 and t[3] is not h2), None)
    pq = 60 if second is None else int(max(0, min(60, round(6.0 * (s - second) / p.match))))
    return h1, h2, proper, pq


def is_proper(a: Hit, b: Hit, max_insert: int) -> bool:
    """Same contig, opposite strands, forward mate left of the reverse one, insert in range."""
    if a.contig != b.contig or a.strand == b.strand or a.contig < 0:
        return False
    fwd, rev = (a, b) if a.strand == 0 else (b, a)
    return fwd.pos <= rev.end and max(a.end, b.end) - min(a.pos, b.pos) <= max_insert


def _mapq(h: Hit, res: ReadResult, length: int, p: AlignParams) -> int:
    return mapq(h.score, res.xs(h), length, p, [x.score for x in res.hits if x is not h])


def _tags(h: Hit, xs: int | None) -> list[str]:
    t = [f"NM:i:{h.nm}", f"MD:Z:{h.md}", f"AS:i:{h.score}"]
    if xs is not None:
        t.append(f"XS:i:{xs}")
    return t


def _lines_single(read: Read, res: ReadResult, names, p: AlignParams) -> list[str]:
    h = res.best
    if h is None:
        seq, qual = oriented(read.seq, read.qual, False)
        return [record(read.name, FLAG_UNMAP, "*", 0, 0, "*", "*", 0, 0, seq, qual, [])]
    xs = res.xs(h)
    seq, qual = oriented(read.seq, read.qual, bool(h.strand))
    out = [record(read.name, FLAG_REVERSE * h.strand, names[h.contig], h.pos + 1,
                  _mapq(h, res, len(read.seq), p), h.cigar, "*", 0, 0, seq, qual, _tags(h, xs))]
    out += _secondary(read.name, res, names, 0, "*", 0, p)
    return out


def _secondary(qname, res, names, base_flag, rnext, pnext, p) -> list[str]:
    out = []
    for s in res.hits[1 : 1 + p.secondary]:
        if s.contig < 0:
            break
        out.append(record(qname, base_flag | FLAG_SECONDARY | FLAG_REVERSE * s.strand, names[s.contig], s.pos + 1,
                          0, s.cigar, rnext, pnext, 0, "*", "*", _tags(s, res.best.score)))
    return out


def _lines_pair(reads: tuple[Read, Read], res: tuple[ReadResult, ReadResult], names, p, model=None) -> list[str]:
    h1, h2, proper, pq = _choose_pair(res[0], res[1], p, names, model)
    hs = (h1, h2)
    out = []
    for i in (0, 1):
        me, mate, read = hs[i], hs[1 - i], reads[i]
        flag = FLAG_PAIRED | (FLAG_READ1 if i == 0 else FLAG_READ2) | (FLAG_PROPER if proper else 0)
        if me is None:
            flag |= FLAG_UNMAP
        if mate is None:
            flag |= FLAG_MUNMAP
        elif mate.strand:
            flag |= FLAG_MREVERSE
        anchor = me or mate  # an unmapped mate sits at its partner's position
        rname = names[anchor.contig] if anchor else "*"
        pos = anchor.pos + 1 if anchor else 0
        rnext, pnext, tlen = "*", 0, 0
        if mate is not None:
            rnext = "=" if anchor and mate.contig == anchor.contig else names[mate.contig]
            pnext = mate.pos + 1
        if me is not None and mate is not None and me.contig == mate.contig:
            left, right = min(me.pos, mate.pos), max(me.end, mate.end)
            first = me.pos < mate.pos or (me.pos == mate.pos and i == 0)
            tlen = (right - left) * (1 if first else -1)
        if me is None:
            seq, qual = oriented(read.seq, read.qual, False)
            out.append(record(read.name, flag, rname, pos, 0, "*", rnext, pnext, 0, seq, qual, []))
            continue
        flag |= FLAG_REVERSE * me.strand
        xs = res[i].xs(me)
        q = _mapq(me, res[i], len(read.seq), p)
        if proper:
            q = max(q, min(pq, 60)) if me is res[i].best else min(q, pq)
        seq, qual = oriented(read.seq, read.qual, bool(me.strand))
        out.append(record(read.name, flag, rname, pos, q, me.cigar, rnext, pnext, tlen, seq, qual, _tags(me, xs)))
        out += _secondary(read.name, res[i], names, flag & (FLAG_PAIRED | FLAG_READ1 | FLAG_READ2), rnext, pnext, p)
    return out


_WORKER: tuple | None = None  # (aligner, n_trace) inherited by forked worker processes


def _worker_init() -> None:
    """A forked worker runs single-threaded: an OpenMP pool inherited through fork (torch, FAISS,
    when the parent had loaded them) must not be used from the child."""
    import sys

    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(1)
    if "faiss" in sys.modules:
        sys.modules["faiss"].omp_set_num_threads(1)
    aligner = _WORKER[0]
    aligner.encoder.threads = 1


def _work(block: list[list]) -> tuple[list[list[Hit]], dict]:
    aligner, n_trace = _WORKER
    hits = aligner.align_batch(block, n_trace)
    return hits, aligner.take_counts()


def progress_line(stats: Stats, seconds: float) -> str:
    """One progress line: reads so far, mapped %, reads per second (wall clock)."""
    pct = 100.0 * stats.mapped / max(stats.reads, 1)
    return (f"bioseq align: {stats.reads:,} reads, {pct:.1f}% mapped, {stats.reads / max(seconds, 1e-9):,.0f} reads/s "
            f"({seconds:.0f} s)")


def align_files(aligner: Aligner, paths: list[str], out: str | None, threads: int = 1, batch_size: int = 2048,
                command_line: str = "bioseq align", progress: bool = False, progress_every: float = 10.0) -> Stats:
    """Align one (single-end) or two (paired-end) read files and write SAM/BAM to ``out``.

    With ``threads > 1`` the blocks of each batch go to that many worker processes (forked before
    anything heavy is loaded, so they share the index pages), while this process reads the next
    batch and writes the previous one. Under ``accelerate launch`` (several processes, any number
    of machines) process r aligns batches r, r + world, ... and the main process writes every
    batch in input order. Output is the same for any ``threads``, ``batch_size`` or process count.
    With ``progress`` a line (reads, mapped %, reads/s) goes to stderr after the first batch and then
    at most every ``progress_every`` seconds."""
    global _WORKER
    import multiprocessing as mp

    from bioseq.align.index import _distributed

    rank, world, _ = _distributed()
    idx = aligner.index
    names = [c["name"] for c in idx.manifest["contigs"]]
    stats = Stats()
    # XS compares traced scores (clipping changes them); pairing needs positions of the first few hits
    n_trace = max(2, 1 + aligner.p.secondary) if len(paths) == 1 else max(4, 1 + aligner.p.secondary)

    def submit(prepared):
        # fixed-size blocks: a read's hits depend on the read alone, so blocks change only the speed
        blocks = [prepared[s : s + SUB_BATCH] for s in range(0, len(prepared), SUB_BATCH)]
        if pool is None:
            return [_work(b) for b in blocks]
        return pool.map_async(_work, blocks)

    def finish(flat, pending, part: Stats) -> list[str]:
        done = pending if isinstance(pending, list) else pending.get()
        results = [ReadResult(hits=h) for hits, _ in done for h in hits]
        for _, counts in done:
            part.embedded += counts["embedded"]
            part.placed += counts["placed"]
        lines = []
        if len(paths) == 1:
            for (_, _, r), res in zip(flat, results):
                lines += _lines_single(r, res, names, aligner.p)
        else:
            for b in range(0, len(flat), 2):
                lines += _lines_pair((flat[b][2], flat[b + 1][2]), (results[b], results[b + 1]), names, aligner.p,
                                     model)
        part.reads += len(flat)
        part.mapped += sum(1 for r in results if r.hits)
        return lines

    model = None
    batch_iter = _batches(paths, batch_size)
    if len(paths) == 2:
        # insert sizes from the first INSERT_PAIRS pairs, aligned once up front: the same pairs for
        # any batch size, thread or process count, so the output does not depend on them
        head, first = [], []
        for batch in batch_iter:  # buffered, then replayed: stdin can be read only once
            first.append(batch)
            head += batch
            if len(head) >= INSERT_PAIRS:
                break
        batch_iter = itertools.chain(first, batch_iter)
        prepared = [aligner.prepare(r.codes)[1] for _, recs in head[:INSERT_PAIRS] for r in recs]
        hits = [ReadResult(hits=h) for b in range(0, len(prepared), SUB_BATCH)
                for h in aligner.align_batch(prepared[b : b + SUB_BATCH], n_trace)]
        aligner.take_counts()
        model = estimate_insert(list(zip(hits[0::2], hits[1::2])), aligner.p)
        if model is not None:
            log.info("insert size %.1f +- %.1f from %d pairs", model.mean, model.std, model.n)
        stats.insert = model
        # mate rescue window: where a proper pair can put the mate
        aligner.mate_window = int(model.mean + 4 * model.std) if model is not None else aligner.p.max_insert
    # the output is created only now: input errors found so far leave nothing behind
    writer = SamWriter(out, header_lines(idx.manifest["contigs"], command_line, __version__)) if rank == 0 else None
    _WORKER = (aligner, n_trace)
    pool = None  # forked after the insert model, so the workers have it
    if threads > 1 and "fork" in mp.get_all_start_methods():
        pool = mp.get_context("fork").Pool(threads, initializer=_worker_init)

    def prepare(batch) -> tuple[list, list, Stats]:
        part = Stats()
        flat = [(n, j, r) for n, recs in batch for j, r in enumerate(recs)]
        prepared = []
        for n, j, r in flat:
            problem, strands = aligner.prepare(r.codes)
            if problem:
                part.note(paths[j], n, r.name, problem)
            prepared.append(strands)
        return flat, prepared, part

    t_start, last = time.time(), [0.0]

    def write(lines: list[str], part: Stats) -> None:
        stats.merge(part)
        writer.write(lines)
        now = time.time()
        if progress and (last[0] == 0.0 or now - last[0] >= progress_every):
            last[0] = now
            print(progress_line(stats, now - t_start), file=sys.stderr, flush=True)

    def flush(items: list) -> None:
        """Gather one round of batches (one per process) and write them in input order."""
        from accelerate.utils import gather_object

        got = gather_object([items])
        if rank == 0:
            for _, lines, part in sorted((x for g in got for x in g), key=lambda t: t[0]):
                write(lines, part)

    try:
        if world == 1:
            prev = None
            for batch in batch_iter:
                flat, prepared, part = prepare(batch)
                pending = submit(prepared)
                if prev is not None:  # write the previous batch while the workers align this one
                    write(finish(*prev), prev[2])
                prev = (flat, pending, part)
            if prev is not None:
                write(finish(*prev), prev[2])
        else:
            # every process reads the whole input, so all agree on where each round ends
            items, bno = [], -1
            for bno, batch in enumerate(batch_iter):
                if bno % world == rank:
                    flat, prepared, part = prepare(batch)
                    items.append((bno, finish(flat, submit(prepared), part), part))
                if bno % world == world - 1:
                    flush(items)
                    items = []
            if bno % world != world - 1:  # a last, partial round
                flush(items)
        if writer is not None:
            writer.close()
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    finally:
        if pool is not None:
            pool.terminate()
        _WORKER = None
        aligner.mate_window = 0
    return stats
