import logging

import pytest
import torch

from bioseq.utils import compile as bcompile
from bioseq.utils.compile import CompiledForward


class Counting(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(3, 2)
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        return self.lin(x)


def test_disabled_calls_module_directly(monkeypatch):
    monkeypatch.setattr(torch, "compile", lambda *a, **k: pytest.fail("compiled while disabled"))
    m = Counting()
    fwd = CompiledForward(m, enabled=False)
    x = torch.randn(4, 3)
    assert not fwd.active
    assert torch.equal(fwd(x), m.lin(x)) and m.calls == 1


def test_compile_failure_falls_back_to_eager_once(monkeypatch, caplog):
    from torch._dynamo.exc import BackendCompilerFailed

    attempts = []

    def broken(*args, **kwargs):
        attempts.append(1)
        raise BackendCompilerFailed("inductor", RuntimeError("no C++ compiler"), None)

    monkeypatch.setattr(torch, "compile", lambda module, **k: broken)
    m = Counting()
    fwd = CompiledForward(m, enabled=True)
    x = torch.randn(4, 3)
    with caplog.at_level(logging.WARNING, logger="bioseq.compile"):
        y1, y2 = fwd(x), fwd(x)
    assert torch.equal(y1, m.lin(x)) and torch.equal(y2, y1)
    assert len(attempts) == 1, "a failed compile must not be retried every step"
    assert not fwd.active
    assert sum("running eagerly" in r.message for r in caplog.records) == 1


def test_model_errors_are_not_swallowed(monkeypatch):
    """A genuine error in the model (not a compile failure) reaches the caller."""
    def raises(*a, **k):
        raise ValueError("shape mismatch in the model")

    monkeypatch.setattr(torch, "compile", lambda module, **k: raises)
    fwd = CompiledForward(Counting(), enabled=True)
    with pytest.raises(ValueError, match="shape mismatch"):
        fwd(torch.randn(4, 3))
    assert ValueError not in bcompile.compile_errors()


@pytest.mark.slow
def test_real_compile_matches_eager():
    torch.manual_seed(0)
    m = Counting()
    fwd = CompiledForward(m, enabled=True)
    x = torch.randn(8, 3, requires_grad=True)
    y = fwd(x)
    assert fwd.active
    torch.testing.assert_close(y, m.lin(x))
    y.sum().backward()
    assert m.lin.weight.grad is not None
