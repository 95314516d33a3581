"""``train.compile``: the training forward through ``torch.compile`` (inductor), eager on failure.

Measured on CPU (``benchmarks/results/train_throughput.md``), compiling the whole training step's
forward pays for some backbones and not others (Hyena's FFT convolution and gating fuse well; a
Transformer's time is in attention and matmuls that inductor leaves as they are), and the first
step of every new input shape costs tens of seconds. So it is an opt-in switch, and a machine
without a working C++ compiler (inductor's CPU backend needs one) trains eagerly after one log line
instead of stopping.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import torch

log = logging.getLogger("bioseq.compile")


def compile_errors() -> tuple[type[BaseException], ...]:
    """Exceptions that mean "this graph could not be compiled here" (not a bug in the model)."""
    errs: list[type[BaseException]] = []
    try:
        from torch._dynamo.exc import BackendCompilerFailed, InternalTorchDynamoError, TorchRuntimeError, Unsupported

        errs += [BackendCompilerFailed, InternalTorchDynamoError, TorchRuntimeError, Unsupported]
    except ImportError:  # pragma: no cover - very old torch
        pass
    try:
        from torch._inductor.exc import InductorError

        errs.append(InductorError)
    except ImportError:  # pragma: no cover
        pass
    return tuple(errs) or (RuntimeError,)


class CompiledForward:
    """Call ``module`` through ``torch.compile`` when ``enabled``; after a compile failure, log one
    line and call it eagerly from then on (the same module, so weights and optimizer are shared).

    Only the training forward goes through it: evaluation calls the module directly, so metrics are
    those of the eager model the checkpoint will be loaded into.
    """

    def __init__(self, module: torch.nn.Module, enabled: bool, what: str = "training step") -> None:
        self.module, self.what = module, what
        self.compiled: Callable | None = torch.compile(module) if enabled else None

    @property
    def active(self) -> bool:
        """True while calls go through the compiled module."""
        return self.compiled is not None

    def __call__(self, *args, **kwargs):
        if self.compiled is None:
            return self.module(*args, **kwargs)
        try:
            return self.compiled(*args, **kwargs)
        except compile_errors() as e:
            msg = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
            log.warning("compile: torch.compile failed for the %s (%s: %s); running eagerly",
                        self.what, type(e).__name__, msg)
            self.compiled = None
            return self.module(*args, **kwargs)
