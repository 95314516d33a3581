"""Bio-xLSTM: mLSTM / sLSTM block stacks from the ``xlstm`` package, with DNA and protein options.

The blocks are the ``xlstm`` package's own (``xLSTMBlockStack`` of ``mLSTMBlock`` and
``sLSTMBlock``; their parameters, init and recurrent ``step``). Two of the package's CPU kernels
do not scale to genomic lengths, so the cells are given linear-cost kernels:

* **mLSTM**: the package's ``mLSTMCell`` computes the fully parallel form (an ``(L, L)`` decay
  matrix per head: quadratic time and memory, ~GBs at 16k). Its ``backend_fn`` is replaced by a
  chunkwise mLSTM: quadratic only inside a chunk, linear in L. On CPU (``backend="native"``) it is
  :func:`_mlstm_chunkwise_native` (an inter-chunk loop of ours around ``mlstm_kernels``' native
  intra-chunk function; the package's own native chunkwise kernels are either quadratic in their
  backward or skip part of the gradient, see there); on CUDA ``chunkwise--triton_xl_chunk`` when
  triton is installed. Inputs are right-padded to a multiple of the chunk with gates that leave
  the memory untouched, so any length works and outputs are exact.
* **sLSTM**: the package's ``"vanilla"`` (pure PyTorch) backend writes every time step into a
  preallocated tensor in place; autograd then copies that whole tensor once per step in the
  backward pass, which is quadratic in L (5 s fwd+bwd at 4k for d=128). :class:`_sLSTMCellScan`
  runs the package's own pointwise sLSTM update but collects the steps in a list (linear).
  ``slstm_backend="cuda"`` selects the package's fused CUDA kernel instead (compiled with nvcc on
  first use; its parameter layout differs, so checkpoints do not move between the two).

Options (see :class:`XLSTMConfig`):

* ``bidirectional``: every block's mixer also runs on the reversed sequence with the same
  weights and the two outputs are summed (DNA-xLSTM / Caduceus BiMamba weight tying). Padded
  batches are reversed within each row's length, so right padding never leaks into real tokens.
* ``rc_equivariant``: reverse-complement equivariance by parameter sharing (Caduceus-PS). The
  ``d_model`` channels are two halves; one stack of width ``d_model / 2`` runs on the first half
  and on the reverse complement of the second, so ``model(rc(x)) == RC(model(x))`` where
  ``RC(h)`` flips both the length and the channel axis. The token embedding is constrained to
  ``E[comp(v)] == flip(E[v])`` (see :meth:`XLSTMBackbone.embedding_table`), which also makes a
  tied LM head's logits equivariant: ``logits(rc(x))[t, v] == logits(x)[L-1-t, comp(v)]``.
* Protein in-context learning: :func:`homolog_fim_example` concatenates homologous sequences and
  applies the fill-in-the-middle transform to the query (Prot-xLSTM / ProtMamba style), with the
  sentinel token ids taken from :class:`HomologFIMConfig`.

Recurrent decoding (:meth:`XLSTMBackbone.allocate_state` / :meth:`XLSTMBackbone.step`) runs the
package's ``xLSTMBlockStack.step``: the state is a fixed set of matrices per block (mLSTM
``C (B, NH, DH, DH)``, ``n``, ``m`` and a conv window; sLSTM ``(4, B, d)``), independent of length.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from bioseq.models.base import Backbone
from bioseq.models.config import BackboneConfig, ConfigError, register_backbone, register_module, register_size

MLSTM_BACKENDS = ("auto", "native", "triton")
SLSTM_BACKENDS = ("vanilla", "cuda")
IGNORE_INDEX = -100


@register_backbone("xlstm")
@dataclass
class XLSTMConfig(BackboneConfig):
    """Bio-xLSTM hyper-parameters (names follow the ``xlstm`` package).

    Attributes:
        slstm_at: indices of the blocks that are sLSTM blocks; the others are mLSTM blocks.
        num_heads: mLSTM heads. slstm_num_heads: sLSTM heads.
        proj_factor: mLSTM up-projection factor (inner width = proj_factor * block width).
        qkv_proj_blocksize: block size of the mLSTM's block-diagonal q/k/v projections.
        conv1d_kernel_size: causal depthwise conv before q/k (mLSTM) and the gates (sLSTM).
        ffn_proj_factor: gated feed-forward width factor in sLSTM blocks.
        chunk_size: chunk length of the chunkwise mLSTM kernel.
        backend: mLSTM kernel: ``native`` (PyTorch, any device), ``triton`` (CUDA fused kernel,
            needs triton), ``auto`` (triton for CUDA tensors when importable, else native).
        slstm_backend: ``vanilla`` (PyTorch, linear-time scan) or ``cuda`` (the package's fused
            kernel, compiled at build time; needs nvcc).
        rc_equivariant: reverse-complement equivariance by parameter sharing; needs
            ``complement_map``, an even ``d_model`` and ``bidirectional`` (the reverse-complement
            half reads the sequence right to left, so the model is not causal).
        dropout: dropout inside the blocks.
    """

    slstm_at: list[int] = field(default_factory=list)
    num_heads: int = 4
    slstm_num_heads: int = 4
    proj_factor: float = 2.0
    qkv_proj_blocksize: int = 4
    conv1d_kernel_size: int = 4
    ffn_proj_factor: float = 1.3
    chunk_size: int = 64
    backend: str = "auto"
    slstm_backend: str = "vanilla"
    rc_equivariant: bool = False
    dropout: float = 0.0

    def validate(self) -> None:
        super().validate()
        if self.n_layer < 1:
            raise ConfigError("xlstm: n_layer must be >= 1")
        self.slstm_at = sorted(int(i) for i in self.slstm_at)
        bad = [i for i in self.slstm_at if not 0 <= i < self.n_layer]
        if bad or len(set(self.slstm_at)) != len(self.slstm_at):
            raise ConfigError(f"xlstm: slstm_at {self.slstm_at} must be distinct block indices in [0, {self.n_layer})")
        if self.backend not in MLSTM_BACKENDS:
            raise ConfigError(f"xlstm: backend {self.backend!r} not one of {MLSTM_BACKENDS}")
        if self.slstm_backend not in SLSTM_BACKENDS:
            raise ConfigError(f"xlstm: slstm_backend {self.slstm_backend!r} not one of {SLSTM_BACKENDS}")
        if self.chunk_size < 1 or self.chunk_size & (self.chunk_size - 1):
            raise ConfigError(f"xlstm: chunk_size must be a power of two, got {self.chunk_size}")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"xlstm: dropout must be in [0, 1), got {self.dropout}")
        if self.conv1d_kernel_size < 1:
            raise ConfigError(f"xlstm: conv1d_kernel_size must be >= 1, got {self.conv1d_kernel_size}")
        if self.rc_equivariant:
            if self.complement_map is None:
                raise ConfigError("xlstm: rc_equivariant needs complement_map")
            if self.d_model % 2:
                raise ConfigError(f"xlstm: rc_equivariant needs an even d_model, got {self.d_model}")
            if not self.bidirectional:
                raise ConfigError("xlstm: rc_equivariant needs bidirectional=True (the model is not causal)")
        width = self.block_width
        inner = int(self.proj_factor * width)
        if inner % self.num_heads or inner % self.qkv_proj_blocksize:
            raise ConfigError(
                f"xlstm: mLSTM inner width {inner} (proj_factor * {width}) must be divisible by "
                f"num_heads {self.num_heads} and qkv_proj_blocksize {self.qkv_proj_blocksize}"
            )
        if self.slstm_at and width % self.slstm_num_heads:
            raise ConfigError(f"xlstm: block width {width} not divisible by slstm_num_heads {self.slstm_num_heads}")

    @property
    def block_width(self) -> int:
        """Width of the block stack: ``d_model``, or half of it with ``rc_equivariant``."""
        return self.d_model // 2 if self.rc_equivariant else self.d_model


# -- kernels ---------------------------------------------------------------------------------------


def _triton_available() -> bool:
    try:
        import triton  # noqa: F401
    except ImportError:
        return False
    return True


def _mlstm_chunkwise_native(q, k, v, i, f, chunk_size: int, eps: float = 1e-6) -> torch.Tensor:
    """Chunkwise mLSTM in PyTorch with exact autograd gradients and linear cost in length.

    ``q, k, v (B, NH, S, DH)``, gate pre-activations ``i, f (B, NH, S)``, ``S`` a multiple of
    ``chunk_size`` -> ``h (B, NH, S, DH)``. The memory entering each chunk (``C (DH, DH)``,
    ``n (DH)`` and the log-scale stabiliser ``m``) comes from a loop over chunks; the outputs within
    all chunks are then computed in parallel by ``mlstm_kernels``' native ``parallel_fw_H``.
    ``mlstm_kernels``' own ``chunkwise--native_autograd`` writes each chunk state into a
    preallocated tensor in place, which makes its backward quadratic in the number of chunks, and
    ``chunkwise--native_custbw`` does not differentiate through the normaliser ``|q . n|``, so its
    q/k/gate gradients differ from the model's maths; this loop keeps the states in a list instead.
    """
    from mlstm_kernels.torch.chunkwise.native.fw import mlstm_chunkwise__parallel_fw_H

    B, NH, S, DH = q.shape
    NC, L = S // chunk_size, chunk_size
    vecI = i.reshape(B, NH, NC, L)
    vecB = F.logsigmoid(f).reshape(B, NH, NC, L).cumsum(-1)  # log forget from chunk start to t
    vecA = vecB[..., -1:] - vecB + vecI  # log weight of step t in the state at the chunk's end
    scaG = vecB[..., -1]  # (B, NH, NC) log forget across a whole chunk
    scaA_max = vecA.max(-1).values  # (B, NH, NC)
    # Per-chunk pieces via unbind, not indexing: the backward of x[:, :, c] allocates a zero
    # tensor the size of x for every c (quadratic); unbind's backward stacks all grads once.
    Ks, Vs = k.reshape(B, NH, NC, L, DH).unbind(2), v.reshape(B, NH, NC, L, DH).unbind(2)
    As, Gs, Amax = vecA.unbind(2), scaG.unbind(2), scaA_max.unbind(2)
    C = q.new_zeros(B, NH, DH, DH)
    n = q.new_zeros(B, NH, DH)
    m = q.new_zeros(B, NH)
    Cs, ns, ms = [C], [n], [m]
    for c in range(NC - 1):  # the state entering chunk c + 1
        m_next = torch.maximum(Gs[c] + m, Amax[c])  # (B, NH)
        Kg = Ks[c] * torch.exp(As[c] - m_next[..., None])[..., None]  # (B, NH, L, DH)
        decay = torch.exp(Gs[c] + m - m_next)  # (B, NH)
        C = decay[..., None, None] * C + Kg.transpose(-2, -1) @ Vs[c]
        n = decay[..., None] * n + Kg.sum(-2)
        m = m_next
        Cs.append(C)
        ns.append(n)
        ms.append(m)
    h, _, _ = mlstm_chunkwise__parallel_fw_H(
        matQ=q, matK=k, matV=v,
        matC_states=torch.stack(Cs, 2).reshape(B, NH, NC * DH, DH),
        vecN_states=torch.stack(ns, 2).reshape(B, NH, NC * DH),
        scaMinter_states=torch.stack(ms, 2),
        vecI=vecI, vecB=vecB, qk_scale=DH**-0.5, chunk_size=L, num_chunks=NC, eps=eps,
    )
    return h  # (B, NH, S, DH)


class _ChunkwiseMLSTM:
    """A ``backend_fn`` for the package's ``mLSTMCell``: the chunkwise mLSTM, linear in length.

    Takes the cell's parallel-backend arguments (gate pre-activations shaped ``(B, NH, S, 1)``)
    and returns ``h (B, NH, S, DH)``, the same quantity as ``parallel_stabilized_simple``.
    """

    def __init__(self, backend: str, chunk_size: int) -> None:
        self.backend, self.chunk_size = backend, chunk_size

    def _use_triton(self, device: torch.device) -> bool:
        use = self.backend == "triton" or (self.backend == "auto" and device.type == "cuda" and _triton_available())
        if use and device.type != "cuda":
            raise RuntimeError("xlstm: backend='triton' needs CUDA tensors")
        return use

    def __call__(self, queries, keys, values, igate_preact, fgate_preact, **_: Any) -> torch.Tensor:
        S, cs = queries.shape[2], self.chunk_size
        pad = (-S) % cs
        q, k, v = (F.pad(t, (0, 0, 0, pad)) for t in (queries, keys, values))  # (B, NH, S', DH)
        # Padded steps get input gate exp(-25) ~ 0 and forget gate sigmoid(25) ~ 1: they leave the
        # memory untouched, and being after the real steps they cannot change earlier outputs.
        i = F.pad(igate_preact[..., 0], (0, pad), value=-25.0)  # (B, NH, S')
        f = F.pad(fgate_preact[..., 0], (0, pad), value=25.0)
        if self._use_triton(queries.device):
            from mlstm_kernels.torch import get_mlstm_kernel

            kernel = get_mlstm_kernel("chunkwise--triton_xl_chunk")
            h = kernel(q=q, k=k, v=v, i=i, f=f, chunk_size=cs, return_last_states=False)
        else:
            h = _mlstm_chunkwise_native(q, k, v, i, f, cs)
        return h[:, :, :S]  # (B, NH, S, DH)


@functools.cache
def _slstm_scan_cell_class():
    """The package's vanilla sLSTM cell with a linear-cost time loop (see the module docstring)."""
    from xlstm.blocks.slstm.cell import sLSTMCell_vanilla

    class _sLSTMCellScan(sLSTMCell_vanilla):
        def _impl(self, training: bool, input: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
            # input (S, B, 4H) gate pre-activations, state (4, B, H) -> all states (4, S+1, B, H)
            R, b = self._recurrent_kernel, self._bias  # R (NH, 4*DH, DH)
            NH, DH = R.shape[0], R.shape[2]
            G, B = R.shape[1] // DH, input.shape[1]
            R_t = R.transpose(1, 2).reshape(1, NH, DH, G * DH)
            states = [state]
            for wx in input.unbind(0):  # wx (B, 4H)
                # y_{t-1} R per head as a broadcast product + sum rather than a (1 x DH) @ (DH x 4DH)
                # matmul: tiny BLAS calls enter the thread pool every step, which costs
                # milliseconds per call when the cores are shared; elementwise ops of this size
                # run inline.
                ry = (state[0].reshape(B, NH, DH, 1) * R_t).sum(2)  # (B, NH, 4*DH)
                ry = ry.reshape(B, NH, G, DH).transpose(1, 2).reshape(B, -1)  # gate-major (B, 4H)
                state, _ = self.pointwise(wx, ry, b, state, constants=self.config.constants)
                states.append(state)
            return torch.stack(states, dim=1)

    return _sLSTMCellScan


def _build_stack(cfg: XLSTMConfig, linear_kernels: bool = True, context_length: int = 1) -> nn.Module:
    """The package's ``xLSTMBlockStack`` at width ``cfg.block_width``, with linear-cost kernels.

    ``linear_kernels=False`` keeps the package's stock CPU kernels (parallel mLSTM for sequences
    up to ``context_length``, in-place vanilla sLSTM loop): the reference in benchmarks.
    """
    from xlstm import (
        FeedForwardConfig, mLSTMBlockConfig, mLSTMLayerConfig, sLSTMBlockConfig, sLSTMLayerConfig,
        xLSTMBlockStack, xLSTMBlockStackConfig,
    )

    mlstm = None
    if len(cfg.slstm_at) < cfg.n_layer:
        mlstm = mLSTMBlockConfig(mlstm=mLSTMLayerConfig(
            conv1d_kernel_size=cfg.conv1d_kernel_size, qkv_proj_blocksize=cfg.qkv_proj_blocksize,
            num_heads=cfg.num_heads, proj_factor=cfg.proj_factor,
        ))
    slstm = None
    if cfg.slstm_at:
        if cfg.slstm_backend == "cuda" and not torch.cuda.is_available():
            raise RuntimeError("xlstm: slstm_backend='cuda' compiles a CUDA kernel and needs a GPU; use 'vanilla'")
        slstm = sLSTMBlockConfig(
            slstm=sLSTMLayerConfig(
                backend=cfg.slstm_backend, num_heads=cfg.slstm_num_heads,
                conv1d_kernel_size=cfg.conv1d_kernel_size, bias_init="powerlaw_blockdependent",
            ),
            feedforward=FeedForwardConfig(proj_factor=cfg.ffn_proj_factor, act_fn="gelu"),
        )
    stack = xLSTMBlockStack(xLSTMBlockStackConfig(
        mlstm_block=mlstm, slstm_block=slstm, num_blocks=cfg.n_layer, embedding_dim=cfg.block_width,
        slstm_at=list(cfg.slstm_at), dropout=cfg.dropout,
        # Only sizes the mLSTM cell's (L, L) mask buffer for the parallel kernel, which we replace.
        context_length=context_length,
    ))
    if not linear_kernels:
        return stack
    scan_cls = _slstm_scan_cell_class() if cfg.slstm_backend == "vanilla" else None
    for block in stack.blocks:
        layer = block.xlstm
        if hasattr(layer, "mlstm_cell"):
            layer.mlstm_cell.backend_fn = _ChunkwiseMLSTM(cfg.backend, cfg.chunk_size)
        elif scan_cls is not None:
            layer.slstm_cell.__class__ = scan_cls  # same parameters, linear-cost _impl
    return stack


# -- sequence reversal -----------------------------------------------------------------------------


def _reverse_index(attention_mask: torch.Tensor | None, B: int, L: int, device) -> torch.Tensor | None:
    """Index ``(B, L)`` that reverses each row within its real length (right padding stays put),
    or None when every row is full length (then a plain flip does it)."""
    if attention_mask is None or bool(attention_mask.all()):
        return None
    lengths = attention_mask.long().sum(1, keepdim=True)  # (B, 1)
    pos = torch.arange(L, device=device).expand(B, L)
    return torch.where(pos < lengths, lengths - 1 - pos, pos)


def _reverse(x: torch.Tensor, index: torch.Tensor | None) -> torch.Tensor:
    """Reverse ``x (B, L, ...)`` along L (within each row's length when ``index`` is given)."""
    if index is None:
        return x.flip(1)
    return torch.gather(x, 1, index.view(*index.shape, *([1] * (x.dim() - 2))).expand_as(x))


def _check_right_padded(attention_mask: torch.Tensor | None) -> None:
    if attention_mask is not None and bool((attention_mask[:, 1:] & ~attention_mask[:, :-1]).any()):
        raise ValueError("xlstm: attention_mask must be right-padded (True then False in every row)")


# -- the backbone ----------------------------------------------------------------------------------


class XLSTMBackbone(Backbone):
    """Token ids ``(B, L)`` -> hidden states ``(B, L, d_model)`` through an xLSTM block stack.

    Causal unless ``config.bidirectional``; see the module docstring for the DNA options.
    """

    def __init__(self, config: XLSTMConfig) -> None:
        super().__init__(config)
        from xlstm.components.init import small_init_init_

        self.embedding = nn.Embedding(config.padded_vocab_size, config.d_model)
        small_init_init_(self.embedding.weight, dim=config.d_model)
        self.stack = _build_stack(config)  # blocks + the final LayerNorm (post_blocks_norm)
        if config.rc_equivariant:
            # complement over the padded vocabulary (padding ids map to themselves)
            comp = list(config.complement_map) + list(range(config.vocab_size, config.padded_vocab_size))
            self.register_buffer("complement", torch.tensor(comp, dtype=torch.long), persistent=False)
            # Keep the raw weight itself RC-symmetric: start symmetric and project every gradient
            # (from the lookup and from a tied LM head alike) onto symmetric tables. Paired entries
            # then get identical updates from any elementwise optimiser (SGD, Adam, weight decay),
            # so an LM head tied to this weight gives RC-equivariant logits too.
            with torch.no_grad():
                self.embedding.weight.copy_(self._symmetrize(self.embedding.weight))
            self.embedding.weight.register_hook(self._symmetrize)

    # -- embedding -------------------------------------------------------------------------------
    def embedding_table(self) -> torch.Tensor:
        """The ``(V, d)`` table the backbone looks tokens up in.

        With ``rc_equivariant`` it is ``(W[v] + flip(W[comp(v)])) / 2``, so that
        ``table[comp(v)] == flip(table[v])``: embedding the reverse complement of a sequence then
        gives exactly the RC (length and channel flip) of its embedding.
        """
        w = self.embedding.weight
        return self._symmetrize(w) if self.config.rc_equivariant else w

    def _symmetrize(self, w: torch.Tensor) -> torch.Tensor:
        # (V, d) -> (V, d) with out[comp(v)] == flip(out[v]); a no-op on symmetric tables
        return 0.5 * (w + w[self.complement].flip(-1))

    def embed(self, input_ids: torch.Tensor) -> torch.Tensor:
        if not self.config.rc_equivariant:
            return self.embedding(input_ids)  # (B, L, d)
        return F.embedding(input_ids, self.embedding_table())

    # -- forward ---------------------------------------------------------------------------------
    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        if input_ids.dim() != 2:
            raise ValueError(f"xlstm: input_ids must be (B, L), got shape {tuple(input_ids.shape)}")
        return self.forward_hidden(self.embed(input_ids), attention_mask)  # (B, L, d)

    def forward_hidden(self, hidden: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        attention_mask = None if attention_mask is None else attention_mask.bool()
        _check_right_padded(attention_mask)
        B, L, d = hidden.shape
        index = _reverse_index(attention_mask, B, L, hidden.device)
        if not self.config.rc_equivariant:
            return self._run_stack(hidden, index)
        # Caduceus-PS: halves never mix inside the backbone; the second half is the RC strand.
        half = d // 2
        fwd, rc = hidden[..., :half], _reverse(hidden[..., half:], index).flip(-1)
        out = self._run_stack(torch.cat([fwd, rc], 0), None if index is None else index.repeat(2, 1))
        return torch.cat([out[:B], _reverse(out[B:], index).flip(-1)], -1)  # (B, L, d)

    def _run_stack(self, x: torch.Tensor, index: torch.Tensor | None) -> torch.Tensor:
        # x (B, L, w). The stack's own forward, except that bidirectional mixers also see the
        # reversed sequence: both directions go through the layer as one batch of 2B rows.
        if not self.config.bidirectional:
            return self.stack(x)
        B = x.shape[0]
        for block in self.stack.blocks:
            h = block.xlstm_norm(x)
            y = block.xlstm(torch.cat([h, _reverse(h, index)], 0))  # (2B, L, w)
            x = x + y[:B] + _reverse(y[B:], index)
            if block.ffn is not None:
                x = x + block.ffn(block.ffn_norm(x))
        return self.stack.post_blocks_norm(x)

    # -- recurrent decoding ------------------------------------------------------------------------
    def allocate_state(self, batch_size: int, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> dict:
        """Zero recurrent state for ``batch_size`` sequences; its size does not depend on length."""
        if not self.is_causal:
            raise NotImplementedError("xlstm: recurrent decoding needs a causal model (bidirectional=False)")
        state = {}
        for i, block in enumerate(self.stack.blocks):
            layer = block.xlstm
            conv = layer.conv1d.conv
            conv_state = (torch.zeros(batch_size, conv.kernel_size[0], conv.in_channels, device=device, dtype=dtype),)
            if hasattr(layer, "mlstm_cell"):
                nh = layer.mlstm_cell.config.num_heads
                dh = layer.mlstm_cell.config.embedding_dim // nh
                mlstm_state = (
                    torch.zeros(batch_size, nh, dh, dh, device=device, dtype=dtype),  # C
                    torch.zeros(batch_size, nh, dh, 1, device=device, dtype=dtype),  # n
                    torch.zeros(batch_size, nh, 1, 1, device=device, dtype=dtype),  # m
                )
                state[f"block_{i}"] = {"mlstm_state": mlstm_state, "conv_state": conv_state}
            else:
                cell = layer.slstm_cell.config
                slstm_state = torch.zeros(cell.num_states, batch_size, cell.hidden_size, device=device, dtype=dtype)
                state[f"block_{i}"] = {"conv_state": conv_state, "slstm_state": slstm_state}
        return state

    def step(self, input_ids: torch.Tensor, state: dict) -> tuple[torch.Tensor, dict]:
        """One token per sequence: ``input_ids (B,)`` -> ``hidden (B, d)``, new state."""
        if not self.is_causal:
            raise NotImplementedError("xlstm: recurrent decoding needs a causal model (bidirectional=False)")
        x = self.embed(input_ids[:, None])  # (B, 1, d)
        state = {k: dict(v) for k, v in state.items()}  # the caller's dict is not modified...
        for v in state.values():  # ...nor its conv windows, which the package updates in place
            v["conv_state"] = tuple(t.clone() for t in v["conv_state"])
        h, state = self.stack.step(x, state)
        return h[:, 0], state


register_module("xlstm", XLSTMBackbone)
DNA = {"vocab_size": 12, "pad_token_id": 4, "complement_map": [0, 1, 2, 3, 4, 5, 6, 10, 9, 8, 7, 11]}
register_size("xlstm-tiny", "xlstm", d_model=128, n_layer=2, slstm_at=[1])
register_size("xlstm-small", "xlstm", d_model=256, n_layer=6, slstm_at=[3])
register_size("dna-xlstm-tiny", "xlstm", d_model=128, n_layer=2, bidirectional=True, rc_equivariant=True, **DNA)
register_size("dna-xlstm-small", "xlstm", d_model=256, n_layer=6, bidirectional=True, rc_equivariant=True, **DNA)


# -- protein in-context learning and fill-in-the-middle --------------------------------------------

@dataclass
class HomologFIMConfig:
    """Token ids and rates for :func:`homolog_fim_example`.

    The defaults are the ESM-2 layout (``<cls>=0 <pad>=1 <eos>=2``, 33 tokens) plus three
    fill-in-the-middle sentinels appended after it (33, 34, 35), hence ``vocab_size=36`` for
    ``prot-xlstm-*``.

    Attributes:
        fim_rate: probability that the query is FIM-transformed (otherwise kept in order).
        context_fim_rate: probability for each context homolog.
        max_length: total length cap; context homologs are dropped (farthest from the query first)
            until the example fits.
        query_loss_only: if True, labels of the context tokens are ``-100`` (no loss).
    """

    cls_id: int = 0
    pad_id: int = 1
    eos_id: int = 2
    prefix_id: int = 33
    suffix_id: int = 34
    middle_id: int = 35
    fim_rate: float = 0.5
    context_fim_rate: float = 0.0
    max_length: int = 2048
    query_loss_only: bool = False

    def __post_init__(self) -> None:
        ids = [self.cls_id, self.pad_id, self.eos_id, self.prefix_id, self.suffix_id, self.middle_id]
        if len(set(ids)) != len(ids) or min(ids) < 0:
            raise ValueError(f"HomologFIMConfig: special token ids must be distinct and >= 0, got {ids}")
        for name in ("fim_rate", "context_fim_rate"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"HomologFIMConfig: {name} must be in [0, 1], got {getattr(self, name)}")
        if self.max_length < 8:
            raise ValueError(f"HomologFIMConfig: max_length must be >= 8, got {self.max_length}")

    @property
    def specials(self) -> set[int]:
        return {self.cls_id, self.pad_id, self.eos_id, self.prefix_id, self.suffix_id, self.middle_id}


def _fim_segment(seq: list[int], cfg: HomologFIMConfig, rng: np.random.Generator, rate: float) -> list[int]:
    """``<cls> seq <eos>``, or with probability ``rate`` the PSM fill-in-the-middle form
    ``<cls> <pre> prefix <suf> suffix <mid> middle <eos>`` (two cut points drawn uniformly)."""
    if len(seq) < 2 or rng.random() >= rate:
        return [cfg.cls_id, *seq, cfg.eos_id]
    a, b = sorted(rng.choice(len(seq) + 1, size=2, replace=False).tolist())
    return [cfg.cls_id, cfg.prefix_id, *seq[:a], cfg.suffix_id, *seq[b:], cfg.middle_id, *seq[a:b], cfg.eos_id]


def _as_ids(seq: str | Sequence[int], i: int) -> list[int]:
    if isinstance(seq, str):
        from bioseq.tokenization.char import ESM_VOCAB

        table = {t: k for k, t in enumerate(ESM_VOCAB) if len(t) == 1}
        bad = sorted({c for c in seq.upper() if c not in table})
        if bad:
            raise ValueError(f"homolog_fim_example: sequence {i} has characters outside the protein alphabet: {bad}")
        return [table[c] for c in seq.upper()]
    return [int(t) for t in seq]


def homolog_fim_example(
    sequences: Sequence[str | Sequence[int]],
    config: HomologFIMConfig | None = None,
    rng: np.random.Generator | int | None = None,
) -> dict[str, torch.Tensor]:
    """One causal-LM training example from a set of homologous proteins (Prot-xLSTM style).

    The context homologs come first, the last sequence is the query: each is wrapped as
    ``<cls> ... <eos>``; the query (and optionally the context) is fill-in-the-middle transformed,
    so a causal model learns to infill a span given its flanks and the homologs before it.

    Args:
        sequences: homologs as amino-acid strings (encoded with the ESM-2 vocabulary of
            :func:`bioseq.tokenization.protein_esm`) or as lists of token ids; the last one is the query.
        config: token ids, FIM rates and length cap.
        rng: numpy Generator or seed, for reproducible examples.

    Returns:
        ``{"input_ids": (L,) long, "labels": (L,) long}``; ``labels`` equal ``input_ids`` except
        ``-100`` on context tokens when ``config.query_loss_only``.
    """
    cfg = config or HomologFIMConfig()
    rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    if not sequences:
        raise ValueError("homolog_fim_example: no sequences given")
    seqs = [_as_ids(s, i) for i, s in enumerate(sequences)]
    for i, s in enumerate(seqs):
        if not s:
            raise ValueError(f"homolog_fim_example: sequence {i} is empty")
        if cfg.specials & set(s):
            raise ValueError(f"homolog_fim_example: sequence {i} contains special token ids {sorted(cfg.specials & set(s))}")
    query = _fim_segment(seqs[-1], cfg, rng, cfg.fim_rate)
    if len(query) > cfg.max_length:
        raise ValueError(f"homolog_fim_example: query of {len(seqs[-1])} residues does not fit max_length {cfg.max_length}")
    context: list[list[int]] = []
    budget = cfg.max_length - len(query)
    for s in reversed(seqs[:-1]):  # keep the homologs nearest the query
        seg = _fim_segment(s, cfg, rng, cfg.context_fim_rate)
        if len(seg) > budget:
            break
        context.insert(0, seg)
        budget -= len(seg)
    ctx = [t for seg in context for t in seg]
    ids = torch.tensor(ctx + query, dtype=torch.long)
    labels = ids.clone()
    if cfg.query_loss_only:
        labels[: len(ctx)] = IGNORE_INDEX
    return {"input_ids": ids, "labels": labels}


def undo_fim(segment: Sequence[int], config: HomologFIMConfig | None = None) -> list[int]:
    """Residues of one ``<cls> ... <eos>`` segment in their natural order (inverse of the FIM
    transform); e.g. to read back an infilled query after generation."""
    cfg = config or HomologFIMConfig()
    seg = [int(t) for t in segment]
    if seg[:1] == [cfg.cls_id]:
        seg = seg[1:]
    if seg[-1:] == [cfg.eos_id]:
        seg = seg[:-1]
    if seg[:1] != [cfg.prefix_id]:
        return seg
    try:
        s, m = seg.index(cfg.suffix_id), seg.index(cfg.middle_id)
    except ValueError as e:
        raise ValueError("undo_fim: FIM segment lacks its <suffix> or <middle> sentinel") from e
    return seg[1:s] + seg[m + 1 :] + seg[s + 1 : m]


PROT = {"vocab_size": 36, "pad_token_id": 1}
register_size("prot-xlstm-tiny", "xlstm", d_model=128, n_layer=2, **PROT)
register_size("prot-xlstm-small", "xlstm", d_model=256, n_layer=8, **PROT)

__all__ = [
    "HomologFIMConfig", "XLSTMBackbone", "XLSTMConfig", "homolog_fim_example", "undo_fim",
]
