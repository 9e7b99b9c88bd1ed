"""Live metrics on every kind of orbit the recorder writes, equal to ``probes.run`` offline.

Each case records a few steps with :class:`probes.LiveProbes` and compares every live value
with ``probes.run`` on the same store (both compute in float64 from the stored float64
latents, through the same group-Fourier core, so they agree to float64 rounding).  What an
orbit cannot give is refused at construction, never accepted and dropped.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from torch import nn

import probes
from latentgeo.actions import (
    ElementSubset,
    ImageRotationAngles,
    ImageRotations,
    PointCloudRotations,
)
from latentgeo.groups import SO3, Dihedral, FallbackWarning
from latentgeo.record import LatentRecorder
from latentgeo.store import open_run
from probes import LiveProbes

RTOL = 1e-9  # float64 on identical inputs; only the summation order differs
C4_IN_D4 = ["e", "r", "r2", "r3"]


class ImageNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 3, 3, padding=1)
        self.fc = nn.Linear(3 * 8 * 8, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.tanh(self.conv(x)).flatten(1))


class CloudNet(nn.Module):
    """Centroid (degree 1), spread (degree 0) and a non-linear mix (higher degrees)."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(3, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = x.mean(dim=-2)
        return torch.cat([c, (x**2).sum(dim=(-1, -2))[..., None], torch.tanh(self.fc(c))], -1)


def _record(tmp_path, model, layer, action, x, live, steps=(0, 1, 2)):
    path = tmp_path / "run.zarr"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FallbackWarning)
        with LatentRecorder(model, [layer], action, x, path, dtype="float64", live=live) as rec:
            for k in steps:
                rec.record(k)
                with torch.no_grad():
                    for p in model.parameters():
                        p.add_(
                            0.2 * torch.randn(p.shape, generator=torch.Generator().manual_seed(k))
                        )
    return open_run(path)


def _offline(run, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FallbackWarning)
        return probes.run(run, cache=False, progress=False, **kwargs)


def _compare(live, run, res, layer):
    assert [s for s, _ in live.history] == [int(s) for s in run.steps]
    for j, (_, metrics) in enumerate(live.history):
        at = res.sel(layer=layer).isel(step=j)
        if "invariance" in live.probes:
            np.testing.assert_allclose(
                metrics[f"latentgeo/{layer}/invariance"], float(at.invariance), rtol=RTOL
            )
        if "spectrum" in live.probes:
            for name in at.irrep.values:
                np.testing.assert_allclose(
                    metrics[f"latentgeo/{layer}/spectrum/{name}"],
                    float(at.spectrum.sel(irrep=name)),
                    rtol=RTOL,
                    atol=1e-12,
                    err_msg=str(name),
                )
        if "r2" in live.probes:
            r2 = at.r2.values[1:]  # non-identity elements
            np.testing.assert_allclose(metrics[f"latentgeo/{layer}/r2"], r2.mean(), rtol=RTOL)


@pytest.fixture(scope="module")
def images():
    return torch.randn(24, 1, 8, 8, generator=torch.Generator().manual_seed(1))


def test_whole_finite_orbit(tmp_path, images):
    torch.manual_seed(0)
    live = LiveProbes(["invariance", "spectrum", "r2"], r2_samples=24)
    run = _record(tmp_path, ImageNet(), "fc", ImageRotations(Dihedral(4)), images, live)
    res = _offline(run, probes=("invariance", "spectrum", "linear"))
    _compare(live, run, res, "fc")


def test_element_subset_invariance_and_r2(tmp_path, images):
    torch.manual_seed(0)
    action = ElementSubset(ImageRotations(Dihedral(4)), n_elements=6, seed=2)
    live = LiveProbes(["invariance", "r2"], r2_samples=24)
    run = _record(tmp_path, ImageNet(), "fc", action, images, live)
    with pytest.warns(UserWarning, match="need every element"):
        res = probes.run(
            run, probes=("invariance", "linear", "homomorphism"), cache=False, progress=False
        )
    _compare(live, run, res, "fc")


def test_element_subset_spectrum_refused_unless_a_subgroup(tmp_path, images):
    action = ElementSubset(ImageRotations(Dihedral(4)), n_elements=6, seed=2)
    with pytest.raises(ValueError, match=r"live spectrum needs.*not a subgroup.*subgroup="):
        LatentRecorder(ImageNet(), ["fc"], action, images, tmp_path / "x.zarr", live=LiveProbes())
    assert not (tmp_path / "x.zarr").exists()
    # A subgroup the orbit does not record is refused too, naming the missing elements.
    other = ElementSubset(ImageRotations(Dihedral(4)), n_elements=3, seed=0)
    missing = [e for e in C4_IN_D4 if e not in other.elements]
    live = LiveProbes(subgroup=C4_IN_D4)
    with pytest.raises(ValueError, match="were not recorded"):
        live.bind(other.group, other.element_values)
    assert missing


def test_named_subgroup_on_a_subset_orbit(tmp_path, images):
    torch.manual_seed(0)
    action = ElementSubset(ImageRotations(Dihedral(4)), n_elements=6, seed=2)
    assert set(C4_IN_D4) <= set(action.elements)
    live = LiveProbes(["invariance", "spectrum", "r2"], r2_samples=24, subgroup=C4_IN_D4)
    run = _record(tmp_path, ImageNet(), "fc", action, images, live)
    res = _offline(run, probes=("invariance", "spectrum", "linear"), subgroup=C4_IN_D4)
    assert list(res.irrep.values) == [n.split("/")[-1] for n in live.history[0][1] if "spec" in n]
    _compare(live, run, res, "fc")


def test_subset_forming_a_subgroup_gets_its_spectrum(tmp_path):
    # {e, r2} of C4 is the subgroup C2: the live spectrum is the C2 spectrum of that orbit.
    from latentgeo.groups import Cyclic

    live = LiveProbes(["invariance", "spectrum"])
    live.bind(Cyclic(4), np.array([0, 2]))
    z = np.random.default_rng(0).normal(size=(50, 3))
    out = live.compute(np.stack([z, -z]))
    assert out["invariance"] == pytest.approx(0.0, abs=1e-12)
    assert sum(v for k, v in out.items() if k.startswith("spectrum/")) == pytest.approx(1.0)
    assert max(v for k, v in out.items() if k.startswith("spectrum/")) == pytest.approx(1.0)


def test_so2_image_angles(tmp_path, images):
    torch.manual_seed(0)
    live = LiveProbes(["invariance", "spectrum", "r2"], r2_samples=24)
    run = _record(tmp_path, ImageNet(), "fc", ImageRotationAngles(12, group="SO2"), images, live)
    res = _offline(run, probes=("invariance", "spectrum", "linear"))
    assert res.irrep.values[-1] == "residual"
    _compare(live, run, res, "fc")


def test_so3_point_clouds(tmp_path):
    torch.manual_seed(0)
    x = torch.randn(24, 5, 3, dtype=torch.float64)
    live = LiveProbes(["invariance", "spectrum", "r2"], r2_samples=24)
    action = PointCloudRotations(SO3(), n_elements=40, seed=1)
    model = Wrapped(CloudNet().double())
    run = _record(tmp_path, model, "inner", action, x, live)
    res = _offline(run, probes=("invariance", "spectrum", "linear"))
    _compare(live, run, res, "inner")


def test_continuous_fallback_warns_at_bind_as_offline():
    # Whether a warning appears does not depend on the entry point: it is the core's.
    G = SO3()
    g = G.sample(16, 0)
    Z = np.random.default_rng(0).normal(size=(16, 30, 2))

    def messages(call):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            call()
        return sorted(str(w.message) for w in caught if w.category is FallbackWarning)

    live = messages(lambda: LiveProbes(["invariance"]).bind(G, g))
    inv = messages(lambda: probes.invariance(Z, G, g))
    spec = messages(lambda: probes.orbit_spectrum(Z, G, g))
    assert len(live) == 1 and live == inv == spec


class Wrapped(nn.Module):
    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x)
