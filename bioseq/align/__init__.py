"""Embed-search-align: a short-read aligner with seeds, re-seeding and an embedding search.

``bioseq index`` tiles a reference into overlapping fragments and stores their embeddings (a
k-mer count sketch by default, :mod:`bioseq.align.sketch`, or a contrastively trained encoder,
:mod:`bioseq.align.encoder`) in a FAISS index next to two minimizer tables
(:mod:`bioseq.align.index`); ``bioseq align`` seeds both strands of each read, re-seeds the
poorly placed ones with short seeds, searches the top-K fragments for reads no seed placed,
realigns the candidates with a SIMD Smith-Waterman (parasail) and writes SAM/BAM
(:mod:`bioseq.align.aligner`, :mod:`bioseq.align.sam`).

Imports here stay light: torch and faiss load inside the functions that need them.
"""

from bioseq.align.reference import Contig, read_reference
from bioseq.align.simulate import mutate_read

__all__ = ["Contig", "mutate_read", "read_reference"]
