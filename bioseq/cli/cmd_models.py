"""``bioseq models list | info | verify``: the pretrained checkpoints that ship with bioseq."""

from __future__ import annotations

import json

import typer

HELP = "List, describe and verify the pretrained checkpoints shipped with bioseq."
app = typer.Typer(no_args_is_help=True, help=HELP)


def _fail(e: BaseException) -> typer.Exit:
    typer.secho(f"error: {e}", fg="red", err=True)
    return typer.Exit(1)


@app.command("list")
def list_(json_out: bool = typer.Option(False, "--json", help="One JSON object per checkpoint.")) -> None:
    """Name, task, size, parameters, training tokens and held-out scores of each shipped checkpoint.

    Example: ``bioseq models list``, then ``load_pretrained("NAME")`` in Python or ``--model NAME``
    on the command line.
    """
    from bioseq.models.checkpoints import CheckpointError, list_checkpoints

    try:
        infos = list_checkpoints()
    except CheckpointError as e:
        raise _fail(e) from None
    if json_out:
        for c in infos:
            typer.echo(json.dumps({k: v for k, v in vars(c).items() if k != "path"} | {"path": str(c.path)}))
        return
    if not infos:
        typer.echo("no pretrained checkpoints ship with this install")
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title="bioseq pretrained checkpoints")
    for col in ("name", "task", "size", "params", "tokens", "data", "held-out"):
        table.add_column(col, overflow="fold")
    for c in infos:
        held = "\n".join(f"{k}: {v:.4g}" for k, v in c.heldout.items())
        table.add_row(c.name, c.task, c.size, f"{c.params / 1e6:.2f}M", f"{c.tokens / 1e6:.1f}M", c.data, held)
    Console().print(table)


@app.command()
def info(name: str = typer.Argument(..., help="A shipped checkpoint (see `bioseq models list`).")) -> None:
    """Print a shipped checkpoint's model card. Example: ``bioseq models info dna-clm-bacteria-tiny``."""
    from bioseq.models.checkpoints import CheckpointError, get_checkpoint

    try:
        c = get_checkpoint(name)
    except CheckpointError as e:
        raise _fail(e) from None
    typer.echo((c.path / "README.md").read_text())
    typer.echo(f"folder: {c.path}")


@app.command()
def verify(names: list[str] = typer.Argument(None, help="Checkpoints to check (default: all).")) -> None:
    """Check each shipped checkpoint's weights against the SHA-256 in its card; non-zero exit on a
    mismatch. Example: ``bioseq models verify``."""
    from bioseq.models.checkpoints import CheckpointError, get_checkpoint, list_checkpoints
    from bioseq.models.checkpoints import verify as verify_one

    try:
        infos = [get_checkpoint(n) for n in names] if names else list_checkpoints()
        for c in infos:
            verify_one(c)
            typer.echo(f"{c.name}: ok ({c.sha256[:12]})")
    except CheckpointError as e:
        raise _fail(e) from None
