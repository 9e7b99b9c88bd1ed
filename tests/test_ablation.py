"""probes.irrep_ablation and probes.isotypic_components: a network computing through one irrep
only loses everything when that irrep is excluded and nothing when any other is; projections
are idempotent, mutually annihilating and sum to the identity."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import probes
from latentgeo.actions import ImageTranslations, PointCloudRotations
from latentgeo.groups import SO3, Cyclic, Dihedral, DirectProduct

TOL = 1e-10  # float64 round-off of projections over at most a few hundred elements


class FourierPower(torch.nn.Module):
    """``|DFT_k(h)|²`` of a length-8 signal: invariant to cyclic shifts, and a function of the
    frequency-``k`` part of ``h`` only."""

    def __init__(self, k: int, w: int = 8) -> None:
        super().__init__()
        j = torch.arange(w, dtype=torch.float64)
        self.register_buffer("c", torch.cos(2 * torch.pi * k * j / w))
        self.register_buffer("s", torch.sin(2 * torch.pi * k * j / w))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        h = h.reshape(h.shape[0], -1)
        return ((h @ self.c) ** 2 + (h @ self.s) ** 2)[:, None]


def _mse(y: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    return ((y - t) ** 2).mean()


def test_a_network_through_one_frequency_needs_that_irrep_only() -> None:
    act = ImageTranslations(1, 8)  # C1 x C8 on (n, 1, 1, 8) "images": cyclic shifts of 8
    net = torch.nn.Sequential(torch.nn.Identity(), FourierPower(2))
    x = torch.randn(16, 1, 1, 8, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    with torch.no_grad():
        target = net(x)
    ds = probes.irrep_ablation(
        net, "0", act, x, target, _mse, sets={"key": ["AxE2"], "others": ["AxE1", "AxE3", "AxB"]}
    )
    scale = float((target**2).mean())  # the loss of predicting 0
    assert float(ds.loss) < TOL * scale
    exc = ds.excluded_loss.to_series()
    res = ds.restricted_loss.to_series()
    assert exc["AxE2"] == pytest.approx(scale, rel=1e-12)
    assert np.abs(exc.drop("AxE2").to_numpy()).max() < TOL * scale
    assert res["AxE2"] < TOL * scale
    assert res.drop("AxE2").to_numpy() == pytest.approx(scale, rel=1e-12)
    assert float(ds.trivial_loss) == pytest.approx(scale, rel=1e-12)
    sr, se = ds.set_restricted_loss.to_series(), ds.set_excluded_loss.to_series()
    assert sr["key"] < TOL * scale and se["others"] < TOL * scale
    assert se["key"] == pytest.approx(scale, rel=1e-12)
    assert sr["others"] == pytest.approx(scale, rel=1e-12)


class Norms(torch.nn.Module):
    def forward(self, p: torch.Tensor) -> torch.Tensor:
        return (p * p).sum(dim=(-2, -1))[:, None]


def test_continuous_group_by_harmonic_degree() -> None:
    """Rotated point clouds: coordinates are degree-1 functions of the rotation, so the
    squared norm (computed from them) lives on degree 1 alone."""
    act = PointCloudRotations(SO3(), n_elements=80, seed=1)
    net = torch.nn.Sequential(torch.nn.Identity(), Norms())
    x = torch.randn(6, 5, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    with torch.no_grad():
        target = net(x)
    ds = probes.irrep_ablation(net, "0", act, x, target, _mse, max_degree=2)
    scale = float((target**2).mean())
    assert list(ds.irrep.values) == ["1", "2", "residual"]
    assert ds.excluded_loss.sel(irrep="1") == pytest.approx(scale, rel=1e-9)
    assert float(ds.excluded_loss.sel(irrep=["2", "residual"]).max()) < TOL * scale
    assert float(ds.restricted_loss.sel(irrep="1")) < TOL * scale
    assert float(ds.energy.sel(irrep="1")) == pytest.approx(1.0, rel=1e-9)


@pytest.mark.parametrize("group", [Cyclic(6), Dihedral(4), DirectProduct(Cyclic(2), Cyclic(3))])
def test_finite_projections_are_idempotent_orthogonal_and_complete(group) -> None:
    eye = torch.eye(group.order, dtype=torch.float64)
    names, P = probes.isotypic_components(eye, group)  # P[r] is the projector matrix
    assert len(names) == len(group.irreps())
    assert torch.allclose(P.sum(0), eye, atol=TOL, rtol=0)
    for a in range(len(names)):
        assert torch.allclose(P[a] @ P[a], P[a], atol=TOL, rtol=0)
        assert torch.allclose(P[a], P[a].T, atol=TOL, rtol=0)
        for b in range(a + 1, len(names)):
            assert torch.allclose(P[a] @ P[b], torch.zeros_like(eye), atol=TOL, rtol=0)


def test_continuous_projections_are_idempotent_and_complete() -> None:
    act = PointCloudRotations(SO3(), n_elements=80, seed=3)
    n = act.order
    eye = torch.eye(n, dtype=torch.float64)
    names, P = probes.isotypic_components(eye, SO3(), act.element_values, max_degree=2)
    assert names == ["0", "1", "2", "residual"]
    assert torch.allclose(P.sum(0), eye, atol=TOL, rtol=0)
    for a in range(len(names)):
        assert torch.allclose(P[a] @ P[a], P[a], atol=TOL, rtol=0)
        for b in range(len(names)):
            if a != b:
                assert torch.allclose(P[a] @ P[b], torch.zeros_like(eye), atol=TOL, rtol=0)


def test_ablation_errors() -> None:
    from latentgeo.actions import ElementSubset, ImageRotations

    net = torch.nn.Sequential(torch.nn.Identity(), FourierPower(2))
    x = torch.randn(4, 1, 1, 8, dtype=torch.float64)
    t = torch.zeros(4, 1, dtype=torch.float64)
    act = ImageTranslations(1, 8)
    with pytest.raises(ValueError, match="not non-trivial irreps"):
        probes.irrep_ablation(net, "0", act, x, t, _mse, sets={"k": ["AxA"]})
    with pytest.raises(ValueError, match="targets must have shape"):
        probes.irrep_ablation(net, "0", act, x, torch.zeros(3, 1), _mse)
    with pytest.raises(TypeError, match="targets"):
        probes.irrep_ablation(net, "0", act, x, np.zeros((4, 1)), _mse)
    sub = ElementSubset(ImageRotations("C4"), n_elements=2)
    with pytest.raises(ValueError, match="whole orbit"):
        probes.irrep_ablation(net, "0", sub, torch.randn(2, 1, 8, 8), t[:2], _mse)
