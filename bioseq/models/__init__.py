"""Backbones behind one interface, task heads, configs, the registry of named sizes and the
registry of shipped checkpoints (:mod:`bioseq.models.checkpoints`).

Every module in this package other than the infrastructure (``base``, ``config``, ``heads``) is
a backbone file that registers itself on import; they are discovered automatically.
"""

import importlib
import pkgutil

from bioseq.models.base import Backbone, build_backbone, gpt2_init_
from bioseq.models.checkpoints import CheckpointInfo, get_checkpoint, list_checkpoints
from bioseq.models.config import (
    BackboneConfig,
    ConfigError,
    list_backbones,
    list_sizes,
    load_config,
    register_backbone,
    register_module,
    register_size,
)
from bioseq.models.heads import (
    CausalLM,
    Embedder,
    MaskedLM,
    ModelOutput,
    PreTrainedModel,
    SequenceClassifier,
    TokenClassifier,
    load_pretrained,
    mask_tokens,
)

_INFRA = {"base", "checkpoints", "config", "heads"}
for _m in pkgutil.iter_modules(__path__):
    if _m.name not in _INFRA and not _m.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_m.name}")

__all__ = [
    "Backbone", "BackboneConfig", "CausalLM", "CheckpointInfo", "get_checkpoint", "list_checkpoints", "ConfigError", "Embedder", "MaskedLM", "ModelOutput",
    "PreTrainedModel", "SequenceClassifier", "TokenClassifier", "build_backbone", "gpt2_init_",
    "list_backbones", "list_sizes", "load_config", "load_pretrained", "mask_tokens",
    "register_backbone", "register_module", "register_size",
]
