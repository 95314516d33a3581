"""HuggingFace ``transformers`` interoperability (the optional ``hf`` extra).

Importing this module registers bioseq with the Auto classes, so installed users need no
``trust_remote_code``::

    import bioseq.hf  # registers model_type "bioseq"
    from transformers import AutoModel, AutoModelForSequenceClassification, AutoTokenizer
    bioseq.hf.export_hf("runs/lm/", "hf_lm/", tokenizer="dna-char")   # a native checkpoint -> HF folder
    model = AutoModel.from_pretrained("hf_lm/")                          # backbone, last_hidden_state
    clf = AutoModelForSequenceClassification.from_pretrained("hf_lm/", num_labels=3)
    tok = AutoTokenizer.from_pretrained("hf_lm/")                        # PreTrainedTokenizerFast

The HF classes are thin: each holds the native backbone (:mod:`bioseq.models`) and the native
head's layers, and forwards through the native head, so the two can never drift apart. Weight
names: ``bioseq.backbone.*`` (the HF base-model prefix ``bioseq``), then the native head's own
(``lm_head.weight``, ``classifier.1.weight``). ``import bioseq`` never imports this module.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

try:
    from transformers import (
        AutoConfig,
        AutoModel,
        AutoModelForCausalLM,
        AutoModelForMaskedLM,
        AutoModelForSequenceClassification,
        AutoModelForTokenClassification,
        PretrainedConfig,
        PreTrainedModel,
        PreTrainedTokenizerFast,
    )
    from transformers.modeling_outputs import (
        BaseModelOutput,
        CausalLMOutput,
        MaskedLMOutput,
        SequenceClassifierOutput,
        TokenClassifierOutput,
    )
except ImportError as e:  # pragma: no cover - exercised only without the extra
    raise ImportError("bioseq.hf needs transformers: pip install 'bioseq[hf]'") from e

from bioseq.models import heads as native
from bioseq.models.base import build_backbone
from bioseq.models.config import load_config

MODEL_TYPE = "bioseq"


class BioseqConfig(PretrainedConfig):
    """HF config carrying the native backbone config (``backbone``, a dict with ``arch``) and the
    native head's keyword arguments (``head``). ``num_labels`` is HF's own field."""

    model_type = MODEL_TYPE

    def __init__(self, backbone: dict[str, Any] | None = None, head: dict[str, Any] | None = None,
                 head_type: str | None = None, **kwargs: Any) -> None:
        self.backbone = dict(backbone) if backbone else load_config("transformer-tiny").to_dict()
        self.head = dict(head or {})
        self.head_type = head_type  # native model_type that ``head`` belongs to
        cfg = load_config(self.backbone)  # validates; raises ConfigError on a bad dict
        kwargs.setdefault("pad_token_id", cfg.pad_token_id)
        kwargs.setdefault("vocab_size", cfg.vocab_size)
        kwargs.setdefault("hidden_size", cfg.d_model)
        kwargs.setdefault("num_hidden_layers", cfg.n_layer)
        kwargs.setdefault("tie_word_embeddings", bool(self.head.get("tie_weights", True)))
        super().__init__(**kwargs)

    def backbone_config(self):
        return load_config(self.backbone)


class BioseqPreTrainedModel(PreTrainedModel):
    config_class = BioseqConfig
    base_model_prefix = "bioseq"
    main_input_name = "input_ids"

    @classmethod
    def from_pretrained(cls, *args: Any, **kwargs: Any):
        model = super().from_pretrained(*args, **kwargs)
        restore_buffers(model)
        return model

    def _init_weights(self, module: nn.Module) -> None:
        # Only layers missing from a checkpoint (a fresh classifier head) are initialised here;
        # the backbone initialises itself natively when built from a config.
        if isinstance(module, nn.Linear) and module is not getattr(self, "lm_head", None):
            nn.init.normal_(module.weight, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)


class BioseqModel(BioseqPreTrainedModel):
    """The bare backbone: ``last_hidden_state (B, L, d)``."""

    def __init__(self, config: BioseqConfig) -> None:
        super().__init__(config)
        self.backbone = build_backbone(config.backbone_config())
        self.post_init()

    def get_input_embeddings(self) -> nn.Module:
        return self.backbone.embedding

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                return_dict: bool | None = None, **kwargs: Any) -> BaseModelOutput:
        hidden = self.backbone(input_ids, attention_mask=_bool_mask(attention_mask))
        return BaseModelOutput(last_hidden_state=hidden)


def restore_buffers(model: BioseqPreTrainedModel) -> None:
    """Recompute the backbone's non-persistent buffers (e.g. Hyena's filter decay rates).
    ``transformers`` builds models on the meta device and loads only saved tensors, so buffers
    that are derived from the config, not saved, would otherwise be left uninitialised."""
    backbone = model.backbone if isinstance(model, BioseqModel) else model.bioseq.backbone
    fresh = build_backbone(load_config(model.config.backbone))
    persistent = set(backbone.state_dict())
    for (name, buf), (_, ref) in zip(backbone.named_buffers(), fresh.named_buffers(), strict=True):
        if name not in persistent:
            buf.data = ref.to(device=buf.device, dtype=buf.dtype)


def _bool_mask(mask: torch.Tensor | None) -> torch.Tensor | None:
    return None if mask is None else mask.bool()


class _WithNativeHead(BioseqPreTrainedModel):
    """Shared plumbing: build the native head around ``self.bioseq.backbone``, adopt its layers as
    this module's own (so names match the native checkpoint) and forward through it."""

    native_class: type[native.PreTrainedModel]
    head_layers: tuple[str, ...] = ()

    def __init__(self, config: BioseqConfig, **head_kwargs: Any) -> None:
        super().__init__(config)
        self.bioseq = BioseqModel(config)
        # Head settings apply only to the head type they were saved with (an LM's tie_weights
        # means nothing to a classifier built from it).
        saved = config.head if config.head_type == self.native_class.model_type else {}
        head = self.native_class(self.bioseq.backbone, **{**saved, **head_kwargs})
        for name in self.head_layers:
            setattr(self, name, getattr(head, name))
        # A list, not an attribute: the native head's parameters are already registered above,
        # and registering the head itself would name every weight twice.
        self._native = [head]
        if getattr(self, "lm_head", 0) is None:
            # the native head reads a derived embedding weight at every call: nothing to tie
            self._tied_weights_keys = {}
        self.post_init()

    def get_input_embeddings(self) -> nn.Module:
        return self.bioseq.backbone.embedding

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                labels: torch.Tensor | None = None, return_dict: bool | None = None, **kwargs: Any):
        out = self._native[0](input_ids, attention_mask=_bool_mask(attention_mask), labels=labels)
        return self.output_class(loss=out.loss, logits=out.logits, hidden_states=(out.hidden_states,))


class BioseqForMaskedLM(_WithNativeHead):
    output_class = MaskedLMOutput
    native_class = native.MaskedLM
    head_layers = ("lm_head",)
    _tied_weights_keys = {"lm_head.weight": "bioseq.backbone.embedding.weight"}


class BioseqForCausalLM(_WithNativeHead):
    output_class = CausalLMOutput
    native_class = native.CausalLM
    head_layers = ("lm_head",)
    _tied_weights_keys = {"lm_head.weight": "bioseq.backbone.embedding.weight"}


class BioseqForSequenceClassification(_WithNativeHead):
    output_class = SequenceClassifierOutput
    native_class = native.SequenceClassifier
    head_layers = ("classifier",)

    def __init__(self, config: BioseqConfig) -> None:
        super().__init__(config, num_labels=config.num_labels)


class BioseqForTokenClassification(_WithNativeHead):
    output_class = TokenClassifierOutput
    native_class = native.TokenClassifier
    head_layers = ("classifier",)

    def __init__(self, config: BioseqConfig) -> None:
        super().__init__(config, num_labels=config.num_labels)


#: native model_type -> HF class
HF_CLASSES: dict[str, type[BioseqPreTrainedModel]] = {
    "masked_lm": BioseqForMaskedLM,
    "causal_lm": BioseqForCausalLM,
    "sequence_classification": BioseqForSequenceClassification,
    "token_classification": BioseqForTokenClassification,
    "embedder": BioseqModel,
}

AutoConfig.register(MODEL_TYPE, BioseqConfig, exist_ok=True)
AutoModel.register(BioseqConfig, BioseqModel, exist_ok=True)
AutoModelForMaskedLM.register(BioseqConfig, BioseqForMaskedLM, exist_ok=True)
AutoModelForCausalLM.register(BioseqConfig, BioseqForCausalLM, exist_ok=True)
AutoModelForSequenceClassification.register(BioseqConfig, BioseqForSequenceClassification, exist_ok=True)
AutoModelForTokenClassification.register(BioseqConfig, BioseqForTokenClassification, exist_ok=True)


# ----------------------------------------------------------------------------------------------
# conversion
# ----------------------------------------------------------------------------------------------
def to_hf(model: native.PreTrainedModel) -> BioseqPreTrainedModel:
    """An HF model with the same weights as the native ``model`` (a head from
    :mod:`bioseq.models.heads`). Embedders export their backbone only (``BioseqModel``)."""
    kind = model.model_type
    if kind not in HF_CLASSES:
        raise ValueError(f"to_hf: no HuggingFace class for model_type {kind!r}")
    head = {k: v for k, v in model.head_config.items() if k != "num_labels"}
    kw: dict[str, Any] = {}
    if "num_labels" in model.head_config:
        kw["num_labels"] = model.head_config["num_labels"]
    cls = HF_CLASSES[kind]
    config = BioseqConfig(backbone=model.backbone.config.to_dict(), head=head, head_type=kind,
                          architectures=[cls.__name__], **kw)
    hf_model = cls(config)
    state = {}
    for k, v in model.state_dict().items():
        if k.startswith("backbone."):
            state[k if cls is BioseqModel else f"bioseq.{k}"] = v
        elif cls is not BioseqModel:
            state[k] = v
    missing, unexpected = hf_model.load_state_dict(state, strict=False)
    if unexpected or [k for k in missing if k != "lm_head.weight"]:
        raise ValueError(f"to_hf: weight names disagree (missing {missing[:5]}, unexpected {unexpected[:5]})")
    return hf_model.eval()


def hf_tokenizer(tokenizer) -> PreTrainedTokenizerFast:
    """A ``PreTrainedTokenizerFast`` with the same ids as a bioseq character tokenizer (name or
    object): WordLevel vocabulary, one token per character, lowercase folding and aliases as
    normalizers, the special-token template as the post-processor. Characters the native
    tokenizer rejects become the unknown token here (HF tokenizers cannot raise)."""
    from bioseq.tokenization import CharTokenizer, get_tokenizer
    from tokenizers import Regex, Tokenizer, models, normalizers, pre_tokenizers, processors

    tok = get_tokenizer(tokenizer) if isinstance(tokenizer, str) else tokenizer
    if not isinstance(tok, CharTokenizer):
        raise ValueError(f"hf_tokenizer: only character tokenizers convert exactly, got {type(tok).__name__}")
    cfg = tok.to_dict()
    vocab = {t: i for i, t in enumerate(cfg["vocab"])}
    roles = cfg["special_tokens"]
    core = Tokenizer(models.WordLevel(vocab, unk_token=roles.get("unk")))
    norms = []
    if cfg.get("lowercase") == "fold":
        letters = {c for c in [*vocab, *(cfg.get("aliases") or {})] if len(c) == 1 and c.isalpha()}
        norms += [normalizers.Replace(c.lower(), c.upper()) for c in sorted(letters)]
    norms += [normalizers.Replace(src, dst) for src, dst in (cfg.get("aliases") or {}).items()
              if len(dst) == 1]
    if norms:
        core.normalizer = normalizers.Sequence(norms)
    core.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    tpl = cfg.get("template") or {"prefix": [], "suffix": []}
    pre = [roles[r] for r in tpl.get("prefix", [])]
    suf = [roles[r] for r in tpl.get("suffix", [])]
    core.post_processor = processors.TemplateProcessing(
        single=" ".join([*pre, "$A", *suf]),
        pair=" ".join([*pre, "$A", *suf, "$B:1", *suf]),
        special_tokens=[(t, vocab[t]) for t in sorted(set(pre + suf))],
    )
    names = {"pad": "pad_token", "unk": "unk_token", "mask": "mask_token", "cls": "cls_token",
             "sep": "sep_token", "bos": "bos_token", "eos": "eos_token"}
    return PreTrainedTokenizerFast(tokenizer_object=core, model_max_length=int(1e9),
                                   **{names[r]: t for r, t in roles.items() if r in names})


def export_hf(model: native.PreTrainedModel | str | os.PathLike, directory: str | os.PathLike,
              tokenizer=None) -> Path:
    """Write a folder that ``transformers`` loads (``AutoModel*.from_pretrained``, and
    ``AutoTokenizer`` when ``tokenizer`` — a name or a character tokenizer — is given).
    ``model`` is a native model or a native checkpoint folder."""
    if not isinstance(model, native.PreTrainedModel):
        model = native.load_pretrained(model)
    directory = Path(directory)
    to_hf(model).save_pretrained(directory)
    if tokenizer is not None:
        hf_tokenizer(tokenizer).save_pretrained(directory)
    return directory


__all__ = [
    "BioseqConfig", "BioseqForCausalLM", "BioseqForMaskedLM", "BioseqForSequenceClassification",
    "BioseqForTokenClassification", "BioseqModel", "export_hf", "hf_tokenizer", "to_hf",
]
