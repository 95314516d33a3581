"""The ``bioseq`` command line: one typer app, one module per subcommand.

Each module in this package named ``cmd_<name>.py`` exposes ``app`` (a ``typer.Typer`` group,
mounted as ``bioseq <name> ...``) or ``command`` (a function, mounted as a single command
``bioseq <name>``) and optionally ``HELP``. Modules are discovered automatically so adding a
subcommand touches no other file. Heavy imports (torch, zarr) stay inside the command bodies so
``bioseq --help`` is instant.
"""

from __future__ import annotations

import importlib
import logging
import pkgutil

import typer

from bioseq import __version__

app = typer.Typer(
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
) -> None:
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
    app()
