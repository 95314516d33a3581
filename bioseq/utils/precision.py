"""Mixed precision that is safe to default on: bf16 autocast where the hardware multiplies bf16
natively (CUDA GPUs with bf16, x86 CPUs with AVX512-BF16 or AMX, Arm CPUs with the BF16 extension),
fp32 elsewhere.

Why the CPU check matters: on a CPU with native bf16 dot products, a bf16 matrix product runs
several times faster than fp32 (a 2048 x 2048 matmul on 2 threads: 643 vs 108 GFLOP/s on an
AVX512-BF16 EPYC), so training under ``torch.autocast("cpu", torch.bfloat16)`` is 1.5-4x faster.
Without native support oneDNN emulates bf16 and autocast is *slower* than fp32, so ``auto`` falls
back to fp32 there, with one log line saying why.

Only activations and matmul/conv inputs are bf16: parameters, gradients, optimizer state, the
loss and saved weights stay fp32 (autocast never changes a parameter's dtype). The numerically
delicate parts of the backbones (Mamba's scans, Hyena's FFT convolution) run in fp32 inside
autocast regions; see each backbone file.

Settings accepted everywhere (``train.mixed_precision`` in recipe YAML, ``FinetuneConfig``):
``auto`` (default), ``bf16``, ``fp16`` (CUDA only), ``no``. The environment variable
``BIOSEQ_MIXED_PRECISION`` overrides ``auto`` (e.g. ``BIOSEQ_MIXED_PRECISION=no`` for an fp32 run).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import platform

import torch

log = logging.getLogger("bioseq.precision")

CHOICES = ("auto", "bf16", "fp16", "no")
_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


@functools.lru_cache(maxsize=1)
def cpu_has_native_bf16() -> bool:
    """True if this CPU has bf16 dot-product instructions (AVX512-BF16 / AMX-BF16 on x86, the BF16
    extension on Arm), read from ``/proc/cpuinfo``; False where that cannot be read."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = set()
            for line in f:
                key = line.split(":", 1)[0].strip().lower()
                if key in ("flags", "features"):
                    flags.update(line.split(":", 1)[1].split())
    except OSError:
        return False
    machine = platform.machine().lower()
    if machine in ("x86_64", "amd64", "i686"):
        return bool({"avx512_bf16", "amx_bf16"} & flags)
    if machine in ("aarch64", "arm64"):
        return "bf16" in flags
    return False


def resolve_mixed_precision(setting: str | None, device: str | torch.device = "cpu") -> str:
    """Turn a requested setting into what will run on ``device``: ``"bf16"``, ``"fp16"`` or ``"no"``.

    ``auto`` (or None) picks bf16 where it is native and fast (see the module docstring) and "no"
    elsewhere. An explicit ``bf16`` on a CPU without native support still falls back to fp32
    (emulated bf16 is slower than fp32 and only loses precision), with a log line; ``fp16`` on CPU
    falls back the same way (CPU fp16 autocast covers few ops and needs loss scaling).

    Raises:
        ValueError: for a setting outside :data:`CHOICES`.
    """
    setting = "auto" if setting in (None, "") else str(setting).lower()
    if setting in ("fp32", "none", "false", "0"):
        setting = "no"
    if setting not in CHOICES:
        raise ValueError(f"mixed_precision must be one of {', '.join(CHOICES)}, got {setting!r}")
    if setting == "auto":
        env = os.environ.get("BIOSEQ_MIXED_PRECISION", "").strip().lower()
        if env:
            return resolve_mixed_precision(env if env != "auto" else "bf16", device)
    dev = torch.device(device).type
    if setting == "no":
        return "no"
    if dev == "cuda":
        if setting == "fp16":
            return "fp16"
        if torch.cuda.is_available() and torch.cuda.is_bf16_supported():
            return "bf16"
        log.info("mixed precision: this GPU has no bf16; training in fp32")
        return "no"
    if dev == "cpu":
        if setting == "bf16" or setting == "auto":
            if cpu_has_native_bf16():
                return "bf16"
            log.info("mixed precision: this CPU has no native bf16 (AVX512-BF16/AMX/Arm BF16); training in fp32")
            return "no"
        log.info("mixed precision: fp16 is not used on CPU; training in fp32")
        return "no"
    return "no"  # mps and others: fp32 until measured


def autocast(device: str | torch.device, precision: str):
    """Autocast context for a resolved ``precision`` (``"bf16"``, ``"fp16"`` or ``"no"``)."""
    dev = torch.device(device).type
    if precision == "no" or precision not in _DTYPES:
        return contextlib.nullcontext()
    return torch.autocast(dev, dtype=_DTYPES[precision])


def fp32_region(x: torch.Tensor):
    """Context that switches autocast off on ``x``'s device: for scans, FFTs and other parts that
    must compute in fp32 even when the caller trains under bf16 autocast."""
    return torch.autocast(x.device.type, enabled=False)
