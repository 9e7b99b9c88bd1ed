"""Attribution, irrep ablation and discovery over saved checkpoints: each step equals the
direct call on that checkpoint's weights, the model's weights come back, the results are
cached in a real run store, and the figures draw them."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import latentgeo
import probes
from latentgeo import plot
from latentgeo.actions import ImageRotations, ImageTranslations
from tests.test_ablation import FourierPower, _mse
from tests.test_attribution import LAYERS, _cnn, _images


def _save_scaled(model: torch.nn.Module, folder, name: str, scales: dict[int, float]) -> None:
    """Checkpoints ``step=N.pt`` whose parameter ``name`` is scaled by ``scales[N]``."""
    folder.mkdir()
    for step, s in scales.items():
        state = {k: v.clone() for k, v in model.state_dict().items()}
        state[name] = state[name] * s
        torch.save(state, folder / f"step={step}.pt")


def test_attribution_over_training_grows_with_the_planted_bias(tmp_path) -> None:
    net = _cnn("bias")
    before = {k: v.clone() for k, v in net.state_dict().items()}
    _save_scaled(net, tmp_path / "ckpt", "2.pos", {0: 0.0, 10: 0.5, 20: 1.0})
    action = ImageRotations("C4")
    x = _images()
    run = latentgeo.record_checkpoints(
        net, tmp_path / "ckpt", ["0", "4"], action, x, tmp_path / "run.zarr"
    )
    ds = probes.attribution_over_training(net, tmp_path / "ckpt", action, x, LAYERS, run=run)
    assert list(ds.step.values) == [0, 10, 20]
    for k, v in net.state_dict().items():  # the caller's weights are back
        assert torch.equal(v, before[k])
    # step 20 holds the model's own weights: the same numbers as the direct call.
    direct = probes.equivariance_attribution(net, action, x, LAYERS)
    np.testing.assert_allclose(
        ds.contribution.sel(step=20).values, direct.contribution.values, rtol=1e-12, atol=1e-15
    )
    assert float(ds.total.sel(step=0).sum()) < 1e-12  # no bias: invariant
    c = ds.contribution.sum("element").sel(layer="2").values
    assert c[0] < c[1] < c[2]
    cached = run.load_analysis("attribution")
    assert cached is not None
    np.testing.assert_allclose(cached.contribution.values, ds.contribution.values)
    fig = plot.attribution(cached)
    assert len(fig.axes[0].images) == 1
    fig = plot.attribution(direct, element="r")
    assert len(fig.axes[0].patches) == len(LAYERS) + 1
    with pytest.raises(ValueError, match="unknown element"):
        plot.attribution(direct, element="nope")


def test_ablation_and_discovery_over_training(tmp_path) -> None:
    net = torch.nn.Sequential(torch.nn.Linear(8, 8, bias=False), FourierPower(2)).double()
    with torch.no_grad():
        net[0].weight.copy_(torch.eye(8, dtype=torch.float64))
    act = ImageTranslations(1, 8)
    x = torch.randn(12, 1, 1, 8, generator=torch.Generator().manual_seed(0), dtype=torch.float64)

    class Flat(torch.nn.Module):
        def __init__(self, inner: torch.nn.Module) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, z: torch.Tensor) -> torch.Tensor:
            return self.inner(z.flatten(1))

    model = Flat(net)
    _save_scaled(model, tmp_path / "ckpt", "inner.0.weight", {0: 0.5, 5: 1.0})
    with torch.no_grad():
        target = model(x)
    ds = probes.ablation_over_training(
        model, tmp_path / "ckpt", "inner.0", act, x, target, _mse, sets={"key": ["AxE2"]}
    )
    assert list(ds.step.values) == [0, 5]
    assert float(ds.loss.sel(step=5)) < 1e-20 < float(ds.loss.sel(step=0))
    assert float(ds.set_excluded_loss.sel(step=5, set="key")) == pytest.approx(
        float((target**2).mean()), rel=1e-12
    )
    fig = plot.irrep_losses(ds)
    assert len(fig.axes[0].lines) == 2 * (ds.sizes["irrep"] + 1) + 1

    disc = probes.discovery_over_training(
        model,
        tmp_path / "ckpt",
        "inner.0",
        ImageRotations("C2"),
        torch.randn(20, 1, 1, 8, dtype=torch.float64),
    )
    assert list(disc.step.values) == [0, 5]
    assert "invariant_name" in disc and disc.attrs["kind"] == "finite"
