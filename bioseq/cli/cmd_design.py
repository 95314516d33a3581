"""``bioseq design``: sample sequences from a trained flow model and write FASTA."""

from __future__ import annotations

import math
from pathlib import Path

import typer

HELP = "Design sequences with a Dirichlet (or linear) flow matching model; writes FASTA."


def command(
    model: str = typer.Option(None, "--model", "-m", help="Model folder (config.json + model.safetensors) or a shipped model name (see --list-models)."),
    n: int = typer.Option(100, "--n", "-n", min=1, help="Number of designs."),
    cls: str = typer.Option(None, "--class", "-c", help="Class name or index to design for (conditional models)."),
    guidance: float = typer.Option(0.0, "--guidance", "-g", min=0.0, help="Guidance scale w (0 = unguided)."),
    guidance_mode: str = typer.Option("probability", "--guidance-mode", help="Classifier-free guidance form: probability or score."),
    classifier: Path = typer.Option(None, "--classifier", help="Noisy classifier folder: use classifier guidance instead of classifier-free."),
    steps: int = typer.Option(50, "--steps", min=1, help="Integration steps (ignored by distilled one-step models)."),
    method: str = typer.Option("heun", "--method", help="ODE integrator: heun (2 denoiser calls per step) or euler (1)."),
    decode: str = typer.Option(None, "--decode", help="argmax or sample (default: the model's choice for its alphabet size)."),
    seed: int = typer.Option(0, "--seed", min=0, help="Random seed."),
    batch_size: int = typer.Option(1000, "--batch-size", min=1, help="Designs per batch."),
    output: Path = typer.Option(None, "--output", "-o", help="Output FASTA (written atomically)."),
    list_models: bool = typer.Option(False, "--list-models", help="List the models shipped with bioseq and exit."),
) -> None:
    """Sample ``n`` designs and write them as FASTA records ``>design_<i> class=<C>``."""
    import torch

    from bioseq.design import FlowModel, Guidance, load_module, sample
    from bioseq.design.pretrained import resolve_model, shipped_models
    from bioseq.io.atomic import atomic_file, check_output
    from bioseq.io.errors import load_errors

    def fail(msg: str) -> None:
        typer.echo(f"bioseq design: error: {msg}", err=True)
        raise typer.Exit(2)

    if list_models:
        for name, description in shipped_models().items():
            typer.echo(f"{name}\t{description}")
        return
    if model is None or output is None:
        fail("--model and --output are required (shipped models: --list-models)")
    if not math.isfinite(guidance):
        fail(f"--guidance must be a finite number, got {guidance}")
    check_output(output, [model, classifier])  # before loading anything
    try:
        flow = FlowModel.from_pretrained(resolve_model(model))
    except load_errors() as e:
        fail(f"cannot load model {model}: {e}")
    class_id = None
    if cls is not None:
        try:
            class_id = flow.class_id(cls)
        except ValueError as e:
            fail(f"--class: {e}")
    if (guidance > 0 or classifier is not None) and class_id is None:
        fail("--guidance / --classifier need --class")
    if guidance_mode not in ("probability", "score"):
        fail(f"--guidance-mode must be probability or score, got {guidance_mode!r}")
    if decode is not None and decode not in ("argmax", "sample"):
        fail(f"--decode must be argmax or sample, got {decode!r}")
    if method not in ("heun", "euler"):
        fail(f"--method must be heun or euler, got {method!r}")
    clf = None
    if classifier is not None:
        try:
            clf = load_module(classifier)
        except load_errors() as e:
            fail(f"cannot load classifier {classifier}: {e}")
        if clf.config.get("num_labels") != flow.num_classes:
            fail(f"classifier {classifier} has {clf.config.get('num_labels')} classes, the model {flow.num_classes}")
    try:
        g = Guidance(scale=guidance, mode=guidance_mode, classifier=clf)
        torch.manual_seed(seed)
        ids = sample(flow, n, cls=class_id, steps=steps, guidance=g, decode=decode, batch_size=batch_size, method=method,
                     generator=torch.Generator().manual_seed(seed))
    except ValueError as e:
        fail(str(e))
    alphabet = flow.alphabet
    tag = f" class={flow.class_names[class_id]}" if class_id is not None else ""
    lines = []
    for i, row in enumerate(ids.tolist()):
        lines.append(f">design_{i + 1}{tag}\n{''.join(alphabet[j] for j in row)}\n")
    with atomic_file(output) as tmp, open(tmp, "w") as fh:
        fh.writelines(lines)
    typer.echo(f"wrote {n} designs to {output}", err=True)
