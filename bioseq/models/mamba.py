"""Mamba backbones: Mamba-1 (selective scan) and Mamba-2 (SSD), with the Caduceus DNA options.

One residual block is ``h = h + Mixer(RMSNorm(h))``; the mixer is chosen by ``config.version``:

* **Mamba-1** (Gu & Dao 2023): ``in_proj -> (x, z)``; ``x -> causal depthwise conv -> SiLU``;
  ``x_proj(x) -> (dt, B, C)`` (input-dependent, "selective"); per-channel diagonal SSM
  ``h_t = exp(dt_t A) h_{t-1} + dt_t B_t x_t``, ``y_t = C_t h_t + D x_t`` with ``A: (D_in, N)``;
  ``out_proj(y * SiLU(z))``.
* **Mamba-2** (Dao & Gu 2024): ``in_proj -> (z, xBC, dt)``; ``xBC -> conv -> SiLU``; a scalar
  decay per head ``A: (H,)`` makes the SSM a semiseparable matrix, computed chunk by chunk with
  matmuls (SSD); ``out_proj(RMSNorm(y * SiLU(z)))``.

Two implementations of each scan, selected by ``config.backend``:

* ``"torch"``: pure PyTorch, any device. Mamba-1 runs a chunked scan: inside sub-chunks of up to
  32 steps the state is a log-space cumulative sum (exact, and kept inside float range by a
  per-sub-chunk reference point), across sub-chunks a short recurrence carries the state. It
  works block by block (``chunk_size`` steps) and has a hand-written backward pass that
  recomputes each block's states, so the ``(B, L, D_in, N)`` state tensor never exists for the
  whole sequence. Mamba-2 runs SSD's chunked matmul form. Neither loops over time steps in Python.
  Every pass over the Mamba-1 states is memory-bound, so when training on CPU the two block
  functions (forward, backward) are compiled once by ``torch.compile`` (inductor), which fuses
  them into a few C++ loops: 2-2.6x faster steps than op by op (``BIOSEQ_FUSED_SCAN=0|1``
  overrides the choice; without a C++ compiler the scan stays eager, with one log line).
* ``"cuda"``: the ``mamba_ssm`` / ``causal_conv1d`` kernels (``pip install bioseq[cuda]``),
  imported lazily inside the functions that use them. ``"auto"`` takes them for CUDA tensors when
  installed and falls back to ``"torch"`` otherwise.

DNA options (Caduceus, Schiff et al. 2024):

* ``bidirectional=True`` (BiMamba): each mixer runs its SSM on the sequence and on the reversed
  sequence and sums the two; the input and output projections are shared (tied) between the two
  directions, the conv/SSM parameters are not.
* ``rc_equivariant=True`` (RCPS, reverse-complement parameter sharing): the ``d_model`` channels
  are two halves of ``d_model // 2``. Define the reverse-complement action on hidden states
  ``(B, L, d)`` as *flip the length axis and swap the two channel halves*. The embedding of token
  ``v`` is ``[W[v], W[comp(v)]]``; every block runs with shared weights on the forward-strand half
  and, separately, on the reverse-complemented sequence's half; norms act on each half. Then
  ``model(rc(ids)) == RC(model(ids))`` exactly, and logits tied to the embedding satisfy
  ``logits(rc(ids)) == logits(ids).flip(1)[..., complement_map]``. Such a model sees the whole
  sequence, so it is never causal.
"""

from __future__ import annotations

import functools
import importlib.util
import logging
import math
import os
import shutil
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from bioseq.models.base import Backbone, gpt2_init_
from bioseq.models.config import (
    BackboneConfig,
    ConfigError,
    register_backbone,
    register_module,
    register_size,
)
from bioseq.utils.precision import fp32_region

#: HyenaDNA character vocabulary: [CLS] [SEP] [BOS] [MASK] [PAD] [RESERVED] [UNK] A C G T N
DNA_VOCAB_SIZE = 12
DNA_COMPLEMENT_MAP = [0, 1, 2, 3, 4, 5, 6, 10, 9, 8, 7, 11]

_BACKENDS = ("auto", "torch", "cuda")


@register_backbone("mamba")
@dataclass
class MambaConfig(BackboneConfig):
    """Mamba-1 / Mamba-2 backbone.

    Attributes:
        version: 1 = selective scan (Mamba-1), 2 = SSD (Mamba-2).
        d_state: SSM state size N per channel (Mamba-1) or per head (Mamba-2).
        d_conv: width of the causal depthwise convolution.
        expand: inner width ``d_inner = expand * d`` (``d`` = d_model, or d_model // 2 with RCPS).
        dt_rank: rank of the dt projection (Mamba-1); 0 means ``ceil(d / 16)``.
        headdim: channels per head P (Mamba-2); ``d_inner`` must be a multiple.
        ngroups: groups sharing B and C (Mamba-2); heads must be a multiple.
        dt_min, dt_max, dt_init_floor: range of the initial step sizes (log-uniform).
        chunk_size: Mamba-1: steps per block of the CPU scan (memory ~ chunk_size * D_in * N);
            Mamba-2: SSD chunk length.
        norm_eps: RMSNorm epsilon.
        rc_equivariant: Caduceus RCPS reverse-complement equivariance (needs ``complement_map``).
        backend: ``"auto"``, ``"torch"`` or ``"cuda"`` (see the module docstring).
    """

    version: int = 1
    d_state: int = 16
    d_conv: int = 4
    expand: int = 2
    dt_rank: int = 0
    headdim: int = 32
    ngroups: int = 1
    dt_min: float = 1e-3
    dt_max: float = 1e-1
    dt_init_floor: float = 1e-4
    chunk_size: int = 128
    norm_eps: float = 1e-5
    rc_equivariant: bool = False
    backend: str = "auto"

    def validate(self) -> None:
        super().validate()
        if self.version not in (1, 2):
            raise ConfigError(f"mamba: version must be 1 (selective scan) or 2 (SSD), got {self.version}")
        for name in ("d_state", "d_conv", "expand", "headdim", "ngroups", "chunk_size"):
            if getattr(self, name) < 1:
                raise ConfigError(f"mamba: {name} must be >= 1, got {getattr(self, name)}")
        if self.dt_rank < 0:
            raise ConfigError(f"mamba: dt_rank must be >= 0 (0 = auto), got {self.dt_rank}")
        if not 0 < self.dt_min <= self.dt_max:
            raise ConfigError(f"mamba: need 0 < dt_min <= dt_max, got {self.dt_min}, {self.dt_max}")
        if self.backend not in _BACKENDS:
            raise ConfigError(f"mamba: backend must be one of {_BACKENDS}, got {self.backend!r}")
        if self.rc_equivariant:
            if self.complement_map is None:
                raise ConfigError("mamba: rc_equivariant=True needs complement_map (token id -> complement id)")
            if self.d_model % 2:
                raise ConfigError(f"mamba: rc_equivariant=True needs an even d_model, got {self.d_model}")
        if self.version == 2:
            d_inner = self.expand * self.width
            if d_inner % self.headdim:
                raise ConfigError(f"mamba: d_inner {d_inner} (expand * d) not divisible by headdim {self.headdim}")
            if (d_inner // self.headdim) % self.ngroups:
                raise ConfigError(f"mamba: {d_inner // self.headdim} heads not divisible by ngroups {self.ngroups}")

    @property
    def width(self) -> int:
        """Channels each block works on: d_model, or half of it per strand with RCPS."""
        return self.d_model // 2 if self.rc_equivariant else self.d_model

    @property
    def d_inner(self) -> int:
        return self.expand * self.width

    @property
    def resolved_dt_rank(self) -> int:
        return self.dt_rank or math.ceil(self.width / 16)


# ---------------------------------------------------------------------------------------------
# Pure-PyTorch scans
# ---------------------------------------------------------------------------------------------

# Largest log-decay one Mamba-1 sub-chunk may span. Factors exp(+-range/2) must stay well inside
# float32 (max ~exp(88)) with room for the input's own magnitude.
_LOG_RANGE = 120.0
_MAX_SUBCHUNK = 32  # sub-chunk length: fastest on CPU among 16/32/64


def _subchunk_len(dt: torch.Tensor, A: torch.Tensor, longest: int) -> int:
    """Longest power-of-two sub-chunk (<= ``longest``) over which no state decays by more than
    ``exp(-_LOG_RANGE)``. Usually ``longest``; large step sizes (fast-forgetting channels) shorten it."""
    with torch.no_grad():
        rate = dt * (-A).amax(-1)  # (B, L, D) log-decay per step of each channel's fastest state
        cs = F.pad(rate.cumsum(1), (0, 0, 1, 0))  # (B, L+1, D)
        L = dt.shape[1]
        T = 1 << max(0, min(longest, L).bit_length() - 1)
        while T > 1:
            starts = torch.arange(0, L, T, device=dt.device)
            ends = (starts + T).clamp_max(L)
            if float((cs[:, ends] - cs[:, starts]).amax()) <= _LOG_RANGE:
                break
            T //= 2
        return T


def _decay_factors(dt: torch.Tensor, A: torch.Tensor, T: int) -> torch.Tensor:
    """``E[b, c, t, d, n] = exp(S_t - r)`` for sub-chunks of length T, where ``S_t`` is the log of
    the decay from the start of the sub-chunk through step t (``A * cumsum(dt)``, <= 0) and ``r``
    is half the sub-chunk's total: a reference point half way in log space, so both ``E`` and
    ``1/E`` stay within ``exp(+-_LOG_RANGE/2)``. Note ``E[:, :, -1] = exp(r)``.
    dt: (b, l, d), A: (d, n) -> (b, l // T, T, d, n)."""
    b, ln, d = dt.shape
    delta = dt.view(b, ln // T, T, d).cumsum(2)  # (b, c, T, d)
    delta = delta - 0.5 * delta[:, :, -1:]
    return torch.mul(delta.unsqueeze(-1), A).exp_()


def _cumsum_T(X: torch.Tensor, reverse: bool = False) -> torch.Tensor:
    """Cumulative sum over the sub-chunk axis of ``X (b, c, T, d, n)`` (``reverse``: from the
    end), as a product with a triangular matrix: on CPU much faster than ``cumsum`` over a
    middle axis, and the reverse sum needs no flipped copies."""
    b, c, T, d, n = X.shape
    M = torch.ones(T, T, dtype=X.dtype, device=X.device)
    M = M.triu() if reverse else M.tril()
    return torch.matmul(M, X.view(b * c, T, d * n)).view(b, c, T, d, n)


def _carry(Eend: torch.Tensor, local_end: torch.Tensor, h: torch.Tensor):
    """States entering each sub-chunk: ``h <- exp(S_T) h + local_end`` over the c sub-chunks
    (``exp(S_T) = Eend**2``). Eend, local_end: (b, c, d, n); h: (b, d, n) -> (b, c, d, n), h_end."""
    starts = []
    for j in range(Eend.shape[1]):
        starts.append(h)
        h = torch.addcmul(local_end[:, j], Eend[:, j] * Eend[:, j], h)
    return torch.stack(starts, 1), h


def _block_states(w, dt, A, B, h0, T):
    """All states of one block, ``(b, c, T, d, n)``, plus E, U = w (x) B and the end state.

    ``h_t = sum_{s<=t} exp(S_t - S_s) U_s + exp(S_t) h_start = E_t * (cumsum(U / E)_t + exp(r) h_start)``.
    """
    b, ln, d = w.shape
    n = A.shape[-1]
    c = ln // T
    E = _decay_factors(dt, A, T)  # (b, c, T, d, n)
    U = w.view(b, c, T, d, 1) * B.view(b, c, T, 1, n)  # (b, c, T, d, n) input to the state
    H = _cumsum_T(torch.div(U, E))
    Eend = E[:, :, -1]  # (b, c, d, n) = exp(r)
    H0, h_end = _carry(Eend, Eend * H[:, :, -1], h0)
    H.add_((Eend * H0).unsqueeze(2)).mul_(E)  # (b, c, T, d, n)
    return H, E, U, h_end


def _per_step(X: torch.Tensor, v: torch.Tensor, over: int, fused: bool) -> torch.Tensor:
    """``X (b, l, d, n)`` contracted with a per-step vector ``v`` (``(b, l, n)`` if ``over`` is -1,
    ``(b, l, d)`` if 2) over that axis. Compiled: a product and a sum, which inductor fuses with
    the ops that made ``X``; eager: a batched matrix-vector product, faster op by op."""
    b, ln, d, n = X.shape
    if fused:
        return (X * (v.view(b, ln, 1, n) if over == -1 else v.view(b, ln, d, 1))).sum(over)
    X = X.view(b * ln, d, n)
    if over == -1:
        return torch.matmul(X, v.reshape(b * ln, n, 1)).view(b, ln, d)
    return torch.matmul(X.transpose(1, 2), v.reshape(b * ln, d, 1)).view(b, ln, n)


def _scan_block_forward(w, dt, A, B, C, h0, T: int, fused: bool):
    """Outputs ``y (b, ln, d)`` (before the ``D`` skip) and the end state of one block."""
    b, ln, d = w.shape
    n = A.shape[-1]
    H, _, _, h = _block_states(w, dt, A, B, h0, T)
    return _per_step(H.view(b, ln, d, n), C, -1, fused), h


def _scan_block_backward(w, dt, A, B, C, gy, h0, K, T: int, fused: bool):
    """Gradients of one block from its start state ``h0`` and ``K = dL/d(state at block end)``.

    Recomputes the block's states, then the adjoint states ``g_t = sum_{s>=t} exp(S_s - S_t) V_s
    + exp(S_T - S_t) K`` (``V = gy (x) C``) as ``(revcumsum(E V) + exp(r) K) / E``: the reverse
    sum runs from the end of the sub-chunk, where terms are smallest, so it is as stable as the
    forward one. Returns dw, ddt, dA, dB, dC and K for the previous block.
    """
    b, ln, d = w.shape
    n = A.shape[-1]
    H, E, U, _ = _block_states(w, dt, A, B, h0, T)
    c = H.shape[1]
    Eend = E[:, :, -1]  # (b, c, d, n) = exp(r)
    G = _cumsum_T((gy.view(b, c, T, d, 1) * C.view(b, c, T, 1, n)).mul_(E), reverse=True)
    Ks = []
    for j in reversed(range(c)):  # K_{c-1} = exp(r) * (revcumsum_0 + exp(r) K_c)
        Ks.append(K)
        K = Eend[:, j] * torch.addcmul(G[:, j, 0], Eend[:, j], K)
    g = G.add_((Eend * torch.stack(Ks[::-1], 1)).unsqueeze(2)).div_(E).view(b, ln, d, n)
    H = H.view(b, ln, d, n)
    dC = _per_step(H, gy, 2, fused)
    dw = _per_step(g, B, -1, fused)
    dB = _per_step(g, w, 2, fused)
    # d(log decay at step t) = g_t * exp(dt_t A) h_{t-1} = g_t * (h_t - U_t)
    P = H.sub_(U.view(b, ln, d, n)).mul_(g)
    ddt = (P * A).sum(-1)
    dA = torch.einsum("bldn,bld->dn", P, dt)
    return dw, ddt, dA, dB, dC, K


# Compiled (inductor) versions of the two block functions, made on first use. On CPU inductor fuses
# each block's exp / multiply / divide / reduce passes over (b, block, D_in, N) into a few C++
# loops, which halves the scan's time (benchmarks/results/train_throughput.md); the eager
# functions compute the same thing op by op.
_FUSED: dict[str, object] = {}
_FUSED_BROKEN: list[str] = []


def _fused_scan_wanted(x: torch.Tensor) -> bool:
    """Whether to run the compiled block functions: ``BIOSEQ_FUSED_SCAN=1`` always, ``=0`` never;
    by default on CPU when training (gradients wanted) and a C++ compiler is on the PATH: the
    compilation (~10 s per block shape) pays back within a few training steps, not in a short
    inference call."""
    env = os.environ.get("BIOSEQ_FUSED_SCAN", "auto").lower()
    if env in ("0", "false", "no") or _FUSED_BROKEN:
        return False
    if env in ("1", "true", "yes"):
        return True
    return x.device.type == "cpu" and torch.is_grad_enabled() and x.requires_grad and _have_cxx()


@functools.cache
def _have_cxx() -> bool:
    """A C++ compiler on the PATH (looked up once: the scan asks on every call)."""
    return any(shutil.which(cc) for cc in ("c++", "g++", "clang++"))


def _block_fns(fused: bool):
    if not fused:
        return _scan_block_forward, _scan_block_backward
    if not _FUSED:
        _FUSED["fwd"] = torch.compile(_scan_block_forward, fullgraph=True, dynamic=False)
        _FUSED["bwd"] = torch.compile(_scan_block_backward, fullgraph=True, dynamic=False)
    return _FUSED["fwd"], _FUSED["bwd"]


def _call_block(fused: bool, which: int, *args):
    """Run a block function, compiled if asked; if compilation fails (no working compiler, an
    unsupported platform), say so once and use the eager functions from then on."""
    if fused:
        try:
            return _block_fns(True)[which](*args, True)
        except Exception as e:  # noqa: BLE001 - any compiler failure: the eager path is exact too
            _FUSED_BROKEN.append(f"{type(e).__name__}: {e}"[:300])
            logging.getLogger(__name__).warning(
                "mamba: compiled selective scan unavailable (%s); using the eager scan", _FUSED_BROKEN[-1])
    return _block_fns(False)[which](*args, False)


class _SelectiveScan(torch.autograd.Function):
    """Chunked selective scan with a hand-written backward pass.

    Forward keeps only its inputs and one state per block; backward recomputes each block's
    states and runs the adjoint recurrence ``g_t = C_t gy_t + exp(dt_{t+1} A) g_{t+1}`` with
    the same log-space cumulative sums, block by block from the end. Peak memory is a few
    ``(block, D_in, N)`` tensors, independent of the sequence length.
    """

    @staticmethod
    def forward(ctx, w, dt, A, B, C, h0, T: int, blk: int, fused: bool):
        # The scan stays in fp32 under autocast: its products of decays spanning exp(+-LOG_RANGE/2)
        # and the long cumulative sums would lose most of their bits in bf16.
        with fp32_region(w):
            return _SelectiveScan._forward(ctx, w, dt, A, B, C, h0, T, blk, fused)

    @staticmethod
    def backward(ctx, gy, gh):
        w = ctx.saved_tensors[0]
        with fp32_region(w):
            return _SelectiveScan._backward(ctx, gy.to(w.dtype), None if gh is None else gh.to(w.dtype))

    @staticmethod
    def _forward(ctx, w, dt, A, B, C, h0, T: int, blk: int, fused: bool):
        # w = dt * x, dt: (b, L, d) with L % T == 0; A: (d, n); B, C: (b, L, n); h0: (b, d, n)
        L = w.shape[1]
        ys, starts, h = [], [], h0
        for i in range(0, L, blk):
            starts.append(h)
            y, h = _call_block(fused, 0, w[:, i : i + blk], dt[:, i : i + blk], A, B[:, i : i + blk],
                               C[:, i : i + blk], h, T)
            ys.append(y)
        ctx.save_for_backward(w, dt, A, B, C, torch.stack(starts))
        ctx.T, ctx.blk, ctx.fused = T, blk, fused
        return torch.cat(ys, 1), h

    @staticmethod
    def _backward(ctx, gy, gh):
        w, dt, A, B, C, starts = ctx.saved_tensors
        T, blk = ctx.T, ctx.blk
        b, L, d = w.shape
        n = A.shape[-1]
        dw, ddt, dB, dC = torch.empty_like(w), torch.empty_like(dt), torch.empty_like(B), torch.empty_like(C)
        dA = torch.zeros_like(A)
        gy = gy.contiguous()
        K = gh.contiguous() if gh is not None else w.new_zeros(b, d, n)  # dL/d(state at block end)
        for k, i in reversed(list(enumerate(range(0, L, blk)))):
            sl = slice(i, i + blk)
            dw[:, sl], ddt[:, sl], dA_k, dB[:, sl], dC[:, sl], K = _call_block(
                ctx.fused, 1, w[:, sl], dt[:, sl], A, B[:, sl], C[:, sl], gy[:, sl], starts[k], K, T)
            dA += dA_k
        return dw, ddt, dA, dB, dC, K, None, None, None


def selective_scan(
    x: torch.Tensor,
    dt: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    D: torch.Tensor | None = None,
    initial_state: torch.Tensor | None = None,
    chunk_size: int = 128,
    return_final_state: bool = False,
    fused: bool | None = None,
):
    """Mamba-1 selective scan in pure PyTorch (chunked, memory-lean).

    Computes ``h_t = exp(dt_t * A) * h_{t-1} + dt_t * x_t * B_t`` and
    ``y_t = h_t @ C_t + D * x_t`` for every channel.

    Args:
        x: inputs ``(B, L, D_in)``.
        dt: positive step sizes ``(B, L, D_in)`` (after softplus).
        A: state matrix diagonal ``(D_in, N)``, negative.
        B, C: input and output projections ``(B, L, N)``.
        D: skip connection ``(D_in,)`` or None.
        initial_state: ``(B, D_in, N)`` or None (zeros).
        chunk_size: most steps per block; the backward pass recomputes one block at a time.
        return_final_state: also return the state after the last step.
        fused: run each block's work compiled by inductor (``True``), eagerly op by op (``False``),
            or decide (``None``: ``BIOSEQ_FUSED_SCAN``, else compiled when training on CPU with a
            C++ compiler available). Both compute the same values.

    Returns:
        ``y (B, L, D_in)`` in the dtype of ``x``, and the final state if asked.
    """
    in_dtype = x.dtype
    ct = torch.float64 if in_dtype == torch.float64 else torch.float32
    x, dt, A, B, C = (t.to(ct) for t in (x, dt, A, B, C))
    b, L, d = x.shape
    n = A.shape[-1]
    T = _subchunk_len(dt, A, min(_MAX_SUBCHUNK, chunk_size))
    if fused is None:
        fused = _fused_scan_wanted(x)
    # Blocks of at most chunk_size steps, shortened so one (b, block, D_in, N) tensor stays near
    # the size of a core's L2 cache: every pass over the states is memory-bound, and measured at
    # training shapes such blocks run the scan 1.5-2.5x faster than 128-step ones.
    fit = ((4 if fused else 2) << 20) // (b * d * n * x.element_size())
    blk = max(T, min(chunk_size, 1 << max(fit.bit_length() - 1, 0)) // T * T)
    pad = (-L) % T
    if pad:  # dt = 0 and x = 0: identity decay and no input, so the padding changes nothing
        x, dt, B, C = (F.pad(t, (0, 0, 0, pad)) for t in (x, dt, B, C))
    h0 = initial_state.to(ct) if initial_state is not None else x.new_zeros(b, d, n)
    y, h = _SelectiveScan.apply((dt * x).contiguous(), dt.contiguous(), A.contiguous(), B.contiguous(),
                                C.contiguous(), h0.contiguous(), T, blk, fused)
    y = y[:, :L]
    if D is not None:
        y = y + x[:, :L] * D.to(ct)
    y = y.to(in_dtype)
    return (y, h) if return_final_state else y


def _segsum(a: torch.Tensor) -> torch.Tensor:
    """``out[..., t, s] = sum(a[..., s+1 : t+1])`` for t >= s, -inf above the diagonal.
    Built by cumulative sums of a masked copy (not a difference of cumsums) for precision."""
    T = a.shape[-1]
    a = a[..., None].expand(*a.shape, T)  # (..., T, T): a[..., i, j] = a_i
    strict = torch.ones(T, T, dtype=torch.bool, device=a.device).tril(-1)
    out = a.masked_fill(~strict, 0).cumsum(-2)
    return out.masked_fill(~strict.logical_or(torch.eye(T, dtype=torch.bool, device=a.device)), float("-inf"))


def ssd_scan(
    x: torch.Tensor,
    dt: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    D: torch.Tensor | None = None,
    initial_state: torch.Tensor | None = None,
    chunk_size: int = 64,
    return_final_state: bool = False,
):
    """Mamba-2 SSD in pure PyTorch: the chunked matmul form of the scalar-decay SSM.

    Computes per head ``h_t = exp(dt_t * A) * h_{t-1} + dt_t * x_t B_t^T`` (state ``(P, N)``) and
    ``y_t = h_t C_t + D * x_t``.

    Args:
        x: ``(B, L, H, P)``; dt: positive ``(B, L, H)``; A: negative ``(H,)``.
        B, C: ``(B, L, G, N)`` with ``H`` a multiple of ``G``.
        D: ``(H,)`` or None. initial_state: ``(B, H, P, N)`` or None.
        chunk_size: chunk length T; work inside a chunk is quadratic in T, across chunks linear.

    Returns:
        ``y (B, L, H, P)`` and, if asked, the final state ``(B, H, P, N)``.
    """
    in_dtype = x.dtype
    ct = torch.float64 if in_dtype == torch.float64 else torch.float32
    x, dt, A, B, C = (t.to(ct) for t in (x, dt, A, B, C))
    b, L, h, p = x.shape
    g, n = B.shape[-2:]
    T = min(chunk_size, L)
    pad = (-L) % T
    if pad:
        x, dt, B, C = (F.pad(t, (0,) * (2 * t.dim() - 4) + (0, pad)) for t in (x, dt, B, C))
    c = (L + pad) // T
    if g != h:  # each group's B, C serve h // g consecutive heads
        B, C = B.repeat_interleave(h // g, dim=2), C.repeat_interleave(h // g, dim=2)
    X = (x * dt[..., None]).view(b, c, T, h, p)  # discretised input
    Bc, Cc = B.view(b, c, T, h, n), C.view(b, c, T, h, n)
    a = (dt * A).view(b, c, T, h).permute(0, 3, 1, 2)  # (b, h, c, T) log decay per step
    a_cs = a.cumsum(-1)  # (b, h, c, T)
    # 1. Output from inputs of the same chunk: a masked, decayed "attention" C B^T.
    decay_in = torch.exp(_segsum(a))  # (b, h, c, T, T)
    scores = torch.einsum("bcthn,bcshn->bhcts", Cc, Bc) * decay_in
    y = torch.einsum("bhcts,bcshp->bcthp", scores, X)  # (b, c, T, h, p)
    # 2. State each chunk leaves at its end, starting from zero.
    decay_to_end = torch.exp(a_cs[..., -1:] - a_cs)  # (b, h, c, T)
    states = torch.einsum("bcshn,bcshp->bchpn", Bc * decay_to_end.permute(0, 2, 3, 1)[..., None], X)
    # 3. Carry the state across chunks (a recurrence over L / T chunks, not over time steps).
    chunk_decay = torch.exp(a_cs[..., -1]).permute(0, 2, 1)[..., None, None]  # (b, c, h, 1, 1)
    state = initial_state.to(ct) if initial_state is not None else x.new_zeros(b, h, p, n)
    starts = []
    for j in range(c):
        starts.append(state)
        state = chunk_decay[:, j] * state + states[:, j]
    H0 = torch.stack(starts, 1)  # (b, c, h, p, n) state entering each chunk
    # 4. Contribution of the entering state to every step of the chunk.
    y = y + torch.einsum("bcthn,bchpn->bcthp", Cc, H0) * torch.exp(a_cs).permute(0, 2, 3, 1)[..., None]
    y = y.reshape(b, c * T, h, p)[:, :L]
    if D is not None:
        y = y + x[:, :L] * D.to(ct)[:, None]
    y = y.to(in_dtype)
    return (y, state) if return_final_state else y


def causal_conv1d(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """Causal depthwise convolution of ``x (B, L, C)`` with ``weight (C, 1, K)`` -> ``(B, L, C)``."""
    # K shifted multiply-adds: on CPU much faster than conv1d, whose depthwise backward is slow.
    L, K = x.shape[1], weight.shape[-1]
    w = weight.squeeze(1).t()  # (K, C)
    xp = F.pad(x, (0, 0, K - 1, 0))  # (B, L + K - 1, C), zeros before the sequence
    y = xp[:, K - 1 :] * w[K - 1]
    for k in range(K - 1):
        y = y + xp[:, k : k + L] * w[k]
    return y if bias is None else y + bias


# ---------------------------------------------------------------------------------------------
# Optional CUDA kernels (mamba_ssm, causal_conv1d), imported only here
# ---------------------------------------------------------------------------------------------

_KERNELS_AVAILABLE: bool | None = None


def _kernels_available() -> bool:
    global _KERNELS_AVAILABLE
    if _KERNELS_AVAILABLE is None:
        _KERNELS_AVAILABLE = all(importlib.util.find_spec(m) is not None for m in ("mamba_ssm", "causal_conv1d"))
    return _KERNELS_AVAILABLE


def _use_cuda_kernels(backend: str, x: torch.Tensor) -> bool:
    if backend == "torch":
        return False
    if backend == "cuda":
        if not x.is_cuda:
            raise RuntimeError("mamba backend='cuda' needs CUDA tensors; use backend='torch' or 'auto' on CPU")
        if not _kernels_available():
            raise RuntimeError("mamba backend='cuda' needs mamba_ssm and causal_conv1d: pip install 'bioseq[cuda]'")
        return True
    return x.is_cuda and _kernels_available()


def _conv_cuda(x: torch.Tensor, conv: nn.Conv1d) -> torch.Tensor:
    from causal_conv1d import causal_conv1d_fn

    y = causal_conv1d_fn(x.transpose(1, 2).contiguous(), conv.weight.squeeze(1), conv.bias, activation="silu")
    return y.transpose(1, 2)  # (B, L, C)


# ---------------------------------------------------------------------------------------------
# SSM cores: one direction of one mixer (conv + SSM), with recurrent single-step decoding
# ---------------------------------------------------------------------------------------------


def _init_dt_bias(cfg: MambaConfig, size: int) -> torch.Tensor:
    # Step sizes log-uniform in [dt_min, dt_max]; store softplus^-1(dt) so softplus recovers it.
    dt = torch.exp(torch.rand(size) * (math.log(cfg.dt_max) - math.log(cfg.dt_min)) + math.log(cfg.dt_min))
    dt = dt.clamp_min(cfg.dt_init_floor)
    return dt + torch.log(-torch.expm1(-dt))


class SelectiveSSM(nn.Module):
    """Mamba-1 core: ``x (B, L, D_in)`` -> conv -> SiLU -> selective scan -> ``y (B, L, D_in)``."""

    def __init__(self, cfg: MambaConfig) -> None:
        super().__init__()
        self.cfg = cfg
        d_inner, n, r = cfg.d_inner, cfg.d_state, cfg.resolved_dt_rank
        self.conv1d = nn.Conv1d(d_inner, d_inner, cfg.d_conv, groups=d_inner, padding=cfg.d_conv - 1)
        self.x_proj = nn.Linear(d_inner, r + 2 * n, bias=False)
        self.dt_proj = nn.Linear(r, d_inner, bias=True)
        # S4D-real init: A = -(1, 2, ..., N) for every channel.
        self.A_log = nn.Parameter(torch.log(torch.arange(1, n + 1, dtype=torch.float32)).repeat(d_inner, 1))
        self.D = nn.Parameter(torch.ones(d_inner))
        self.reset_dt()

    def reset_dt(self) -> None:
        r = self.cfg.resolved_dt_rank
        with torch.no_grad():
            nn.init.uniform_(self.dt_proj.weight, -(r**-0.5), r**-0.5)
            self.dt_proj.bias.copy_(_init_dt_bias(self.cfg, self.cfg.d_inner))

    def _dt_B_C(self, x: torch.Tensor):
        r, n = self.cfg.resolved_dt_rank, self.cfg.d_state
        dt, B, C = self.x_proj(x).split([r, n, n], dim=-1)
        return dt, B, C

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        if mask is not None:  # zero padded positions so they feed nothing into the conv or state
            x = x * mask[..., None]
        A = -torch.exp(self.A_log.float())  # (D_in, N)
        if _use_cuda_kernels(self.cfg.backend, x):
            from mamba_ssm.ops.selective_scan_interface import selective_scan_fn

            x = _conv_cuda(x, self.conv1d)
            if mask is not None:
                x = x * mask[..., None]
            dt, B, C = self._dt_B_C(x)
            dt = dt @ self.dt_proj.weight.t()  # (B, L, D_in), bias added (in fp32) by the kernel
            y = selective_scan_fn(
                x.transpose(1, 2).contiguous(), dt.transpose(1, 2).contiguous(), A,
                B.transpose(1, 2).contiguous(), C.transpose(1, 2).contiguous(), self.D.float(),
                delta_bias=self.dt_proj.bias.float(), delta_softplus=True,
            )
            return y.transpose(1, 2)
        x = F.silu(causal_conv1d(x, self.conv1d.weight, self.conv1d.bias))  # (B, L, D_in)
        if mask is not None:
            x = x * mask[..., None]
        dt, B, C = self._dt_B_C(x)
        dt = F.softplus(self.dt_proj(dt))  # (B, L, D_in)
        return selective_scan(x, dt, A, B, C, self.D, chunk_size=self.cfg.chunk_size)

    def allocate_state(self, batch_size: int, device, dtype) -> tuple[torch.Tensor, torch.Tensor]:
        conv = torch.zeros(batch_size, self.cfg.d_inner, self.cfg.d_conv, device=device, dtype=dtype)
        ssm = torch.zeros(batch_size, self.cfg.d_inner, self.cfg.d_state, device=device, dtype=torch.float32)
        return conv, ssm

    def step(self, x: torch.Tensor, state):
        """One token: ``x (B, D_in)`` -> ``y (B, D_in)`` and the new state."""
        conv, ssm = state
        conv = torch.cat([conv[..., 1:], x[..., None]], -1)  # (B, D_in, K): the last K inputs
        x = F.silu((conv * self.conv1d.weight.squeeze(1)).sum(-1) + self.conv1d.bias)
        dt, B, C = self._dt_B_C(x)
        dt = F.softplus(self.dt_proj(dt)).float()  # (B, D_in)
        A = -torch.exp(self.A_log.float())
        ssm = torch.exp(dt[..., None] * A) * ssm + (dt * x.float())[..., None] * B.float()[:, None, :]
        y = (ssm @ C.float()[..., None]).squeeze(-1) + self.D * x.float()
        return y.to(x.dtype), (conv, ssm)


class SSD(nn.Module):
    """Mamba-2 core: ``xBC (B, L, D_in + 2GN)`` and raw ``dt (B, L, H)`` -> ``y (B, L, D_in)``."""

    def __init__(self, cfg: MambaConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.nheads = cfg.d_inner // cfg.headdim
        conv_dim = cfg.d_inner + 2 * cfg.ngroups * cfg.d_state
        self.conv1d = nn.Conv1d(conv_dim, conv_dim, cfg.d_conv, groups=conv_dim, padding=cfg.d_conv - 1)
        self.dt_bias = nn.Parameter(_init_dt_bias(cfg, self.nheads))
        # A per head uniform in [1, 16], as Mamba-2.
        self.A_log = nn.Parameter(torch.log(torch.empty(self.nheads).uniform_(1, 16)))
        self.D = nn.Parameter(torch.ones(self.nheads))

    def _split(self, xBC: torch.Tensor):
        cfg = self.cfg
        gn = cfg.ngroups * cfg.d_state
        x, B, C = xBC.split([cfg.d_inner, gn, gn], dim=-1)
        shape = xBC.shape[:-1]
        return (x.reshape(*shape, self.nheads, cfg.headdim), B.reshape(*shape, cfg.ngroups, cfg.d_state),
                C.reshape(*shape, cfg.ngroups, cfg.d_state))

    def forward(self, xBC: torch.Tensor, dt: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        if mask is not None:
            xBC = xBC * mask[..., None]
        A = -torch.exp(self.A_log.float())  # (H,)
        cuda = _use_cuda_kernels(self.cfg.backend, xBC)
        xBC = _conv_cuda(xBC, self.conv1d) if cuda else F.silu(causal_conv1d(xBC, self.conv1d.weight, self.conv1d.bias))
        if mask is not None:
            xBC = xBC * mask[..., None]
        x, B, C = self._split(xBC)  # (B, L, H, P), (B, L, G, N), (B, L, G, N)
        if cuda:
            from mamba_ssm.ops.triton.ssd_combined import mamba_chunk_scan_combined

            y = mamba_chunk_scan_combined(x, dt, A, B, C, chunk_size=self.cfg.chunk_size, D=self.D,
                                          dt_bias=self.dt_bias, dt_softplus=True)
        else:
            dt = F.softplus(dt + self.dt_bias)  # (B, L, H)
            y = ssd_scan(x, dt, A, B, C, self.D, chunk_size=self.cfg.chunk_size)
        return y.reshape(*y.shape[:2], -1)  # (B, L, D_in)

    def allocate_state(self, batch_size: int, device, dtype):
        cfg = self.cfg
        conv_dim = cfg.d_inner + 2 * cfg.ngroups * cfg.d_state
        conv = torch.zeros(batch_size, conv_dim, cfg.d_conv, device=device, dtype=dtype)
        ssm = torch.zeros(batch_size, self.nheads, cfg.headdim, cfg.d_state, device=device, dtype=torch.float32)
        return conv, ssm

    def step(self, xBC: torch.Tensor, dt: torch.Tensor, state):
        """One token: ``xBC (B, D_in + 2GN)``, ``dt (B, H)`` -> ``y (B, D_in)`` and the new state."""
        conv, ssm = state
        conv = torch.cat([conv[..., 1:], xBC[..., None]], -1)
        xBC = F.silu((conv * self.conv1d.weight.squeeze(1)).sum(-1) + self.conv1d.bias)
        x, B, C = self._split(xBC)  # (B, H, P), (B, G, N), (B, G, N)
        rep = self.nheads // self.cfg.ngroups
        B, C = B.repeat_interleave(rep, 1).float(), C.repeat_interleave(rep, 1).float()  # (B, H, N)
        dt = F.softplus(dt + self.dt_bias).float()  # (B, H)
        A = -torch.exp(self.A_log.float())
        xf = x.float()
        ssm = torch.exp(dt * A)[..., None, None] * ssm + (dt[..., None] * xf)[..., None] * B[:, :, None, :]
        y = (ssm @ C[..., None]).squeeze(-1) + self.D[:, None] * xf  # (B, H, P)
        return y.reshape(y.shape[0], -1).to(x.dtype), (conv, ssm)


# ---------------------------------------------------------------------------------------------
# Mixers: projections shared by both directions (BiMamba ties them), one core per direction
# ---------------------------------------------------------------------------------------------


def _flip(t: torch.Tensor | None) -> torch.Tensor | None:
    return None if t is None else t.flip(1)


class Mamba1Mixer(nn.Module):
    def __init__(self, cfg: MambaConfig) -> None:
        super().__init__()
        d, d_inner = cfg.width, cfg.d_inner
        self.in_proj = nn.Linear(d, 2 * d_inner, bias=False)
        self.ssm = nn.ModuleList(SelectiveSSM(cfg) for _ in range(2 if cfg.bidirectional else 1))
        self.out_proj = nn.Linear(d_inner, d, bias=False)

    def forward(self, u: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        x, z = self.in_proj(u).chunk(2, dim=-1)  # (B, L, D_in) each
        y = self.ssm[0](x, mask)
        if len(self.ssm) == 2:  # BiMamba: the reversed sequence through the same projections
            y = y + self.ssm[1](x.flip(1), _flip(mask)).flip(1)
        return self.out_proj(y * F.silu(z))

    def allocate_state(self, batch_size, device, dtype):
        return self.ssm[0].allocate_state(batch_size, device, dtype)

    def step(self, u: torch.Tensor, state):
        x, z = self.in_proj(u).chunk(2, dim=-1)  # (B, D_in)
        y, state = self.ssm[0].step(x, state)
        return self.out_proj(y * F.silu(z)), state


class Mamba2Mixer(nn.Module):
    def __init__(self, cfg: MambaConfig) -> None:
        super().__init__()
        d, d_inner = cfg.width, cfg.d_inner
        self.nheads = d_inner // cfg.headdim
        self.sizes = [d_inner, d_inner + 2 * cfg.ngroups * cfg.d_state, self.nheads]  # z, xBC, dt
        self.in_proj = nn.Linear(d, sum(self.sizes), bias=False)
        self.ssm = nn.ModuleList(SSD(cfg) for _ in range(2 if cfg.bidirectional else 1))
        self.norm = nn.RMSNorm(d_inner, eps=cfg.norm_eps)
        self.out_proj = nn.Linear(d_inner, d, bias=False)

    def forward(self, u: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        z, xBC, dt = self.in_proj(u).split(self.sizes, dim=-1)
        y = self.ssm[0](xBC, dt, mask)  # (B, L, D_in)
        if len(self.ssm) == 2:
            y = y + self.ssm[1](xBC.flip(1), dt.flip(1), _flip(mask)).flip(1)
        return self.out_proj(self.norm(y * F.silu(z)))

    def allocate_state(self, batch_size, device, dtype):
        return self.ssm[0].allocate_state(batch_size, device, dtype)

    def step(self, u: torch.Tensor, state):
        z, xBC, dt = self.in_proj(u).split(self.sizes, dim=-1)
        y, state = self.ssm[0].step(xBC, dt, state)
        return self.out_proj(self.norm(y * F.silu(z))), state


class Block(nn.Module):
    """Pre-norm residual block ``h + Mixer(RMSNorm(h))`` on ``(B, L, width)``."""

    def __init__(self, cfg: MambaConfig) -> None:
        super().__init__()
        self.norm = nn.RMSNorm(cfg.width, eps=cfg.norm_eps)
        self.mixer = (Mamba1Mixer if cfg.version == 1 else Mamba2Mixer)(cfg)

    def forward(self, h: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return h + self.mixer(self.norm(h), mask)

    def step(self, h: torch.Tensor, state):
        y, state = self.mixer.step(self.norm(h), state)
        return h + y, state


# ---------------------------------------------------------------------------------------------
# Embedding and backbone
# ---------------------------------------------------------------------------------------------


class RCEmbedding(nn.Module):
    """Reverse-complement-equivariant embedding: token ``v`` -> ``[W[v], W[comp(v)]]``.

    ``weight`` (``(V, d)``) is built from the parameter ``W (V, d/2)``, so swapping its halves
    gives the complement's row; LM heads tie to it and their logits inherit the equivariance.
    """

    def __init__(self, num_embeddings: int, embedding_dim: int, complement_map: list[int]) -> None:
        super().__init__()
        # Padded vocabulary entries (never real tokens) are their own complements.
        cm = list(complement_map) + list(range(len(complement_map), num_embeddings))
        self.register_buffer("complement", torch.tensor(cm, dtype=torch.long), persistent=False)
        self.W = nn.Parameter(torch.empty(num_embeddings, embedding_dim // 2))
        nn.init.normal_(self.W, std=0.02)

    @property
    def weight(self) -> torch.Tensor:
        return torch.cat([self.W, self.W[self.complement]], dim=-1)  # (V, d)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return F.embedding(input_ids, self.weight)


class MambaBackbone(Backbone):
    """Stack of Mamba-1 or Mamba-2 blocks; BiMamba and RCPS options for DNA (module docstring)."""

    def __init__(self, config: MambaConfig) -> None:
        super().__init__(config)
        V, d = config.padded_vocab_size, config.d_model
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layer))
        self.norm_f = nn.RMSNorm(config.width, eps=config.norm_eps)
        self.embedding = nn.Embedding(V, d)
        gpt2_init_(self, config.n_layer)
        if config.rc_equivariant:
            self.embedding = RCEmbedding(V, d, config.complement_map)
        for m in self.modules():  # gpt2_init_ reset dt_proj; restore Mamba's step-size init
            if isinstance(m, SelectiveSSM):
                m.reset_dt()

    @property
    def is_causal(self) -> bool:
        return not (self.config.bidirectional or self.config.rc_equivariant)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        cfg = self.config
        mask = None
        if attention_mask is not None and not bool(attention_mask.all()):
            mask = attention_mask.to(self.embedding.weight.dtype)  # (B, L)
        h = self.embedding(input_ids)  # (B, L, d)
        if cfg.rc_equivariant:
            # Two strands as one batch: the forward half, and the second half flipped so that it
            # reads the reverse complement 5'->3'. Weights are shared; the strands never mix.
            k = cfg.width
            h = torch.cat([h[..., :k], h[..., k:].flip(1)], dim=0)  # (2B, L, d/2)
            if mask is not None:
                mask = torch.cat([mask, mask.flip(1)], dim=0)
        for blk in self.blocks:
            h = blk(h, mask)
        h = self.norm_f(h)
        if cfg.rc_equivariant:
            fwd, rc = h.chunk(2, dim=0)
            h = torch.cat([fwd, rc.flip(1)], dim=-1)  # (B, L, d)
        return h

    def allocate_state(self, batch_size: int, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32):
        """Per-layer (conv state, SSM state): constant memory in the generated length."""
        if not self.is_causal:
            raise ValueError("recurrent decoding needs a causal Mamba (bidirectional=False, rc_equivariant=False)")
        return [blk.mixer.allocate_state(batch_size, device, dtype) for blk in self.blocks]

    def step(self, input_ids: torch.Tensor, state):
        """One token per sequence: ``input_ids (B,)`` -> hidden ``(B, d)`` and the new state."""
        h = self.embedding(input_ids)  # (B, d)
        new = []
        for blk, s in zip(self.blocks, state, strict=True):
            h, s = blk.step(h, s)
            new.append(s)
        return self.norm_f(h), new


register_module("mamba", MambaBackbone)
register_size("mamba-tiny", "mamba", d_model=128, n_layer=4)
register_size("mamba-small", "mamba", d_model=256, n_layer=8)
register_size("mamba-base", "mamba", d_model=512, n_layer=16)
register_size("mamba2-tiny", "mamba", version=2, d_model=128, n_layer=4, d_state=64, headdim=32, chunk_size=64)
register_size("mamba2-small", "mamba", version=2, d_model=256, n_layer=8, d_state=64, headdim=64, chunk_size=64)
_DNA = {"vocab_size": DNA_VOCAB_SIZE, "complement_map": DNA_COMPLEMENT_MAP}
register_size("bimamba-tiny", "mamba", d_model=128, n_layer=4, bidirectional=True, **_DNA)
register_size("caduceus-tiny", "mamba", d_model=128, n_layer=4, bidirectional=True, rc_equivariant=True, **_DNA)
register_size("caduceus-small", "mamba", d_model=256, n_layer=8, bidirectional=True, rc_equivariant=True, **_DNA)
register_size("caduceus-ps-tiny", "mamba", d_model=128, n_layer=4, rc_equivariant=True, **_DNA)
