"""The one exception type for malformed sequence files."""

from __future__ import annotations

import os


class SequenceFormatError(ValueError):
    """A sequence file that cannot be read as the format it claims to be.

    The message always names the file, and where known the record and the 1-based line, so a user
    can open the file at the right place: ``genome.fa: line 1204, record 'chr2': invalid ...``.

    Attributes:
        path: the file (``str``; ``"<stdin>"`` for standard input).
        record: the name of the record being read, or None before the first record.
        line: 1-based line number in the decompressed text, or None.
        problem: the problem alone, without the location.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        problem: str,
        *,
        record: str | None = None,
        line: int | None = None,
    ) -> None:
        self.path = str(path)
        self.record = record
        self.line = line
        self.problem = problem
        where = [self.path]
        if line is not None:
            where.append(f"line {line}")
        if record is not None:
            where.append(f"record {record!r}")
        super().__init__(f"{', '.join(where)}: {problem}")
