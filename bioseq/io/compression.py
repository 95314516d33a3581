"""Compression detection by magic bytes, and streaming decompression with clear errors.

Extensions lie (``.fa.gz`` files that are plain text, BGZF files named ``.gz``), so the format is
read from the first bytes:

=========  ==========================================================
plain      anything else
gzip       ``1f 8b``
bgzip      gzip whose first member carries the BGZF ``BC`` extra field
xz         ``fd 37 7a 58 5a 00``
bz2        ``42 5a 68`` (``BZh``)
=========  ==========================================================

``bgzip`` is a valid gzip stream, so every reader that streams gzip streams it too; the distinction
matters for indexed random access, which needs BGZF.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import os
import re
import sys
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO, Literal

from bioseq.io.errors import SequenceFormatError

Compression = Literal["none", "gzip", "bgzip", "xz", "bz2"]

_XZ_MAGIC = b"\xfd7zXZ\x00"
#: the empty block every BGZF writer ends with (SAM spec section 4.1.2); htslib warns without it
BGZF_EOF = bytes.fromhex("1f8b08040000000000ff0600424302001b0003000000000000000000")
_LONE_CR = re.compile(rb"\r(?!\n)")

#: exceptions that mean "the compressed stream is damaged or cut short"
_STREAM_ERRORS = (EOFError, zlib.error, gzip.BadGzipFile, lzma.LZMAError, OSError)


def sniff_compression(head: bytes) -> Compression:
    """Compression of a stream from its first (up to 18) bytes."""
    if head[:2] == b"\x1f\x8b":
        # BGZF: FLG.FEXTRA set, XLEN at 10..11, then subfield id 'BC' (SAM spec section 4.1).
        if len(head) >= 14 and head[3] & 4 and head[12:14] == b"BC":
            return "bgzip"
        return "gzip"
    if head[:6] == _XZ_MAGIC:
        return "xz"
    if head[:3] == b"BZh":
        return "bz2"
    return "none"


def detect_compression(path: str | os.PathLike) -> Compression:
    """Compression of a file, read from its magic bytes (the extension is ignored)."""
    with open(path, "rb") as fh:
        return sniff_compression(fh.read(18))


def check_input_file(path: str | os.PathLike) -> None:
    """Fail early, before any output or progress bar exists, on an input that cannot be read at
    all: missing, a directory, unreadable, or a BGZF file without its end-of-file block.
    ``"-"`` (stdin) passes."""
    if str(path) == "-":
        return
    if not Path(path).exists():
        raise FileNotFoundError(f"{path}: no such file")
    if Path(path).is_dir():
        raise SequenceFormatError(path, "is a directory, not a sequence file")
    if not os.access(path, os.R_OK):
        raise SequenceFormatError(path, "permission denied: the file cannot be read")
    try:
        kind = detect_compression(path)
    except PermissionError:
        raise SequenceFormatError(path, "permission denied: the file cannot be read") from None
    if kind == "bgzip":
        check_bgzf_eof(path)


def check_bgzf_eof(path: str | os.PathLike) -> None:
    """Raise :class:`SequenceFormatError` if a BGZF file lacks its end-of-file block.

    A BGZF file cut at a block boundary is a valid gzip stream that simply ends early; only the
    missing EOF block (which every BGZF writer appends) shows that data is gone.
    """
    with open(path, "rb") as fh:
        size = fh.seek(0, os.SEEK_END)
        fh.seek(max(0, size - len(BGZF_EOF)))
        if fh.read() != BGZF_EOF:
            raise SequenceFormatError(
                path, "truncated bgzip file: the BGZF end-of-file block is missing, so data may be "
                "lost (an incomplete download or copy?)")


def stream_error(name: str, e: BaseException) -> SequenceFormatError:
    """A damaged-compressed-stream exception as a :class:`SequenceFormatError` naming the file."""
    if isinstance(e, EOFError):
        return SequenceFormatError(name, "truncated compressed stream: the file ends before the "
                                   "end-of-stream marker (an incomplete download or copy?)")
    return SequenceFormatError(name, f"corrupt compressed data ({e})")


def peek(stream: BinaryIO, n: int, name: str) -> bytes:
    """The first ``n`` decompressed bytes of ``stream`` without consuming them; damage is reported
    as :class:`SequenceFormatError` naming ``name``."""
    try:
        return stream.peek(n)[:n]  # type: ignore[attr-defined]
    except _STREAM_ERRORS as e:
        raise stream_error(name, e) from None


def _display(path: str | os.PathLike | BinaryIO) -> str:
    if isinstance(path, (str, os.PathLike)):
        return "<stdin>" if str(path) == "-" else str(path)
    return getattr(path, "name", "<stream>")


def open_binary(path: str | os.PathLike | BinaryIO) -> BinaryIO:
    """Open a possibly compressed file (or ``"-"`` for stdin, or a binary stream) for reading.

    Returns a binary stream of the decompressed bytes. Decompression errors surface on ``read``;
    :class:`BlockReader` turns them into :class:`SequenceFormatError`.
    """
    if isinstance(path, (str, os.PathLike)) and str(path) != "-":
        check_input_file(path)
        kind = detect_compression(path)
        # named files: the decompressor opens (and on close, closes) the file itself
        if kind in ("gzip", "bgzip"):
            return gzip.open(path, "rb")  # type: ignore[return-value]
        if kind == "xz":
            return lzma.open(path, "rb")  # type: ignore[return-value]
        if kind == "bz2":
            return bz2.open(path, "rb")  # type: ignore[return-value]
        return open(path, "rb")  # noqa: SIM115 - returned to the caller
    raw = sys.stdin.buffer if isinstance(path, (str, os.PathLike)) else path
    if not hasattr(raw, "peek"):
        raw = io.BufferedReader(raw)  # type: ignore[arg-type]
    kind = sniff_compression(raw.peek(18)[:18])
    if kind == "bgzip":  # a stream cannot be seeked: remember its tail to check the EOF block
        keeper = _TailKeeper(raw)
        stream = gzip.GzipFile(fileobj=keeper, mode="rb")
        stream.bgzf_tail = keeper  # type: ignore[attr-defined]
        return stream  # type: ignore[return-value]
    if kind == "gzip":
        return gzip.GzipFile(fileobj=raw, mode="rb")  # type: ignore[return-value]
    if kind == "xz":
        return lzma.LZMAFile(raw, "rb")  # type: ignore[return-value]
    if kind == "bz2":
        return bz2.BZ2File(raw, "rb")  # type: ignore[return-value]
    return raw  # type: ignore[return-value]


class _TailKeeper:
    """A read-only stream wrapper that remembers the last bytes read (the BGZF EOF block)."""

    def __init__(self, raw: BinaryIO) -> None:
        self.raw, self.tail = raw, b""

    def read(self, n: int = -1) -> bytes:
        data = self.raw.read(n)
        if data:
            self.tail = (self.tail + data)[-len(BGZF_EOF):]
        return data

    def close(self) -> None:  # the caller owns the underlying stream
        pass


class BlockReader:
    """Reads a (decompressed) file in large blocks that end on a line boundary.

    Parsers set :attr:`record` and :attr:`line` as they go so that a damaged compressed stream is
    reported where it broke (``truncated gzip stream ... line 51234, record 'chr7'``).
    """

    def __init__(self, path: str | os.PathLike | BinaryIO, block_bytes: int = 1 << 22) -> None:
        self.name = _display(path)
        self.block_bytes = block_bytes
        self.record: str | None = None
        self.line = 1
        self._stream = open_binary(path)
        self._owns = isinstance(path, (str, os.PathLike)) and str(path) != "-"
        self._read1 = getattr(self._stream, "read1", self._stream.read)
        self._lines_before = 0  # newlines in the blocks already yielded

    def error(self, problem: str, *, line: int | None = None, record: str | None = None) -> SequenceFormatError:
        return SequenceFormatError(
            self.name, problem, record=self.record if record is None else record,
            line=self.line if line is None else line,
        )

    def blocks(self) -> Iterator[bytes]:
        """Yield blocks of whole lines (the last may lack a final newline).

        A damaged compressed stream is reported only after every complete line before the damage
        has been yielded, so the error carries the record and line the parser had reached.
        """
        buf = bytearray()
        last_nl = -1  # index in buf of its last newline; the search only ever scans new data
        while True:
            failure = None
            try:
                # read1: one underlying read, so data decoded before a truncation is not lost
                piece = self._read1(1 << 16)
            except EOFError as e:
                piece, failure = b"", e
                problem = ("truncated compressed stream: the file ends before the end-of-stream "
                           "marker (an incomplete download or copy?)")
            except _STREAM_ERRORS as e:
                piece, failure = b"", e
                problem = f"corrupt compressed data ({e})"
            if piece:
                nl = piece.rfind(b"\n")
                if nl >= 0:
                    last_nl = len(buf) + nl
                buf += piece
                if len(buf) < self.block_bytes:
                    continue
            if last_nl >= 0 and (piece or failure is not None):
                yield self._checked(bytes(memoryview(buf)[: last_nl + 1]))
                del buf[: last_nl + 1]
                last_nl = -1
            if failure is not None:
                raise self.error(problem) from failure
            if not piece:  # clean end of file
                if buf:
                    yield self._checked(bytes(buf.removesuffix(b"\r")))
                keeper = getattr(self._stream, "bgzf_tail", None)
                if keeper is not None and keeper.tail != BGZF_EOF:
                    raise self.error("truncated bgzip stream: the BGZF end-of-file block is missing, so "
                                     "data may be lost (an incomplete download or copy?)")
                return

    def _checked(self, block: bytes) -> bytes:
        """Reject a carriage return not followed by a newline (old Mac OS line endings): such a
        file parses as one long line (a FASTA of one empty record), so it is refused, naming the
        line, rather than silently misread. CRLF (Windows) line endings are fine."""
        if b"\r" in block:
            m = _LONE_CR.search(block)
            if m is not None:
                line = self._lines_before + block.count(b"\n", 0, m.start()) + 1
                raise SequenceFormatError(
                    self.name, "carriage return without a newline (old Mac OS line endings?); "
                    "convert the file with `tr '\\r' '\\n'`", line=line)
        self._lines_before += block.count(b"\n")
        return block

    def lines(self) -> Iterator[bytes]:
        """Yield lines without their line ending; :attr:`line` is the number of the line yielded."""
        self.line = 0
        for block in self.blocks():
            parts = block.split(b"\n")
            if parts[-1] == b"":
                parts.pop()
            for raw in parts:
                self.line += 1
                yield raw.rstrip(b"\r")

    def close(self) -> None:
        if self._owns:
            self._stream.close()

    def __enter__(self) -> BlockReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
