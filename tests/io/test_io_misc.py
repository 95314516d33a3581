"""Cheap imports, CRLF files, stdin-style streams."""

import io
import subprocess
import sys
from pathlib import Path

from bioseq.io import read_fasta, read_fastq


def test_importing_io_and_data_loads_neither_torch_nor_zarr():
    code = ("import sys, bioseq.io, bioseq.data, bioseq.data.store, bioseq.data.sampling; "
            "print(sorted(m for m in ('torch', 'zarr', 'pysam') if m in sys.modules))")
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=root, check=True)
    assert out.stdout.strip() == "[]"


def test_crlf_line_endings():
    (rec,) = list(read_fasta(io.BytesIO(b">a x\r\nACGT\r\nGG\r\n")))
    assert (rec.name, rec.description, rec.sequence) == ("a", "x", "ACGTGG")
    (read,) = list(read_fastq(io.BytesIO(b"@r\r\nACG\r\n+\r\nII#\r\n")))
    assert read.sequence == "ACG" and read.quality.tolist() == [40, 40, 2]
