"""The ``bioseq`` command line: one typer app, one module per subcommand.

Each module in this package named ``cmd_<name>.py`` exposes ``app`` (a ``typer.Typer`` group,
mounted as ``bioseq <name> ...``) or ``command`` (a function, mounted as a single command
``bioseq <name>``) and optionally ``HELP``. Modules are discovered automatically so adding a
subcommand touches no other file. Heavy imports (torch, zarr) stay inside the command bodies so
``bioseq --help`` is instant.

Errors are reported here, once for every command: a :class:`~bioseq.io.errors.UserError` (bad
input file, refused output path, bad option value), a file-system error or a bad option prints
one line ``bioseq <command>: error: <file>: <problem>`` on stderr and exits non-zero without a
traceback; any other exception is reported as an internal error in one line too. ``--debug`` or
``BIOSEQ_DEBUG=1`` lets the exception propagate with its traceback.
"""

from __future__ import annotations

import importlib
import logging
import os
import pkgutil

import typer
from typer.core import TyperGroup

try:  # typer vendors click from 0.2x on; older versions use click itself
    from typer._click.exceptions import ClickException as _ClickError
except ImportError:  # pragma: no cover - depends on the typer version
    from click import ClickException as _ClickError

from bioseq import __version__

EXIT_ERROR, EXIT_USAGE, EXIT_INTERNAL, EXIT_INTERRUPTED = 1, 2, 3, 130
_DEBUG = False  # set by --debug


def debug_enabled() -> bool:
    """True under ``--debug`` or ``BIOSEQ_DEBUG=1``: commands that report errors themselves
    re-raise them instead, so the traceback shows."""
    return _DEBUG or os.environ.get("BIOSEQ_DEBUG", "") not in ("", "0")


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


class _Group(TyperGroup):
    """The root command group: turns exceptions escaping any subcommand into one-line errors."""

    def invoke(self, ctx: typer.Context):
        from bioseq.io.errors import UserError

        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort):
            raise
        except Exception as e:  # noqa: BLE001 - every exception ends here, reported in one line
            if ctx.params.get("debug") or debug_enabled():
                raise
            where = f"bioseq {ctx.invoked_subcommand}" if ctx.invoked_subcommand else "bioseq"
            if isinstance(e, _ClickError):  # a bad option or argument value
                msg, code = e.format_message(), getattr(e, "exit_code", EXIT_USAGE)
            elif isinstance(e, UserError):
                msg, code = str(e), EXIT_ERROR
            elif isinstance(e, OSError):
                msg = f"{e.filename}: {e.strerror}" if e.filename and e.strerror else str(e)
                code = EXIT_ERROR
            else:
                msg = (f"internal error: {type(e).__name__}: {e} (this is a bug; rerun with --debug "
                       "for the traceback and report it)")
                code = EXIT_INTERNAL
            typer.echo(f"{where}: error: {_one_line(msg)}", err=True)
            raise typer.Exit(code) from None
        except KeyboardInterrupt:
            typer.echo("bioseq: interrupted", err=True)
            raise typer.Exit(EXIT_INTERRUPTED) from None


app = typer.Typer(
    cls=_Group,
    name="bioseq",
    help="Foundation models for genomic and biological sequences.",
    no_args_is_help=True,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"bioseq {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    verbose: int = typer.Option(0, "--verbose", "-v", count=True, help="More logging (-v info, -vv debug)."),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
    debug: bool = typer.Option(False, "--debug", help="Show the traceback of an error (or set BIOSEQ_DEBUG=1)."),
) -> None:
    global _DEBUG
    _DEBUG = debug
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="[%(asctime)s] %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")


def _plain_help_types() -> None:
    """Help shows shell-style value names (``INT``, ``PATH``, ``TEXT...``; nothing after a flag)
    rather than typer's Python annotations (``<bool>``, ``<list[Path]>``)."""
    import re

    from typer import core

    names = {"str": "TEXT", "bool": None, "Path": "PATH", "int": "INT", "float": "FLOAT"}

    def wrap(original):
        def display_type_rich(self, ctx):
            shown = original(self, ctx)
            if shown is None or shown == self.metavar:
                return shown
            m = re.fullmatch(r"<?(list\[)?(\w+)\]?>?(\.\.\.)?", shown)
            if not m:
                return shown
            name = names.get(m.group(2), m.group(2).upper())
            return None if name is None else name + ("..." if m.group(1) or m.group(3) else "")
        return display_type_rich

    for cls in (core.TyperOption, core.TyperArgument):
        cls.display_type_rich = wrap(cls.display_type_rich)


_plain_help_types()


def _mount() -> None:
    for m in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if not m.name.startswith("cmd_"):
            continue
        mod = importlib.import_module(f"{__name__}.{m.name}")
        name = m.name[len("cmd_"):].replace("_", "-")
        if hasattr(mod, "app"):
            app.add_typer(mod.app, name=name, help=getattr(mod, "HELP", None))
        elif hasattr(mod, "command"):
            app.command(name=name, help=getattr(mod, "HELP", None))(mod.command)


_mount()


def main() -> None:
    """The ``bioseq`` entry point: temporaries are removed on SIGTERM/SIGINT, then the command runs."""
    from bioseq.io.atomic import install_signal_cleanup

    install_signal_cleanup()
    app()
