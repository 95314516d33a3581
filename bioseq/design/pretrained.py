"""Design models shipped inside the package (``bioseq/assets/dfm/<name>/``), usable with no training.

Each is a :class:`~bioseq.design.FlowModel` folder (``config.json`` + ``model.safetensors``) with a
model card ``README.md`` (data, training, measured quality). ``bioseq design --model NAME`` takes a
shipped name wherever it takes a folder; ``bioseq design --list-models`` lists them.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

ASSETS = Path(__file__).resolve().parents[1] / "assets" / "dfm"


def shipped_models() -> dict[str, str]:
    """``{name: one-line description}`` of the models shipped with the package."""
    out = {}
    if ASSETS.is_dir():
        for d in sorted(ASSETS.iterdir()):
            cfg = d / "config.json"
            if cfg.is_file() and (d / "model.safetensors").is_file():
                out[d.name] = json.loads(cfg.read_text()).get("description", "")
    return out


def resolve_model(name_or_path: str | os.PathLike) -> Path:
    """A model folder: ``name_or_path`` itself if it is a directory, else the shipped model of that
    name. Raises ``FileNotFoundError`` naming the shipped models otherwise."""
    p = Path(name_or_path)
    if p.is_dir():
        return p
    shipped = shipped_models()
    if str(name_or_path) in shipped:
        return ASSETS / str(name_or_path)
    raise FileNotFoundError(f"{name_or_path}: neither a model folder nor a shipped model ({', '.join(shipped) or 'none shipped'})")
