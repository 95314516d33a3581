"""Checking a checkpoint folder before anything is built from it.

A checkpoint (``config.json`` + ``model.safetensors``, see :mod:`bioseq.models.heads`) may come from
anywhere: a download, a colleague, a disk that filled up mid-write. Loading it must either give the
model that was saved or fail with one message naming the file and the key, never allocate
terabytes, hang, or read files outside the folder. :func:`read_checkpoint_config` checks
``config.json`` (keys, types, sizes, the parameter count of the model it describes, counted on
PyTorch's ``meta`` device where nothing is allocated); :func:`check_safetensors` checks that
``model.safetensors`` is complete before it is read.
"""

from __future__ import annotations

import inspect
import json
import os
import struct
from pathlib import Path
from typing import Any

from bioseq.io.errors import UserError
from bioseq.models.config import ConfigError, check_value, load_config
from bioseq.utils.jsonfile import read_json_object

#: keys of a checkpoint's config.json
TOP_LEVEL_KEYS = {"format", "format_version", "model_type", "backbone", "head"}
#: largest model a checkpoint may describe (parameters); raise it with BIOSEQ_MAX_PARAMETERS
DEFAULT_MAX_PARAMETERS = 20_000_000_000


class CheckpointError(UserError):
    """A checkpoint folder that cannot be loaded (the message names the file and the problem)."""


def max_parameters() -> int:
    return int(float(os.environ.get("BIOSEQ_MAX_PARAMETERS", DEFAULT_MAX_PARAMETERS)))


def resolve_in_folder(directory: Path, name: str, what: str) -> Path:
    """``directory / name`` if that stays inside ``directory`` (no absolute paths, no ``..``, no
    link leading out), else :class:`CheckpointError`. Never resolved against the working directory."""
    rel = Path(name)
    if rel.is_absolute() or ".." in rel.parts or not rel.parts:
        raise CheckpointError(f"{directory / 'config.json'}: {what} {name!r} must name a file inside the "
                              "checkpoint folder (no absolute path, no '..')")
    root = directory.resolve()
    target = (root / rel).resolve()
    if not target.is_relative_to(root):
        raise CheckpointError(f"{directory / 'config.json'}: {what} {name!r} leads outside the checkpoint folder")
    if not target.is_file():
        raise CheckpointError(f"{directory / 'config.json'}: {what} {name!r}: no such file in {directory}")
    return target


def backbone_dict(directory: Path, spec: Any) -> dict[str, Any]:
    """The backbone config of a checkpoint: inline (a dict), a registered size name, or a JSON file
    inside the checkpoint folder."""
    from bioseq.models.config import list_sizes

    where = directory / "config.json"
    if isinstance(spec, dict):
        return spec
    if not isinstance(spec, str):
        raise CheckpointError(f"{where}: 'backbone' must be an object or a string, got {type(spec).__name__}")
    if spec in list_sizes():
        return load_config(spec).to_dict()
    d = read_json_object(resolve_in_folder(directory, spec, "backbone"), CheckpointError)
    d = d.get("backbone", d)
    if not isinstance(d, dict):
        raise CheckpointError(f"{directory / spec}: 'backbone' must be a JSON object")
    return d


def check_head_config(where: Path, target: type, head: dict[str, Any]) -> None:
    """Every key of ``head`` is a parameter of ``target.__init__``, of the annotated type."""
    params = dict(inspect.signature(target.__init__).parameters)
    params.pop("self", None)
    params.pop("backbone", None)
    if any(p.kind == p.VAR_KEYWORD for p in params.values()):
        return  # a head that takes anything: its constructor validates
    hints = _hints(target.__init__)
    for k, v in head.items():
        if k not in params:
            raise CheckpointError(f"{where}: head: unknown key {k!r} for {target.__name__} "
                                  f"(known: {', '.join(sorted(params))})")
        problem = check_value(v, hints.get(k))
        if problem:
            raise CheckpointError(f"{where}: head.{k} {problem}")


def _hints(fn: Any) -> dict[str, Any]:
    import typing

    try:
        return typing.get_type_hints(fn)
    except Exception:  # annotations we cannot resolve are simply not checked
        return {}


def count_parameters_on_meta(build: Any) -> int:
    """Parameters of the module ``build()`` returns, built on the meta device (no memory)."""
    import torch

    with torch.device("meta"):
        module = build()
    seen, n = set(), 0
    for p in module.parameters():
        if id(p) not in seen:
            seen.add(id(p))
            n += p.numel()
    return n


def read_checkpoint_config(directory: str | os.PathLike, format_version: int) -> dict[str, Any]:
    """``config.json`` of a checkpoint folder, checked: JSON, format, version, top-level keys,
    ``model_type``, ``head``; ``backbone`` resolved to a dict (see :func:`backbone_dict`) and
    validated as a backbone config (types and size limits).

    Raises:
        FileNotFoundError: no ``config.json``.
        CheckpointError: anything else, naming the file and the key.
    """
    directory = Path(directory)
    path = directory / "config.json"
    if not path.is_file():
        raise FileNotFoundError(f"{directory}: no config.json (not a bioseq checkpoint)")
    cfg = read_json_object(path, CheckpointError)
    if cfg.get("format") != "bioseq-model":
        raise CheckpointError(f"{path}: not a bioseq model config (format={cfg.get('format')!r})")
    version = cfg.get("format_version", 0)
    if not isinstance(version, int) or isinstance(version, bool):
        raise CheckpointError(f"{path}: format_version must be an int, got {version!r}")
    if version > format_version:
        raise CheckpointError(f"{path}: format_version {version} is newer than this bioseq supports ({format_version})")
    unknown = set(cfg) - TOP_LEVEL_KEYS
    if unknown:
        raise CheckpointError(f"{path}: unknown keys {sorted(unknown)} (known: {sorted(TOP_LEVEL_KEYS)})")
    for key, kind in (("model_type", str), ("backbone", (dict, str)), ("head", dict)):
        if key == "head" and key not in cfg:
            continue
        if key not in cfg:
            raise CheckpointError(f"{path}: lacks the key {key!r}")
        if not isinstance(cfg[key], kind):
            raise CheckpointError(f"{path}: {key!r} has the wrong type ({type(cfg[key]).__name__})")
    cfg = dict(cfg)
    cfg["backbone"] = backbone_dict(directory, cfg["backbone"])
    try:
        load_config(dict(cfg["backbone"]))  # types, ranges and size limits of every field
    except ConfigError as e:
        raise CheckpointError(f"{path}: backbone: {e}") from None
    return cfg


def check_model_size(path: Path, build: Any) -> None:
    """Refuse a config whose model would exceed :func:`max_parameters` (counted on meta)."""
    try:
        n = count_parameters_on_meta(build)
    except (ConfigError, ValueError, TypeError, RuntimeError) as e:
        raise CheckpointError(f"{path}: cannot build the model it describes ({e})") from None
    if n > max_parameters():
        raise CheckpointError(f"{path}: describes a model of {n:,} parameters, above the limit of "
                              f"{max_parameters():,} (set BIOSEQ_MAX_PARAMETERS to allow it)")


def check_safetensors(path: Path) -> None:
    """``model.safetensors`` exists and is complete: its header parses and the file is exactly as
    long as the tensors the header lists (a cut copy or a full disk fails here, with the sizes)."""
    if not path.is_file():
        raise CheckpointError(f"{path}: missing (the checkpoint has no weights)")
    size = path.stat().st_size
    with open(path, "rb") as fh:
        head = fh.read(8)
        if len(head) < 8:
            raise CheckpointError(f"{path}: truncated ({size} bytes; not a safetensors file)")
        (n,) = struct.unpack("<Q", head)
        if n > size - 8 or n > 100 << 20:
            raise CheckpointError(f"{path}: truncated or not a safetensors file (header of {n:,} bytes in a "
                                  f"{size:,}-byte file)")
        try:
            header = json.loads(fh.read(n))
        except (ValueError, UnicodeDecodeError) as e:
            raise CheckpointError(f"{path}: corrupted safetensors header ({e})") from None
    if not isinstance(header, dict):
        raise CheckpointError(f"{path}: corrupted safetensors header")
    try:
        end = max((int(t["data_offsets"][1]) for k, t in header.items() if k != "__metadata__"), default=0)
    except (KeyError, TypeError, ValueError, IndexError):
        raise CheckpointError(f"{path}: corrupted safetensors header (bad data_offsets)") from None
    if size != 8 + n + end:
        raise CheckpointError(f"{path}: {size:,} bytes, its header lists {8 + n + end:,} "
                              f"({'truncated' if size < 8 + n + end else 'trailing bytes'}); re-save or re-download it")
