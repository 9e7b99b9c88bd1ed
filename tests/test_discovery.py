"""probes.discover_symmetry: planted invariances inside the affine algebra of the plane and
inside gl(3) are recovered exactly (dimension, subspace, name, closure); a generic network
gives the zero algebra; noise shows in the spectrum; finite groups share the result type."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import probes
from latentgeo.actions import ImageRotations
from latentgeo.groups import Dihedral


class Moments(torch.nn.Module):
    """``[Σ x, Σ |p|² x]`` over pixel positions ``p`` from the image centre.  With images
    that vanish near the border, summation by parts against the bicubic derivative stencil
    makes both exactly invariant under the rotation generator and, together, under nothing
    else in aff(2) (Σ x is kept by every area-preserving flow, Σ|p|²x only by rotations)."""

    def __init__(self, size: int) -> None:
        super().__init__()
        u = torch.arange(size, dtype=torch.float64) + 0.5 - size / 2
        self.register_buffer("r2", u[None, :] ** 2 + u[:, None] ** 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([x.sum(dim=(-3, -2, -1)), (x * self.r2).sum(dim=(-3, -2, -1))], -1)


def _blobs(n: int, size: int = 12, margin: int = 3, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.zeros(n, 1, size, size, dtype=torch.float64)
    x[..., margin:-margin, margin:-margin] = torch.rand(
        n, 1, size - 2 * margin, size - 2 * margin, generator=g, dtype=torch.float64
    )
    return x


def _rotation_net() -> torch.nn.Sequential:
    torch.manual_seed(0)
    return torch.nn.Sequential(Moments(12), torch.nn.Linear(2, 4), torch.nn.Tanh()).double()


def test_rotation_invariant_images_give_exactly_so2() -> None:
    res = probes.discover_symmetry(_rotation_net(), "2", "affine2", _blobs(40))
    assert res.kind == "lie_algebra"
    assert res.ambient == ("t_x", "t_y", "rotation", "scaling", "shear", "stretch")
    inv = res.invariant
    assert inv.name == "so(2)" and inv.dimension == 1
    assert abs(inv.basis[0]) == pytest.approx(np.eye(6)[2], abs=1e-10)
    assert inv.singular_values[0] < 1e-10 < 1e-2 < inv.singular_values[1]
    assert inv.closure_error is None  # one element: nothing to bracket


def test_moments_are_equivariant_under_rotations_and_scalings() -> None:
    """Layer 0 is linear in the image: scaling maps its moments linearly into each other,
    so so(2) ⊕ scalings is the equivariant subalgebra (a latent operator exists)."""
    res = probes.discover_symmetry(_rotation_net(), "0", "affine2", _blobs(40))
    assert res.invariant.name == "so(2)"
    eq = res.equivariant
    assert eq.name == "so(2) ⊕ scalings" and eq.dimension == 2
    assert eq.closure_error == pytest.approx(0.0, abs=1e-12)  # [rotation, scaling] = 0


class NormalisedGram(torch.nn.Module):
    """``<p_i, p_j> / Σ_k |p_k|²``: invariant to rotations and to scaling, nothing else."""

    def forward(self, p: torch.Tensor) -> torch.Tensor:
        gram = p @ p.transpose(-1, -2)
        return (gram / (p * p).sum(dim=(-2, -1))[:, None, None]).flatten(1)


class Noisy(torch.nn.Module):
    def __init__(self, eps: float) -> None:
        super().__init__()
        self.w = torch.randn(
            15, 25, generator=torch.Generator().manual_seed(5), dtype=torch.float64
        )
        self.eps = eps

    def forward(self, p: torch.Tensor) -> torch.Tensor:
        return NormalisedGram()(p) + self.eps * p.flatten(1) @ self.w


def _clouds(n: int = 40) -> torch.Tensor:
    return torch.randn(n, 5, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64)


def test_rotation_and_scale_invariant_point_clouds_give_so3_plus_scalings() -> None:
    net = torch.nn.Sequential(NormalisedGram())
    res = probes.discover_symmetry(net, "0", "gl3", _clouds())
    inv = res.invariant
    assert inv.dimension == 4 and inv.name == "so(3) ⊕ scalings"
    assert inv.closure_error == pytest.approx(0.0, abs=1e-12)
    assert inv.singular_values[3] < 1e-10 and inv.singular_values[4] > 1e-2


def test_generic_network_gives_the_zero_algebra() -> None:
    torch.manual_seed(2)
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(15, 4), torch.nn.Tanh()).double()
    res = probes.discover_symmetry(net, "2", "gl3", _clouds())
    assert res.invariant.name == "zero" and res.invariant.dimension == 0
    assert res.equivariant.name == "zero" and res.equivariant.dimension == 0
    assert res.invariant.singular_values[0] > 1e-2


def test_noise_shows_in_the_spectrum() -> None:
    """Adding ``eps`` times a generic linear function of the input lifts the four null
    singular values in proportion to ``eps`` (first order in eps), so the spectrum says
    where the answer blurs: under ``tol`` the algebra is still found, over it not."""
    small = [
        probes.discover_symmetry(torch.nn.Sequential(Noisy(eps)), "0", "gl3", _clouds()).invariant
        for eps in (1e-6, 1e-5, 1.0)
    ]
    s6, s5 = small[0].singular_values[:4], small[1].singular_values[:4]
    assert s5 / s6 == pytest.approx(np.full(4, 10.0), rel=1e-3)
    assert small[0].name == "so(3) ⊕ scalings"
    assert small[2].dimension == 0 and small[2].name == "zero"


class C4Pool(torch.nn.Module):
    """Sum of a generic function over the four quarter turns: C4-invariant, not flip."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = torch.nn.Linear(64, 6).double()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return sum(
            torch.tanh(self.lin(torch.rot90(x, k, dims=(-2, -1)).flatten(1))) for k in range(4)
        )


def test_finite_groups_share_the_result_type() -> None:
    torch.manual_seed(3)
    net = torch.nn.Sequential(C4Pool())
    x = torch.randn(60, 1, 8, 8, dtype=torch.float64)
    res = probes.discover_symmetry(net, "0", ImageRotations(Dihedral(4)), x)
    assert isinstance(res, probes.SymmetryDiscovery)
    assert res.kind == "finite" and res.ambient == ("D4",)
    assert res.invariant.subgroups == ("C4",) and res.invariant.dimension == 4
    assert res.scan is not None


def test_discovery_errors() -> None:
    net = torch.nn.Sequential(NormalisedGram())
    with pytest.raises(ValueError, match="algebra must be"):
        probes.discover_symmetry(net, "0", "sl2", _clouds())
    with pytest.raises(ValueError, match="more samples than units"):
        probes.discover_symmetry(net, "0", "gl3", _clouds(10))
    with pytest.raises(ValueError, match="names must give"):
        probes.discover_symmetry(net, "0", [lambda x, t: x], _clouds(), names=["a", "b"])


def test_a_user_basis_with_matrices_checks_closure_and_names() -> None:
    """so(3) ⊕ shears given by the user: the invariant part of the normalised Gram matrix
    is the rotations, closed under the bracket, named from the user's ``known``."""
    from latentgeo.actions import PointCloudFamily, so3_basis

    shear = np.zeros((3, 3))
    shear[0, 1] = 1.0
    mats = np.concatenate([so3_basis(), shear[None], np.eye(3)[None]])
    fams = [PointCloudFamily(m) for m in mats]
    res = probes.discover_symmetry(
        torch.nn.Sequential(NormalisedGram()), "0", fams, _clouds(),
        names=["Lx", "Ly", "Lz", "shear", "scale"], matrices=mats,
        known={"rotations": np.eye(5)[:3], "rotations + scale": np.eye(5)[[0, 1, 2, 4]]},
    )  # fmt: skip
    assert res.ambient == ("Lx", "Ly", "Lz", "shear", "scale")
    assert res.invariant.name == "rotations + scale" and res.invariant.dimension == 4
    assert res.invariant.closure_error == pytest.approx(0.0, abs=1e-12)
    # A subspace that is not a subalgebra shows a closure error: span{Lx, Ly} alone.
    from probes._discovery import _closure

    assert _closure(np.eye(5)[:2], mats) > 0.5
