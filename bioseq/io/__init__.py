"""Sequence I/O: streaming FASTA/FASTQ readers and atomic writers, indexed FASTA access.

Every reader detects plain, gzip, bgzip, xz and bz2 input from magic bytes (not the extension),
yields one record at a time with its sequence as ``uint8`` codes from :mod:`bioseq.alphabet`, and
reports malformed input as :class:`SequenceFormatError` naming file, record and line::

    from bioseq.io import read_fasta, read_fastq, write_fasta, IndexedFasta

    for rec in read_fasta("genome.fa.xz"):      # rec.name, rec.description, rec.codes (uint8)
        ...
    for read in read_fastq("reads.fq.gz"):      # read.codes, read.quality (Phred, uint8)
        ...
    write_fasta("out.fa.gz", [("chr1", "ACGT")])    # atomic; .gz written as bgzip
    check_output("out.sam", ["reads.fq"])       # refuses output == input (also via links), etc.
    IndexedFasta("genome.fa.gz").fetch("chr1", 0, 1000)
"""

from bioseq.io.atomic import AtomicOutput, atomic_dir, atomic_file, check_output
from bioseq.io.compression import detect_compression, open_binary, sniff_compression
from bioseq.io.errors import FileFormatError, OutputPathError, SequenceFormatError, UserError
from bioseq.io.fasta import FastaRecord, iter_fasta_pieces, read_fasta, write_fasta
from bioseq.io.fastq import FastqRecord, read_fastq, write_fastq
from bioseq.io.indexed import IndexedFasta, to_bgzip

__all__ = [
    "AtomicOutput",
    "FastaRecord",
    "FastqRecord",
    "FileFormatError",
    "IndexedFasta",
    "OutputPathError",
    "SequenceFormatError",
    "UserError",
    "atomic_dir",
    "atomic_file",
    "check_output",
    "detect_compression",
    "iter_fasta_pieces",
    "open_binary",
    "read_fasta",
    "read_fastq",
    "sniff_compression",
    "to_bgzip",
    "write_fasta",
    "write_fastq",
]
