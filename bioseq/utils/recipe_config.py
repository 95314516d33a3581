"""YAML recipe configs with ``key=value`` command-line overrides.

Every recipe reads its settings the same way::

    cfg = load_recipe_config("recipes/configs/hyena/tiny_clm.yaml", ["train.lr=1e-3", "model.size=hyena-small"])
    cfg["train"]["lr"]   # 0.001

Override values are parsed as YAML (``1e-3`` -> float, ``[a, b]`` -> list, ``null`` -> None);
dotted keys walk nested mappings. A key that is not in the file is an error unless it is given
with a leading ``+`` (``+train.new_key=1``), so typos never pass silently. A config may name
``defaults: other.yaml`` (relative to itself) to start from another file.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml


class RecipeConfigError(ValueError):
    """A bad recipe config file or override."""


def _merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for k, v in top.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def _number(value: Any) -> Any:
    # YAML 1.1 reads "1e-3" (no dot) as a string; people write learning rates that way.
    if isinstance(value, str):
        try:
            return float(value) if any(c in value for c in ".eE") else value
        except ValueError:
            return value
    if isinstance(value, dict):
        return {k: _number(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_number(v) for v in value]
    return value


def _read(path: Path, seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    if not path.exists():
        raise RecipeConfigError(f"config file {path} does not exist")
    if path.resolve() in seen:
        raise RecipeConfigError(f"{path}: circular 'defaults'")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise RecipeConfigError(f"{path}: invalid YAML: {e}") from None
    if not isinstance(data, dict):
        raise RecipeConfigError(f"{path}: top level must be a mapping, got {type(data).__name__}")
    data = _number(data)
    parent = data.pop("defaults", None)
    if parent:
        data = _merge(_read(path.parent / parent, seen + (path.resolve(),)), data)
    return data


def apply_override(cfg: dict[str, Any], override: str) -> None:
    """Apply one ``a.b.c=value`` (or ``+a.b.c=value`` to add a new key) in place."""
    if "=" not in override:
        raise RecipeConfigError(f"override {override!r} is not of the form key=value")
    key, raw = override.split("=", 1)
    add = key.startswith("+")
    parts = key.lstrip("+").split(".")
    try:
        value = yaml.safe_load(raw) if raw != "" else ""
    except yaml.YAMLError as e:
        raise RecipeConfigError(f"override {override!r}: value is not valid YAML: {e}") from None
    value = _number(value)
    node = cfg
    for i, p in enumerate(parts[:-1]):
        if p not in node:
            if not add:
                raise RecipeConfigError(f"override {override!r}: no key {'.'.join(parts[: i + 1])!r} in the config")
            node[p] = {}
        node = node[p]
        if not isinstance(node, dict):
            raise RecipeConfigError(f"override {override!r}: {'.'.join(parts[: i + 1])!r} is not a mapping")
    if parts[-1] not in node and not add:
        raise RecipeConfigError(f"override {override!r}: no key {key!r} in the config (use +{key}=... to add one)")
    node[parts[-1]] = value


def load_recipe_config(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> dict[str, Any]:
    """Read ``path`` (following ``defaults``) and apply ``overrides`` in order."""
    cfg = _read(Path(path))
    for o in overrides:
        apply_override(cfg, o)
    return cfg


def eval_sets(cfg: dict[str, Any]) -> dict[str, dict[str, list[str]]]:
    """A pretraining config's held-out evaluation sets: ``{metrics split: holdout kwargs}``.

    The kwargs (``holdout_genomes``, ``holdout_contigs``) select one set as ``split="valid"`` of
    a :class:`bioseq.data.GenomeWindowDataset`. Without ``eval.sets`` there is one set, ``valid``:
    every held-out genome and contig of ``data``. ``eval.sets: {strain: [MGH78578], species:
    [saureus]}`` scores each named group of held-out genomes on its own (splits ``valid:strain``,
    ``valid:species``); every genome named there must be in ``data.holdout_genomes``, so training
    never reads it.
    """
    d = cfg["data"]
    split_kw = {"holdout_genomes": list(d.get("holdout_genomes") or []), "holdout_contigs": list(d.get("holdout_contigs") or [])}
    sets = (cfg.get("eval") or {}).get("sets")
    if not sets:
        return {"valid": split_kw}
    held = set(split_kw["holdout_genomes"])
    out = {}
    for name, genomes in sets.items():
        genomes = [genomes] if isinstance(genomes, str) else list(genomes or [])
        if not genomes or not set(genomes) <= held:
            raise RecipeConfigError(f"eval.sets.{name}: {genomes} must be a non-empty subset of "
                                    f"data.holdout_genomes {sorted(held)}")
        out[f"valid:{name}"] = {"holdout_genomes": genomes, "holdout_contigs": []}
    return out
