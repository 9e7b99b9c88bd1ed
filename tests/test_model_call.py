"""The one protected model-call path: every caller leaves the model exactly as it was.

Callers: ``LatentRecorder`` (and ``record_checkpoints`` through it), ``probes.lie_derivative``
and ``latentgeo.testing.assert_equivariant``.  Each test runs all of them on the same kind of
model, so a caller that goes around the path fails here.
"""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from torch import nn

import latentgeo
from latentgeo._model_call import call_model, protected_call
from latentgeo.actions import ImageRotationAngles, ImageRotations
from latentgeo.groups import Cyclic
from latentgeo.testing import assert_equivariant
from probes import lie_derivative

ACTION = ImageRotations(Cyclic(4))
ANGLES = ImageRotationAngles(8)


def _probe(n: int = 5) -> torch.Tensor:
    return torch.randn(n, 1, 8, 8, generator=torch.Generator().manual_seed(3))


def _record(model: nn.Module, layers, tmp_path, name: str = "run.zarr", **kwargs):
    with latentgeo.LatentRecorder(
        model, layers, ACTION, _probe(), tmp_path / name, batch_size=8, **kwargs
    ) as rec:
        rec.record(0)
    return latentgeo.open_run(tmp_path / name)


def _callers(model: nn.Module, tmp_path):
    """Call ``model`` through every latentgeo entry point that takes a model."""
    _record(model, ["body"], tmp_path, name=f"r{len(list(tmp_path.iterdir()))}.zarr")
    lie_derivative(model, _probe(), ANGLES)
    try:
        assert_equivariant(model, ACTION, _probe())
    except AssertionError:
        pass  # not invariant: only the model's state after the call matters here


class Body(nn.Module):
    """Conv, batch norm and dropout: every piece whose mode changes the output."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 3, 3, padding=1)
        self.bn = nn.BatchNorm2d(3)
        self.drop = nn.Dropout(0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(torch.relu(self.bn(self.conv(x))))


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = Body()
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(3 * 64, 4), nn.Dropout(0.2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


def _state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _assert_same_state(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_every_caller_restores_mixed_modes_weights_bn_stats_and_rng(tmp_path):
    torch.manual_seed(0)
    model = Net()
    model(torch.randn(16, 1, 8, 8))  # move the running statistics away from their init
    gen = np.random.default_rng(0)
    for _ in range(6):
        modes = {name: bool(gen.integers(2)) for name, _ in model.named_modules()}
        for name, mod in model.named_modules():
            mod.training = modes[name]
        before = _state(model)
        rng = (torch.get_rng_state(), random.getstate(), np.random.get_state())  # noqa: NPY002
        _callers(model, tmp_path)
        assert {n: m.training for n, m in model.named_modules()} == modes
        _assert_same_state(before, _state(model))  # BN running stats and counters included
        assert torch.equal(rng[0], torch.get_rng_state())
        assert rng[1] == random.getstate()
        np_after = np.random.get_state()  # noqa: NPY002
        assert rng[2][0] == np_after[0] and np.array_equal(rng[2][1], np_after[1])


class Averaged(nn.Module):
    """Swaps averaged weights in on ``train(False)`` and back on ``train(True)`` (EMA-style)."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Linear(64, 4)
        self.average = {k: torch.full_like(v, 0.01) for k, v in self.body.state_dict().items()}
        self.backup: dict[str, torch.Tensor] | None = None
        self.calls: list[bool] = []

    def train(self, mode: bool = True) -> Averaged:
        self.calls.append(mode)
        if not mode and self.backup is None:
            self.backup = {k: v.clone() for k, v in self.body.state_dict().items()}
            self.body.load_state_dict(self.average)
        elif mode and self.backup is not None:
            self.body.load_state_dict(self.backup)
            self.backup = None
        return super().train(mode)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x.flatten(1))


def test_overridden_train_runs_both_ways_and_the_call_sees_its_eval_weights(tmp_path):
    torch.manual_seed(0)
    model = Averaged()
    trained = _state(model)
    x = _probe()
    with torch.no_grad():
        expected = x.flatten(1) @ model.average["weight"].T + model.average["bias"]
    model.calls.clear()
    y = call_model(model, x)
    torch.testing.assert_close(y, expected, rtol=1e-6, atol=1e-7)
    assert model.calls == [False, True]  # entered and left through the model's own API
    _assert_same_state(trained, _state(model))
    assert model.training

    model.calls.clear()
    run = _record(model, ["body"], tmp_path)
    assert model.calls == [False, True]
    _assert_same_state(trained, _state(model))
    orbit = ACTION.orbit(x).reshape(4 * len(x), -1)
    want = (orbit @ model.average["weight"].T + model.average["bias"]).reshape(4, len(x), 4)
    np.testing.assert_allclose(run.latents("body").values[0], want.numpy(), rtol=1e-6, atol=1e-7)

    model.calls.clear()
    lie_derivative(model, x, ANGLES)
    assert model.calls == [False, True]
    _assert_same_state(trained, _state(model))


def test_a_model_in_eval_is_entered_and_left_in_eval():
    model = Averaged()
    model.eval()
    model.calls.clear()
    call_model(model, _probe())
    assert model.calls == [False, False]
    assert not model.training and model.backup is not None


class LazyCache(nn.Module):
    """Builds a table on its first forward and keeps it (like a rotary/positional cache)."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(64, 16)
        self.table: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.lin(x.flatten(1))
        if self.table is None:
            self.table = 1.0 + 0.1 * torch.sin(torch.arange(y.shape[-1], dtype=y.dtype))
        if not hasattr(self, "scale"):
            self.register_buffer("scale", torch.ones(y.shape[-1]))
        return y * self.table * self.scale


def _train(record: bool, tmp_path, caller: str = "recorder", inference: bool = False):
    torch.manual_seed(0)
    model = nn.Sequential(LazyCache(), nn.ReLU(), nn.Dropout(0.3), nn.Linear(16, 3))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    rec = None
    if record:
        if caller == "recorder":
            rec = latentgeo.LatentRecorder(model, ["0"], ACTION, _probe(), tmp_path / "lazy.zarr")
            if inference:
                with torch.inference_mode():  # a caller under inference mode changes nothing
                    rec.record(0)
            else:
                rec.record(0)
        elif caller == "lie":
            lie_derivative(model, _probe(), ANGLES)
        else:
            with pytest.raises(AssertionError):
                assert_equivariant(model, ACTION, _probe())
        assert not torch.is_inference(model[0].table)
        assert not torch.is_inference(model[0].scale)
    for step in range(1, 4):
        loss = model(torch.randn(8, 1, 8, 8)).pow(2).mean()  # dropout draws from the RNG
        opt.zero_grad()
        loss.backward()
        opt.step()
        if rec is not None:
            rec.record(step)
    if rec is not None:
        rec.close()
    return _state(model)


@pytest.mark.parametrize(
    ("caller", "inference"),
    [("recorder", False), ("recorder", True), ("lie", False), ("testing", False)],
)
def test_lazily_built_state_stays_trainable_and_training_is_unchanged(tmp_path, caller, inference):
    plain = _train(False, tmp_path)
    measured = _train(True, tmp_path, caller, inference)
    _assert_same_state(plain, measured)  # bit-identical: no RNG draw, no state change


class Boom(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Linear(64, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.body(x.flatten(1))
        raise RuntimeError("boom")


def test_hooks_removed_and_modes_restored_when_the_forward_raises(tmp_path):
    model = Boom()
    model.body.eval()
    with pytest.raises(RuntimeError, match="boom"):
        _record(model, ["body"], tmp_path)
    assert not model.body._forward_hooks
    assert model.training and not model.body.training
    seen = []
    with pytest.raises(RuntimeError, match="boom"):
        with protected_call(model, hooks={model.body: seen.append}):
            model(_probe())
    assert len(seen) == 1 and not model.body._forward_hooks
    assert torch.is_grad_enabled()


def test_lie_derivative_of_a_train_mode_model_is_its_eval_answer_and_changes_nothing():
    """Dropout/BN noise divided by 2 eps would swamp the derivative of an invariant model."""
    yy, xx = torch.meshgrid(torch.arange(8.0) - 3.5, torch.arange(8.0) - 3.5, indexing="ij")
    window = torch.exp(-(yy**2 + xx**2) / 6.0)

    class Radial(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.bn = nn.BatchNorm1d(1)
            self.drop = nn.Dropout(0.3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.drop(self.bn((x[:, 0] * window).sum((1, 2))[:, None]))

    torch.manual_seed(0)
    model = Radial()
    model(torch.randn(16, 1, 8, 8))
    x = _probe(8)
    model.eval()
    d_eval = lie_derivative(model, x, ANGLES)
    model.train()
    before = _state(model)
    d_train = lie_derivative(model, x, ANGLES)
    assert torch.equal(d_eval, d_train)  # the same eval-mode computation
    _assert_same_state(before, _state(model))
    assert model.training and model.bn.training


def test_assert_equivariant_keeps_a_frozen_submodule_frozen():
    """Issue 12: ``module.train(was_training)`` used to reset every submodule to the top flag."""
    model = Net()
    model.body.eval()  # frozen backbone, training head
    with pytest.raises(AssertionError):
        assert_equivariant(model, ACTION, _probe())
    assert model.training and model.head.training
    assert not model.body.training and not model.body.bn.training


def test_protected_call_refuses_a_hook_on_a_non_module():
    with pytest.raises(TypeError, match=r"torch\.nn\.Module"):
        with protected_call(Net(), hooks={"body": print}):
            pass
