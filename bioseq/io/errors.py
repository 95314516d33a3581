"""The exception types for problems a user can fix: bad input files, refused outputs, bad options.

The ``bioseq`` command line prints any :class:`UserError` (and file-system errors such as a
missing file or a permission problem) as one line on stderr and exits non-zero, without a
traceback; ``--debug`` or ``BIOSEQ_DEBUG=1`` shows the traceback. Library code raises these
classes (or subclasses of them) at the point where it knows the file and the problem; code that
calls a third-party parser (safetensors, JSON, FAISS, zarr) wraps its errors into them at that
boundary, naming the file.
"""

from __future__ import annotations

import os


class UserError(ValueError):
    """A problem with what the user gave us (a file, a path, an option value), not a bug.

    The message must name the file (or option) and say what is wrong with it.
    """


class SequenceFormatError(UserError):
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


class OutputPathError(UserError):
    """An output path that would destroy data: it is an input, something that is not ours, or
    lies inside one of our stores or indexes. Nothing has been written when this is raised."""


class FileFormatError(UserError):
    """A non-sequence file we read (checkpoint, tokenizer, manifest, store metadata) is damaged
    or not what it should be. The message names the file."""


def load_errors() -> tuple[type[BaseException], ...]:
    """Exceptions that loading a damaged checkpoint or metadata file raises (truncated
    safetensors, bad JSON, wrong shapes); callers wrap them into :class:`FileFormatError`."""
    errors: tuple[type[BaseException], ...] = (OSError, ValueError, KeyError, TypeError, RuntimeError, EOFError)
    try:
        from safetensors import SafetensorError

        errors += (SafetensorError,)
    except ImportError:  # pragma: no cover - safetensors is a dependency
        pass
    return errors
