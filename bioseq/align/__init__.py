"""Embed-search-align: a neural short-read aligner.

A contrastively trained encoder embeds reference fragments and reads into one space
(:mod:`bioseq.align.encoder`); ``bioseq index`` tiles a reference into overlapping fragments and
stores their embeddings in a FAISS index next to a minimizer table (:mod:`bioseq.align.index`);
``bioseq align`` embeds both strands of each read, searches the top-K fragments, re-ranks them by a
minimizer seed vote, realigns the best candidates with a SIMD Smith-Waterman (parasail) and writes
SAM/BAM (:mod:`bioseq.align.aligner`, :mod:`bioseq.align.sam`).

Imports here stay light: torch and faiss load inside the functions that need them.
"""

from bioseq.align.reference import Contig, read_reference
from bioseq.align.simulate import mutate_read

__all__ = ["Contig", "mutate_read", "read_reference"]
