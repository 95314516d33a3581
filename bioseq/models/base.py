"""The one interface: every backbone maps token ids ``(B, L)`` to hidden states ``(B, L, d)``.

Heads (:mod:`bioseq.models.heads`) wrap any backbone. A backbone subclass must

* take its config as the only constructor argument and keep it as ``self.config``;
* own its token embedding as ``self.embedding`` (``nn.Embedding(padded_vocab, d_model)``) so LM
  heads can tie their output weights to it;
* implement ``forward(input_ids (B, L) long, attention_mask (B, L) bool | None) -> (B, L, d)``,
  ending in its final norm;
* set ``self.aux_loss`` (a scalar tensor) during ``forward`` if it has an auxiliary training loss
  (H-Net's ratio loss); heads add it to their loss;
* optionally implement ``forward_hidden(hidden (B, L, d), attention_mask (B, L) bool | None) ->
  (B, L, d)``: the same computation as ``forward`` minus the token embedding (blocks, then the
  final norm). ``forward`` is then simply ``forward_hidden(self.embedding(input_ids), mask)``.
  H-Net builds its encoder / main / decoder networks from any backbone that has it, running them
  on hidden states and on sequences of chunks (right-padded, masked by ``attention_mask``);
* optionally implement recurrent decoding for constant-memory generation::

      state = backbone.allocate_state(batch_size, device, dtype)
      hidden, state = backbone.step(token_ids (B,), state)   # hidden: (B, d)
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from bioseq.models.config import BackboneConfig, load_config, module_class


class Backbone(nn.Module):
    """Base class for backbones (see the module docstring for the contract)."""

    config: BackboneConfig
    embedding: nn.Embedding

    def __init__(self, config: BackboneConfig) -> None:
        super().__init__()
        self.config = config
        self.aux_loss: torch.Tensor | None = None

    @property
    def d_model(self) -> int:
        return self.config.d_model

    @property
    def is_causal(self) -> bool:
        return not self.config.bidirectional

    @property
    def supports_recurrent_step(self) -> bool:
        return type(self).step is not Backbone.step

    @classmethod
    def supports_forward_hidden(cls) -> bool:
        """True if the class implements :meth:`forward_hidden` (usable inside H-Net)."""
        return cls.forward_hidden is not Backbone.forward_hidden

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        raise NotImplementedError

    def forward_hidden(self, hidden: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Blocks and final norm on hidden states ``(B, L, d) -> (B, L, d)``, no embedding.

        Args:
            hidden: input hidden states ``(B, L, d_model)``.
            attention_mask: ``(B, L)`` bool, True at real positions; padded positions must not
                change the outputs at real ones.
        """
        raise NotImplementedError(f"{type(self).__name__} has no forward_hidden (cannot run on hidden states)")

    def allocate_state(self, batch_size: int, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> Any:
        raise NotImplementedError(f"{type(self).__name__} has no recurrent decoding")

    def step(self, input_ids: torch.Tensor, state: Any) -> tuple[torch.Tensor, Any]:
        raise NotImplementedError(f"{type(self).__name__} has no recurrent decoding")

    def num_parameters(self, trainable_only: bool = False) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)


def build_backbone(config: BackboneConfig | str | dict, **overrides: Any) -> Backbone:
    """Instantiate a backbone from a config object, a size name, a JSON file or a dict."""
    if not isinstance(config, BackboneConfig) or overrides:
        config = load_config(config if not isinstance(config, BackboneConfig) else config.to_dict(), **overrides)
    return module_class(config.arch)(config)


def gpt2_init_(module: nn.Module, n_layer: int, initializer_range: float = 0.02) -> None:
    """GPT-2 style init: N(0, 0.02) for Linear and Embedding weights, zero biases, and the output
    projections of residual branches (Linear modules named ``out_proj``/``fc2``) scaled down by
    1/sqrt(2 * n_layer) so the residual stream's variance does not grow with depth."""
    for name, m in module.named_modules():
        if isinstance(m, nn.Linear):
            std = initializer_range
            if name.split(".")[-1] in ("out_proj", "fc2"):
                std = initializer_range / (2 * max(n_layer, 1)) ** 0.5
            nn.init.normal_(m.weight, std=std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Embedding):
            nn.init.normal_(m.weight, std=initializer_range)
