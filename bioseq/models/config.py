"""Typed, self-validating, JSON round-tripping configs and the registry of backbones and sizes.

Every backbone file defines ``@register_backbone("name") class XConfig(BackboneConfig)`` and its
``nn.Module``; named sizes (``hyena-tiny``, ``mamba-small`` ...) are registered with
:func:`register_size`. Configs load by name, by JSON file or from a checkpoint folder::

    cfg = load_config("mamba-tiny")
    cfg = load_config("my_config.json")
    cfg = load_config("runs/ckpt/")   # reads config.json
"""

from __future__ import annotations

import dataclasses
import json
import math
import numbers
import types
import typing
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar, Union

from bioseq.io.errors import UserError

#: arch name -> (config class, module class)
_BACKBONES: dict[str, tuple[type[BackboneConfig], type]] = {}
#: size name -> (arch, overrides)
_SIZES: dict[str, tuple[str, dict[str, Any]]] = {}


class ConfigError(UserError):
    """An invalid model configuration."""


#: Per-dimension limits: a config beyond them is a typo or a damaged file, not a model anyone
#: trains here (``vocab_size: 1e12`` would otherwise try to allocate an embedding of terabytes).
MAX_VOCAB_SIZE = 1 << 24
MAX_D_MODEL = 1 << 16
MAX_LAYERS = 1 << 10
MAX_INT_FIELD = 1 << 24  # any other int field (heads, state sizes, lengths)


def check_value(value: Any, annotation: Any) -> str | None:
    """Why ``value`` does not fit the type ``annotation`` (None if it fits, or if the annotation is
    one this checker does not know). Ints exclude bools; floats accept ints but not inf/NaN."""
    if annotation is None or annotation is Any:
        return None
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (Union, types.UnionType):
        problems = [check_value(value, a) for a in args]
        if any(p is None for p in problems):
            return None
        arms = [a for a in args if a is not type(None)]
        if len(arms) == 1:  # Optional[X] given something that is not null: say what is wrong as an X
            return problems[args.index(arms[0])]
        return f"must be {_type_name(annotation)}, got {value!r}"
    if annotation is type(None):
        return None if value is None else f"must be null, got {value!r}"
    if annotation is bool:
        return None if isinstance(value, bool) else f"must be true or false, got {value!r}"
    if annotation is int:
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            return f"must be an int, got {value!r}"
        return None if abs(int(value)) <= MAX_INT_FIELD else f"= {value} is beyond the limit {MAX_INT_FIELD}"
    if annotation is float:
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
            return f"must be a finite number, got {value!r}"
        return None
    if annotation is str:
        return None if isinstance(value, str) else f"must be a string, got {value!r}"
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            return f"must be a list, got {value!r}"
        inner = args[0] if args else None
        for i, x in enumerate(value):
            if (p := check_value(x, inner)) is not None:
                return f"[{i}] {p}"
        return None
    if origin is dict or annotation is dict:
        if not isinstance(value, dict):
            return f"must be an object, got {value!r}"
        if len(args) == 2:
            for k, x in value.items():
                if (p := check_value(x, args[1])) is not None:
                    return f"[{k!r}] {p}"
        return None
    return None


def _type_name(annotation: Any) -> str:
    return " or ".join("null" if a is type(None) else getattr(a, "__name__", str(a)) for a in typing.get_args(annotation))


@dataclass
class BackboneConfig:
    """Fields every backbone shares. Subclasses add their own and extend :meth:`validate`.

    Attributes:
        vocab_size: number of token ids the embedding accepts (padded up to a multiple of 8).
        d_model: width of the hidden states ``(B, L, d_model)``.
        n_layer: number of residual blocks.
        pad_token_id: id of padding; masked out of losses and pooling.
        complement_map: token id -> id of its reverse-complement token (nucleotide vocabularies);
            required by reverse-complement-equivariant options.
        bidirectional: True if the backbone sees the whole sequence (masked LM); False = causal.
    """

    arch: ClassVar[str] = ""
    vocab_size: int = 16
    d_model: int = 128
    n_layer: int = 2
    pad_token_id: int = 4
    complement_map: list[int] | None = None
    bidirectional: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.check_types()
        self.validate()

    def check_types(self) -> None:
        """Raise :class:`ConfigError` naming the first field whose value has the wrong type (a JSON
        config can hold anything: ``"d_model": "128"``, ``"vocab_size": 1e12``)."""
        hints = typing.get_type_hints(type(self))
        for f in fields(self):
            problem = check_value(getattr(self, f.name), hints.get(f.name))
            if problem is not None:
                raise ConfigError(f"{self.arch}: {f.name} {problem}")

    def validate(self) -> None:
        """Raise :class:`ConfigError` on an inconsistent config. Subclasses call super()."""
        for name, limit in (("vocab_size", MAX_VOCAB_SIZE), ("d_model", MAX_D_MODEL), ("n_layer", MAX_LAYERS)):
            if getattr(self, name) > limit:
                raise ConfigError(f"{self.arch}: {name} = {getattr(self, name)} is beyond the limit {limit}")
        if self.vocab_size < 1:
            raise ConfigError(f"{self.arch}: vocab_size must be >= 1, got {self.vocab_size}")
        if self.d_model < 1 or self.n_layer < 0:
            raise ConfigError(f"{self.arch}: d_model and n_layer must be positive")
        if not 0 <= self.pad_token_id < self.vocab_size:
            raise ConfigError(f"{self.arch}: pad_token_id {self.pad_token_id} outside vocab")
        if self.complement_map is not None:
            cm = list(self.complement_map)
            if len(cm) != self.vocab_size or sorted(cm) != list(range(self.vocab_size)):
                raise ConfigError(
                    f"{self.arch}: complement_map must be a permutation of range(vocab_size)"
                )
            if any(cm[cm[i]] != i for i in range(len(cm))):
                raise ConfigError(f"{self.arch}: complement_map must be an involution")

    @property
    def padded_vocab_size(self) -> int:
        return (self.vocab_size + 7) // 8 * 8

    # -- serialisation -------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {"arch": self.arch, **dataclasses.asdict(self)}

    def to_json(self, path: str | Path | None = None) -> str:
        text = json.dumps(self.to_dict(), indent=2, sort_keys=True)
        if path is not None:
            Path(path).write_text(text + "\n")
        return text

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> BackboneConfig:
        d = dict(d)
        arch = d.pop("arch", cls.arch)
        target = cls if cls.arch == arch else config_class(arch)
        known = {f.name for f in fields(target)}
        unknown = set(d) - known
        if unknown:
            raise ConfigError(f"{arch}: unknown config keys {sorted(unknown)}")
        return target(**d)

    def replace(self, **kw: Any) -> BackboneConfig:
        return dataclasses.replace(self, **kw)


def register_backbone(arch: str):
    """Class decorator pairing a config class with its backbone module class.

    Usage::

        @register_backbone("mamba")
        class MambaConfig(BackboneConfig): ...
        MambaConfig.module = MambaBackbone   # or pass via set_module
    """

    def deco(cfg_cls: type[BackboneConfig]) -> type[BackboneConfig]:
        cfg_cls.arch = arch
        _BACKBONES[arch] = (cfg_cls, None)  # module filled by register_module
        return cfg_cls

    return deco


def register_module(arch: str, module_cls: type) -> None:
    cfg_cls, _ = _BACKBONES[arch]
    _BACKBONES[arch] = (cfg_cls, module_cls)


def register_size(name: str, arch: str, **overrides: Any) -> None:
    """Register a named size, e.g. ``register_size("mamba-tiny", "mamba", d_model=128, n_layer=2)``."""
    _SIZES[name] = (arch, overrides)


def _ensure_loaded() -> None:
    # Importing the package registers every backbone; done lazily to keep `import bioseq` light.
    import bioseq.models  # noqa: F401


def config_class(arch: str) -> type[BackboneConfig]:
    _ensure_loaded()
    if arch not in _BACKBONES:
        raise ConfigError(f"unknown backbone {arch!r}; known: {sorted(_BACKBONES)}")
    return _BACKBONES[arch][0]


def module_class(arch: str) -> type:
    _ensure_loaded()
    if arch not in _BACKBONES or _BACKBONES[arch][1] is None:
        raise ConfigError(f"unknown backbone {arch!r}; known: {sorted(_BACKBONES)}")
    return _BACKBONES[arch][1]


def list_backbones() -> list[str]:
    _ensure_loaded()
    return sorted(_BACKBONES)


def list_sizes() -> list[str]:
    _ensure_loaded()
    return sorted(_SIZES)


def load_config(spec: str | Path | dict[str, Any], **overrides: Any) -> BackboneConfig:
    """A config from a size name, a JSON file, a checkpoint folder or a dict, with overrides."""
    _ensure_loaded()
    if isinstance(spec, dict):
        d = dict(spec)
    elif isinstance(spec, str) and spec in _SIZES:
        arch, kw = _SIZES[spec]
        d = {"arch": arch, **kw}
    else:
        p = Path(spec)
        if p.is_dir():
            p = p / "config.json"
        if not p.exists():
            raise ConfigError(
                f"{spec!r} is neither a named size ({', '.join(sorted(_SIZES))}) nor a config file"
            )
        from bioseq.utils.jsonfile import read_json_object

        d = read_json_object(p, ConfigError)
        if "backbone" in d:  # a full model config.json nests the backbone config
            from bioseq.models.validation import backbone_dict  # never resolved outside its folder

            d = dict(backbone_dict(p.parent, d["backbone"]))
        try:
            return _from_dict(spec, {**d, **overrides})
        except ConfigError as e:
            raise ConfigError(f"{p}: {e}") from None
    return _from_dict(spec, {**d, **overrides})


def _from_dict(spec: Any, d: dict[str, Any]) -> BackboneConfig:
    if "arch" not in d:
        raise ConfigError(f"config {spec!r} has no 'arch' key")
    if not isinstance(d["arch"], str):
        raise ConfigError(f"'arch' must be a string, got {d['arch']!r}")
    return config_class(d["arch"]).from_dict(d)
