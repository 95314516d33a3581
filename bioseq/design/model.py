"""A design model = a probability path + a denoiser + what the sequences mean; saved as
``config.json`` + ``model.safetensors``::

    model = FlowModel(DirichletPath(K=4), DilatedCNN(K=4, num_classes=3), seq_len=60,
                      alphabet="ACGT", class_names=["EI", "IE", "N"])
    model.save_pretrained("runs/dfm")
    model = FlowModel.from_pretrained("runs/dfm")

``kind`` is ``"flow"`` (integrate the path's ODE) or ``"distilled"`` (a one-step student: Dir(1)
noise at time 0 straight to the final logits). A :class:`NoisyClassifier` for classifier guidance
is saved the same way with :func:`save_module` / :func:`load_module`.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from safetensors.torch import load_model, save_model
from torch import nn

from bioseq.design.denoisers import Denoiser, build_denoiser
from bioseq.design.paths import DirichletPath, LinearPath, build_path
from bioseq.models.validation import check_safetensors

FORMAT = "bioseq-design"
FORMAT_VERSION = 1


def _write_atomic(directory: Path, name: str, write) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", dir=directory)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, directory / name)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def save_module(module: nn.Module, directory: str | os.PathLike, config: dict[str, Any]) -> Path:
    """Write ``config.json`` (``config`` plus format tags) and ``model.safetensors`` atomically."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    cfg = {"format": FORMAT, "format_version": FORMAT_VERSION, **config}
    _write_atomic(directory, "config.json", lambda p: Path(p).write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n"))
    _write_atomic(directory, "model.safetensors", lambda p: save_model(module, p, metadata={"format": "pt"}))
    return directory


def read_config(directory: str | os.PathLike) -> dict[str, Any]:
    """The checked ``config.json`` of a saved design model or classifier."""
    path = Path(directory) / "config.json"
    if not path.exists():
        raise FileNotFoundError(f"{directory}: no config.json (not a bioseq design model)")
    try:
        cfg = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON ({e})") from None
    if cfg.get("format") != FORMAT:
        raise ValueError(f"{path}: not a bioseq design model (format={cfg.get('format')!r})")
    if cfg.get("format_version", 0) > FORMAT_VERSION:
        raise ValueError(f"{path}: format_version {cfg['format_version']} is newer than supported ({FORMAT_VERSION})")
    return cfg


def load_module(directory: str | os.PathLike, map_location: str = "cpu") -> Denoiser:
    """Load a bare denoiser or classifier saved with :func:`save_module`."""
    cfg = read_config(directory)
    module = build_denoiser(cfg["denoiser"])
    check_safetensors(Path(directory) / "model.safetensors")  # a cut file: a clear error, not SafetensorError
    load_model(module, str(Path(directory) / "model.safetensors"), device=map_location)
    return module.eval()


class FlowModel(nn.Module):
    """Path + denoiser + sequence metadata.

    Args:
        path: :class:`DirichletPath` or :class:`LinearPath`.
        denoiser: a :class:`Denoiser` with ``K == path.K``.
        seq_len: length of designed sequences.
        alphabet: one character per simplex vertex (``"ACGT"`` for DNA).
        class_names: names of the conditioning classes (empty: unconditional).
        kind: ``"flow"`` or ``"distilled"``.
        decode: the sampler's default decoding, ``"argmax"`` or ``"sample"`` (see
            :func:`bioseq.design.default_schedule`); the path's ``t_max`` is where sampling ends.
        evidence: add the path's exact per-letter log-likelihood of ``x_t``
            (:meth:`DirichletPath.log_evidence`, ``t log x``) to the denoiser's logits, so the
            network learns only what the rest of the sequence says about each position (Dirichlet
            path only). Measured in ``benchmarks/results/dfm/toy.md``.
    """

    def __init__(
        self,
        path: DirichletPath | LinearPath,
        denoiser: Denoiser,
        seq_len: int,
        alphabet: str = "ACGT",
        class_names: list[str] | None = None,
        kind: str = "flow",
        decode: str = "argmax",
        evidence: bool = False,
    ) -> None:
        super().__init__()
        class_names = list(class_names or [])
        if denoiser.K != path.K or len(alphabet) != path.K:
            raise ValueError(f"FlowModel: path K={path.K}, denoiser K={denoiser.K} and alphabet {alphabet!r} disagree")
        if len(class_names) != denoiser.num_classes:
            raise ValueError(f"FlowModel: {len(class_names)} class names for a denoiser with {denoiser.num_classes} classes")
        if kind not in ("flow", "distilled"):
            raise ValueError(f"FlowModel: kind must be 'flow' or 'distilled', got {kind!r}")
        if decode not in ("argmax", "sample"):
            raise ValueError(f"FlowModel: decode must be 'argmax' or 'sample', got {decode!r}")
        if evidence and not hasattr(path, "log_evidence"):
            raise ValueError(f"FlowModel: evidence=True needs a path with a closed-form likelihood (dirichlet), not {path.kind!r}")
        self.path, self.denoiser = path, denoiser
        self.evidence = bool(evidence)
        self.seq_len, self.alphabet, self.class_names = seq_len, alphabet, class_names
        self.kind, self.decode = kind, decode

    @property
    def K(self) -> int:
        return self.path.K

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def forward(self, x: torch.Tensor, t: torch.Tensor, cls: torch.Tensor | None = None) -> torch.Tensor:
        """Logits of ``p(x1 | x_t = x, t, cls)``: ``x (B, L, K)``, ``t (B,)`` path times."""
        logits = self.denoiser(x, self.path.time_feature(t.to(torch.float64)).float(), cls)
        if self.evidence:
            logits = logits + self.path.log_evidence(x.float(), t.float())
        return logits

    def class_id(self, name_or_index: str | int) -> int:
        """Resolve a class by name (case-insensitive) or index, with a clear error."""
        if isinstance(name_or_index, int) or str(name_or_index).isdigit():
            i = int(name_or_index)
            if not 0 <= i < self.num_classes:
                raise ValueError(f"class index {i} out of range; classes: {self.class_names}")
            return i
        lower = [c.lower() for c in self.class_names]
        if str(name_or_index).lower() not in lower:
            raise ValueError(f"unknown class {name_or_index!r}; classes: {self.class_names or 'none (unconditional model)'}")
        return lower.index(str(name_or_index).lower())

    def loss(self, x1: torch.Tensor, cls: torch.Tensor | None = None, cfg_dropout: float = 0.0) -> torch.Tensor:
        """Flow matching loss: cross-entropy of the denoiser at ``x_t ~ p_t(. | x1)``, ``t`` from
        the path's training distribution; classes replaced by the null class w.p. ``cfg_dropout``."""
        B = x1.shape[0]
        t = self.path.sample_time(B, device=x1.device)
        xt = self.path.sample_xt(x1, t)
        if cls is not None and cfg_dropout > 0:
            drop = torch.rand(B, device=x1.device) < cfg_dropout
            cls = cls.masked_fill(drop, self.num_classes)
        logits = self(xt, t, cls)  # (B, L, K)
        return F.cross_entropy(logits.reshape(-1, self.K).float(), x1.reshape(-1))

    # -- persistence ---------------------------------------------------------------------------
    def config_dict(self) -> dict[str, Any]:
        return {
            "model_type": "flow_model",
            "kind": self.kind,
            "path": self.path.to_dict(),
            "denoiser": self.denoiser.config,
            "seq_len": self.seq_len,
            "alphabet": self.alphabet,
            "class_names": self.class_names,
            "decode": self.decode,
            "evidence": self.evidence,
        }

    def save_pretrained(self, directory: str | os.PathLike) -> Path:
        return save_module(self, directory, self.config_dict())

    @classmethod
    def from_config(cls, cfg: dict[str, Any]) -> FlowModel:
        return cls(
            build_path(cfg["path"]), build_denoiser(cfg["denoiser"]), seq_len=int(cfg["seq_len"]),
            alphabet=cfg["alphabet"], class_names=cfg.get("class_names", []), kind=cfg.get("kind", "flow"),
            decode=cfg.get("decode", "argmax"), evidence=bool(cfg.get("evidence", False)),
        )

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike, map_location: str = "cpu") -> FlowModel:
        cfg = read_config(directory)
        if cfg.get("model_type") != "flow_model":
            raise ValueError(f"{directory}: model_type {cfg.get('model_type')!r} is not a flow model")
        try:
            model = cls.from_config(cfg)
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"{directory}/config.json: invalid design model config ({e})") from None
        check_safetensors(Path(directory) / "model.safetensors")
        load_model(model, str(Path(directory) / "model.safetensors"), device=map_location)
        return model.eval()
