"""Pretrained checkpoints shipped inside the package, loadable by name.

Each lives in ``bioseq/assets/models/<name>/``: ``config.json`` + ``model.safetensors`` (what
:func:`bioseq.models.load_pretrained` reads), ``tokenizer.json``, a model card ``README.md`` and
``card.json``, the card's machine-readable part (task, data, tokens, held-out scores, and the
SHA-256 of the weights, checked before the weights are first loaded)::

    from bioseq.models import load_pretrained, list_checkpoints
    [c.name for c in list_checkpoints()]          # what ships
    model = load_pretrained("dna-clm-bacteria-tiny")

``bioseq models list`` prints the same registry. :func:`ship` writes a new entry from a training
run's exported ``final/`` folder (``scripts/ship_checkpoint.py``).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

# one error type for every checkpoint problem: unknown name, damaged install, bad config
from bioseq.models.validation import CheckpointError
from bioseq.utils.checksum import file_sha256

ASSETS = Path(__file__).resolve().parents[1] / "assets" / "models"
CARD_VERSION = 1
_VERIFIED: set[Path] = set()


@dataclass(frozen=True)
class CheckpointInfo:
    """One shipped checkpoint, as recorded in its ``card.json``.

    Attributes:
        name: registry name (the folder name).
        task: ``clm`` (causal LM), ``mlm`` (masked LM), ...
        size: named size it was built from, with overrides (e.g. ``transformer-tiny (n_layer=4)``).
        params: number of parameters.
        tokenizer: tokenizer name (``dna-char``, ``protein-esm``).
        data: training data in words, with licences.
        tokens: training tokens seen.
        steps: optimizer steps.
        hardware: where and how long it trained.
        heldout: held-out scores, e.g. ``{"strain bits/base": 1.86, "strain best Markov": 1.785}``.
        sha256: SHA-256 of ``model.safetensors``.
        path: the folder.
    """

    name: str
    task: str
    size: str
    params: int
    tokenizer: str
    data: str
    tokens: int
    steps: int
    hardware: str
    heldout: dict[str, float] = field(default_factory=dict)
    sha256: str = ""
    path: Path = Path()

    @classmethod
    def read(cls, folder: Path) -> CheckpointInfo:
        card = folder / "card.json"
        try:
            d = json.loads(card.read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise CheckpointError(f"{card}: unreadable model card ({e})") from None
        known = {f for f in cls.__dataclass_fields__ if f != "path"}
        missing = known - d.keys() - {"heldout", "sha256"}
        if missing:
            raise CheckpointError(f"{card}: missing {sorted(missing)}")
        return cls(**{k: v for k, v in d.items() if k in known}, path=folder)


def list_checkpoints(root: Path | None = None) -> list[CheckpointInfo]:
    """Every shipped checkpoint (folders of ``root``, default the package's, with a ``card.json``)."""
    root = Path(root or ASSETS)
    if not root.is_dir():
        return []
    return [CheckpointInfo.read(p) for p in sorted(root.iterdir()) if (p / "card.json").is_file()]


def get_checkpoint(name: str, root: Path | None = None) -> CheckpointInfo:
    """The shipped checkpoint called ``name``.

    Raises:
        CheckpointError: no such name (the message lists what ships).
    """
    folder = Path(root or ASSETS) / name
    if "/" in name or os.sep in name or name.startswith(".") or not (folder / "card.json").is_file():
        names = ", ".join(c.name for c in list_checkpoints(root)) or "none"
        raise CheckpointError(f"{name!r} is neither a checkpoint folder nor a shipped checkpoint (shipped: {names})")
    return CheckpointInfo.read(folder)


def verify(info: CheckpointInfo) -> None:
    """Check the weights against the card's SHA-256.

    Raises:
        CheckpointError: missing file or checksum mismatch (a damaged install).
    """
    weights = info.path / "model.safetensors"
    if not weights.is_file():
        raise CheckpointError(f"{weights}: missing (damaged install of {info.name!r})")
    if info.sha256 and file_sha256(weights) != info.sha256:
        raise CheckpointError(f"{weights}: SHA-256 differs from {info.path / 'card.json'} (damaged install of {info.name!r})")


def resolve(name_or_dir: str | os.PathLike) -> Path:
    """A checkpoint folder for a path or a shipped name. An existing folder wins over a name;
    a shipped checkpoint's weights are verified once per process before first use."""
    p = Path(name_or_dir)
    if p.is_dir() or not isinstance(name_or_dir, str) or p.name != str(name_or_dir):
        return p
    info = get_checkpoint(str(name_or_dir))
    if info.path not in _VERIFIED:
        verify(info)
        _VERIFIED.add(info.path)
    return info.path


def ship(run_final: Path, name: str, card: dict[str, Any], readme: str, root: Path | None = None) -> CheckpointInfo:
    """Copy an exported checkpoint (``config.json``, ``model.safetensors``, ``tokenizer.json``)
    into the registry as ``name`` with its model card. Written to a temporary folder and renamed;
    an existing entry is replaced only if it is a shipped checkpoint (has a ``card.json``)."""
    root = Path(root or ASSETS)
    root.mkdir(parents=True, exist_ok=True)
    dest = root / name
    if dest.exists() and not (dest / "card.json").is_file():
        raise CheckpointError(f"{dest}: exists and is not a shipped checkpoint; refusing to replace it")
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=root))
    try:
        for f in ("config.json", "model.safetensors", "tokenizer.json"):
            shutil.copy2(run_final / f, tmp / f)
        info = CheckpointInfo(name=name, sha256=file_sha256(tmp / "model.safetensors"), path=dest,
                              **{k: v for k, v in card.items() if k in CheckpointInfo.__dataclass_fields__
                                 and k not in ("name", "sha256", "path")})
        body = {k: v for k, v in asdict(info).items() if k != "path"}
        (tmp / "card.json").write_text(json.dumps({"card_version": CARD_VERSION, **body}, indent=2) + "\n")
        (tmp / "README.md").write_text(readme)
        # mkdtemp makes a private folder; a shipped checkpoint is read by everyone
        tmp.chmod(0o755)
        for f in tmp.iterdir():
            f.chmod(0o644)
        if dest.exists():
            old = dest.with_name(f".{name}.old")
            dest.rename(old)
            tmp.rename(dest)
            shutil.rmtree(old)
        else:
            tmp.rename(dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return CheckpointInfo.read(dest)
