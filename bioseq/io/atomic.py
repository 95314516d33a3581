"""Outputs that never destroy data: temporary sibling, rename on success, refuse dangerous paths.

Every file or directory ``bioseq`` writes goes through this module:

* :func:`atomic_file` / :func:`atomic_dir` (or :class:`AtomicOutput` where a context manager does
  not fit) write under ``.<name>.tmp-<pid>-<random>`` in the target directory and rename onto the
  final name only on success. A directory that already exists is swapped in one step
  (``renameat2(RENAME_EXCHANGE)`` on Linux), so at every moment the final path holds the previous
  complete output, the new complete one, or (for a first build killed at the wrong instant, on
  systems without the swap) nothing.
* Live temporaries are registered; :func:`install_signal_cleanup` (called by the ``bioseq``
  entry point) removes them on SIGTERM/SIGINT/SIGHUP and then lets the signal take its default
  effect. Temporaries of the same final name left by writers that no longer run (SIGKILL, power
  loss) are removed by the next writer of that name: the process id in the name tells.
* :func:`check_output` refuses an output that is one of the inputs (same file through symlinks or
  hard links), an existing directory where a file is wanted, something at a directory output that
  is not recognisably ours, and paths inside one of our indexes or stores.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import shutil
import signal
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path

from bioseq.io.errors import OutputPathError

TMP_TAG = ".tmp-"  # temporaries are named f".{final name}{TMP_TAG}{pid}-{random}"

_LIVE: set[Path] = set()  # temporaries of this process, removed on a fatal signal
_OWNER: int | None = None  # pid that installed the signal handlers (forked children do not clean)


def tmp_sibling(path: Path) -> Path:
    """A fresh temporary name beside ``path`` that :func:`remove_stale` can attribute to us."""
    return path.with_name(f".{path.name}{TMP_TAG}{os.getpid()}-{uuid.uuid4().hex[:8]}")


def _rm(p: Path) -> None:
    if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            p.unlink()


def remove_stale(path: str | os.PathLike) -> list[Path]:
    """Delete temporaries of ``path`` left by writers that no longer run; return what was removed.

    Only names of our own pattern (``.<name>.tmp-<pid>-...``) whose process is gone are touched.
    """
    path = Path(path)
    prefix = f".{path.name}{TMP_TAG}"
    removed = []
    if not path.parent.is_dir():
        return removed
    for tmp in path.parent.glob(glob_escape(prefix) + "*"):
        pid = tmp.name[len(prefix):].split("-", 1)[0]
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            _rm(tmp)
            removed.append(tmp)
        except PermissionError:  # alive, owned by someone else
            pass
    return removed


def glob_escape(name: str) -> str:
    return "".join(f"[{c}]" if c in "*?[" else c for c in name)


def _swap(a: Path, b: Path) -> bool:
    """Exchange two existing paths atomically (Linux renameat2); False where unsupported."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    rc = fn(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange)
    return rc == 0


class AtomicOutput:
    """A temporary sibling of ``path`` that becomes ``path`` on :meth:`commit`.

    Args:
        path: the final file or directory.
        directory: create the temporary as a directory (else the caller creates the file).

    Stale temporaries of ``path`` are removed first; the temporary is registered for removal on
    SIGTERM/SIGINT until it is committed or aborted.
    """

    def __init__(self, path: str | os.PathLike, *, directory: bool = False) -> None:
        self.path = Path(path)
        if self.path.is_dir() and not directory:
            raise OutputPathError(f"{self.path}: is a directory; give a file name for the output")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        remove_stale(self.path)
        self.tmp = tmp_sibling(self.path)
        self.directory = directory
        _LIVE.add(self.tmp)
        if directory:
            self.tmp.mkdir()

    def commit(self) -> Path:
        """Move the temporary onto the final path (the previous output is replaced in one step)."""
        if self.directory and self.path.exists() and _swap(self.tmp, self.path):
            _rm(self.tmp)  # now holds the previous output
        elif self.directory and self.path.exists():
            old = tmp_sibling(self.path)
            _LIVE.add(old)
            os.replace(self.path, old)
            os.replace(self.tmp, self.path)
            _rm(old)
            _LIVE.discard(old)
        else:
            os.replace(self.tmp, self.path)
        _LIVE.discard(self.tmp)
        return self.path

    def abort(self) -> None:
        """Remove the temporary (the final path is left as it was)."""
        _rm(self.tmp)
        _LIVE.discard(self.tmp)


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on clean exit rename it onto ``path``."""
    out = AtomicOutput(path)
    try:
        yield out.tmp
        out.commit()
    finally:
        if out.tmp in _LIVE:
            out.abort()


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a fresh temporary directory beside ``path``; on clean exit it replaces ``path``.

    At every moment ``path`` is the old complete directory, the new one, or (only where the
    atomic swap is unavailable, for an instant) absent. Stale temporaries are removed first.
    """
    out = AtomicOutput(path, directory=True)
    try:
        yield out.tmp
        out.commit()
    finally:
        if out.tmp in _LIVE:
            out.abort()


# ---------------------------------------------------------------- signals

def _cleanup_live(limit: float = 5.0) -> list[Path]:
    """Remove every live temporary, also while writer threads (zarr's I/O pool) are still
    creating files in it: each temporary is deleted and replaced by an empty placeholder *file*,
    so a late ``mkdir(parents=True)`` or ``open`` inside it fails instead of recreating it.

    Returns the placeholders, which :func:`_unlink_and_die` removes in the instant before the
    process dies (removing them earlier would let a write still in flight recreate a temporary)."""
    import time

    deadline = time.monotonic() + limit
    placed = []
    for p in list(_LIVE):
        while True:
            _rm(p)
            try:
                os.close(os.open(p, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
                placed.append(p)
                break
            except FileExistsError:  # recreated by a writer in between: again
                if time.monotonic() > deadline:
                    break
            except OSError:  # folder gone or not writable: nothing more to do
                break
    _LIVE.clear()
    return placed


def _unlink_and_die(placeholders: list[Path], signum: int) -> None:
    """Remove the placeholders and die of ``signum`` without letting another Python thread run in
    between: calls through ``ctypes.PyDLL`` keep the GIL, so no writer thread can start a new
    ``mkdir``/``open`` after its placeholder is gone."""
    signal.signal(signum, signal.SIG_DFL)
    try:
        import ctypes

        libc = ctypes.PyDLL(None)
        for p in placeholders:
            libc.unlink(os.fsencode(p))
        libc.kill(os.getpid(), signum)
    except (OSError, AttributeError):  # no C library handle: the plain (slightly racy) way
        for p in placeholders:
            _rm(p)
    os.kill(os.getpid(), signum)  # the default effect: terminate with this signal


def _quiesce_zarr(limit: float = 10.0) -> bool:
    """Let zarr's in-flight writes finish before the temporaries go.

    zarr 3 writes chunks from an event-loop thread and its thread pool; a write already in flight
    when the signal arrives would recreate (``mkdir(parents=True)``) a temporary we just removed.
    The handler runs in the main thread, which submits no new zarr work while it runs, so once every
    task on zarr's loop is done no writer is left. Returns False if they did not finish in time."""
    import sys

    sync = sys.modules.get("zarr.core.sync")
    loop = getattr(sync, "loop", [None])[0] if sync is not None else None
    if loop is None or loop.is_closed() or not loop.is_running():
        return True
    import asyncio
    import concurrent.futures

    async def drain() -> None:
        me = asyncio.current_task()
        while pending := [t for t in asyncio.all_tasks() if t is not me and not t.done()]:
            await asyncio.wait(pending)

    try:
        asyncio.run_coroutine_threadsafe(drain(), loop).result(timeout=limit)
        return True
    except (concurrent.futures.TimeoutError, RuntimeError):
        return False


def _on_signal(signum, frame) -> None:  # noqa: ARG001 - signal handler signature
    # forked workers inherit the handler but own no temporaries
    if os.getpid() != _OWNER:
        _unlink_and_die([], signum)
    _quiesce_zarr()
    _unlink_and_die(_cleanup_live(), signum)


def install_signal_cleanup() -> None:
    """Remove this process's live temporaries on SIGTERM, SIGINT or SIGHUP, then die of the signal.

    Called once by the ``bioseq`` entry point (not by library imports, so embedding applications
    keep their own handlers).
    """
    global _OWNER
    _OWNER = os.getpid()
    for sig in (signal.SIGTERM, signal.SIGINT, getattr(signal, "SIGHUP", None)):
        if sig is not None:
            with contextlib.suppress(ValueError, OSError):  # not the main thread
                signal.signal(sig, _on_signal)


# ---------------------------------------------------------------- refusing dangerous outputs

#: format names that mark a directory as ours: (metadata file, JSON path to the format name)
_OUR_FORMATS = {"manifest.json": ("format",), "zarr.json": ("attributes", "format")}


def our_format(path: str | os.PathLike) -> str | None:
    """The bioseq format name recorded in a directory (index manifest or store metadata), or None."""
    path = Path(path)
    for meta, keys in _OUR_FORMATS.items():
        f = path / meta
        if not f.is_file():
            continue
        try:
            value = json.loads(f.read_text())
            for k in keys:
                value = value[k]
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if isinstance(value, str) and value.startswith("bioseq-"):
            return value
    return None


def _same_file(a: Path, b: Path) -> bool:
    try:
        sa, sb = a.stat(), b.stat()
    except OSError:
        return os.path.realpath(a) == os.path.realpath(b)
    return (sa.st_dev, sa.st_ino) == (sb.st_dev, sb.st_ino) or os.path.realpath(a) == os.path.realpath(b)


def _inside(child: Path, parent: Path) -> bool:
    c, p = os.path.realpath(child), os.path.realpath(parent)
    return c != p and c.startswith(p.rstrip(os.sep) + os.sep)


def check_output(
    out: str | os.PathLike | None,
    inputs: Iterable[str | os.PathLike | None],
    *,
    directory: bool = False,
    replaces: str | None = None,
) -> None:
    """Refuse an output path that would destroy data; call it before writing anything.

    Args:
        out: the final output path (None or ``"-"``: stdout, always fine).
        inputs: every file or folder the command reads (None and ``"-"`` are skipped).
        directory: the output is a directory (index, store).
        replaces: for a directory output, the format name (e.g. ``"bioseq-esa-index"``) that an
            existing directory must carry to be replaced; an empty directory is always fine.

    Raises:
        OutputPathError: the output is an input (also through links), contains an input, is an
            existing directory where a file is wanted, exists and is not ours to replace, or lies
            inside one of our indexes or stores.
    """
    if out is None or str(out) == "-":
        return
    out = Path(out)
    for inp in inputs:
        if inp is None or str(inp) == "-":
            continue
        inp = Path(inp)
        if _same_file(out, inp):
            raise OutputPathError(f"{out}: the output is the input {inp}; choose another output path")
        if _inside(inp, out):
            raise OutputPathError(f"{out}: the output would replace a folder holding the input {inp}; "
                                  "choose another output path")
    for parent in out.parents:
        fmt = our_format(parent) if parent.is_dir() else None
        if fmt is not None:
            raise OutputPathError(f"{out}: lies inside the {fmt} {parent}; writing there would damage it")
    if not (out.exists() or out.is_symlink()):
        return
    if not directory:
        if out.is_dir():
            raise OutputPathError(f"{out}: is a directory; give a file name for the output")
        return
    if out.is_dir() and not out.is_symlink():
        if not any(out.iterdir()):
            return
        fmt = our_format(out)
        if fmt is not None and (replaces is None or fmt == replaces):
            return
        what = f"a {fmt}, not a {replaces}" if fmt else f"not a {replaces or 'bioseq output'}"
        raise OutputPathError(f"{out}: exists and is {what}; it is never replaced: remove it or choose "
                              "another output path")
    raise OutputPathError(f"{out}: exists and is a file, not a {replaces or 'bioseq output'} folder; "
                          "remove it or choose another output path")
