"""Fitted maps: group-consistent and orthogonal probes, an exactly equivariant network,
the SO(2) generator probe and the Lie derivative."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import probes
from latentgeo.actions import ImageRotationAngles, ImageRotations
from latentgeo.datasets.planted import planted_latents
from latentgeo.groups import Cyclic, Dihedral, DirectProduct, Symmetric


@pytest.mark.parametrize(
    "G",
    [Cyclic(5), Dihedral(3), DirectProduct(Cyclic(2), Cyclic(3)), Symmetric(3)],
    ids=lambda G: G.spec,
)
def test_group_consistent_probe_recovers_planted(G):
    m = {irrep.name: 2 for irrep in G.irreps()}
    p = planted_latents(G, m, 400, seed=3)
    gc = probes.fit_from_generators(p.Z, G, n_bootstrap=0)
    # Only the generators were fitted; every other element is a product along its word.
    assert gc.generator_probe_.rho_.shape[0] == len(gc.generators_) + 1
    np.testing.assert_allclose(gc.r2_, 1.0, atol=1e-8)
    np.testing.assert_allclose(gc.rho_, p.rho, atol=1e-6)
    assert probes.homomorphism_error(gc.rho_, G).max < 1e-6


def test_group_consistent_is_worse_when_maps_are_not_a_representation(rng):
    # Each element acts by an unrelated linear map: the free fit explains it, the
    # representation built from the generators cannot.
    G = Cyclic(4)
    X = rng.normal(size=(400, 5))
    Z = np.stack([X] + [X @ rng.normal(size=(5, 5)) for _ in range(3)])
    free = probes.LinearProbe(n_null=0, n_bootstrap=0).fit(Z)
    gc = probes.GroupConsistentProbe(G, n_bootstrap=0).fit(Z)
    np.testing.assert_allclose(free.r2_, 1.0, atol=1e-8)
    np.testing.assert_allclose(gc.r2_[:2], 1.0, atol=1e-8)  # e and the generator r
    assert np.all(gc.r2_[2:] < 0.5)


def test_group_consistent_bad_generators():
    G = Cyclic(6)
    Z = np.zeros((6, 10, 2))
    with pytest.raises(ValueError, match="reach 3 of the 6"):
        probes.GroupConsistentProbe(G, generators=["r2"]).fit(Z + np.arange(10)[:, None])


def test_orthogonal_probe(rng):
    G = Dihedral(4)
    noise, shares = 0.1, {"A1": 0.05, "B2": 0.05, "E1": 0.9}
    p = planted_latents(G, {"A1": 1, "B2": 2, "E1": 3}, 3000, noise=noise, seed=4, fractions=shares)
    # The top-6 principal subspace is E1's (0.15 per unit against 0.05 and 0.025): an
    # invariant subspace, so the maps close in it.
    k = 6
    op = probes.OrthogonalProbe(rank=k, n_bootstrap=50).fit(p.Z)
    eye = np.eye(k)
    assert op.rho_.shape == (8, k, k)
    np.testing.assert_allclose(
        op.rho_ @ op.rho_.transpose(0, 2, 1), eye[None].repeat(8, 0), atol=1e-10
    )
    np.testing.assert_allclose(op.rho_[0], eye, atol=1e-10)
    # Each whitened E1 component has signal variance λ and noise τ²: R² = λ / (λ + τ²).
    lam, tau2 = 0.9 / 6, noise / (1 - noise) / 9
    np.testing.assert_allclose(op.r2_[1:], lam / (lam + tau2), atol=0.01)
    # The recovered maps are E1 ⊕ E1 ⊕ E1: characters give multiplicity 3 of E1 only.
    m = probes.character_multiplicities(op.rho_, G)
    np.testing.assert_array_equal(np.round(m.values), [0, 0, 0, 0, 3])
    assert np.all(op.r2_ci_[:, 0] <= op.r2_ci_[:, 1])
    with pytest.raises(ValueError, match="rank"):
        probes.OrthogonalProbe(rank=20).fit(p.Z)


def _c4_network(x, c=2, seed=0):
    """A C4-lifting convolution with tied (rotated) filters, pooled: exactly equivariant.

    Returns the latents of three layers: rotated feature maps with cyclically permuted
    channels, spatially pooled channels (regular representation), and the rotation-pooled
    invariant.
    """
    gen = torch.Generator().manual_seed(seed)
    w = torch.randn(c, 1, 3, 3, generator=gen, dtype=x.dtype)
    filters = torch.cat([torch.rot90(w, k, dims=(-2, -1)) for k in range(4)])
    h = torch.relu(F.conv2d(x, filters, padding=1))  # (n, 4c, H, W)
    pooled = h.mean(dim=(-2, -1))  # (n, 4c)
    invariant = pooled.reshape(-1, 4, c).mean(dim=1)
    return {"conv": h.flatten(1), "pool": pooled, "inv": invariant}


def test_exactly_equivariant_network_and_null(rng):
    action = ImageRotations(Cyclic(4))
    x = torch.as_tensor(rng.normal(size=(600, 1, 5, 5)))
    orbit = action.orbit(x)  # (4, n, 1, 5, 5)
    latents = [_c4_network(orbit[g]) for g in range(4)]
    perm = rng.permutation(600)
    for layer in ("conv", "pool", "inv"):
        Z = torch.stack([lat[layer] for lat in latents])
        probe = probes.LinearProbe(n_null=1, n_bootstrap=0).fit(Z)
        assert probe.r2_.min() > 0.999, layer
        if layer == "inv":
            assert probes.invariance(Z) > 1 - 1e-12
            continue
        # Latents of unrelated samples (re-paired by hand): the fit falls to the null level.
        Zu = Z.clone()
        Zu[1:] = Z[1:, perm]
        unrelated = probes.LinearProbe(n_null=1, n_bootstrap=0).fit(Zu)
        assert np.all(unrelated.r2_[1:] < 0.05) and np.all(unrelated.null_r2_ < 0.05)
        np.testing.assert_allclose(unrelated.r2_[1:], unrelated.null_r2_[1:], atol=0.05)


def _so2_planted(rng, freqs, angles, n, noise=0.0):
    d = sum(1 if k == 0 else 2 for k in freqs)
    Q = np.linalg.qr(rng.normal(size=(d, d)))[0]
    L = np.zeros((d, d))
    i = 0
    for k in freqs:
        if k:
            L[i : i + 2, i : i + 2] = [[0, -k], [k, 0]]
            i += 2
        else:
            i += 1
    L = Q @ L @ Q.T
    z0 = rng.normal(size=(n, d)) + 0.5
    mats = torch.linalg.matrix_exp(torch.as_tensor(angles)[:, None, None] * torch.as_tensor(L))
    Z = np.einsum("aij,nj->ani", mats.numpy(), z0)
    Z[np.abs(angles) > 0] += noise * rng.normal(size=Z[np.abs(angles) > 0].shape)
    return Z, L


ANGLES = np.concatenate([[0.0, 0.05, -0.05, 0.1, -0.1], np.linspace(0.6, 6.0, 7)])


def test_generator_probe_recovers_generator(rng):
    Z, L = _so2_planted(rng, [0, 1, 1, 2, 3], ANGLES, 400)
    gp = probes.GeneratorProbe(n_bootstrap=0).fit(Z, ANGLES)
    np.testing.assert_allclose(gp.generator_, L, atol=1e-6)
    np.testing.assert_allclose(gp.r2_, 1.0, atol=1e-8)
    np.testing.assert_allclose(
        gp.rho(ANGLES[6]),
        torch.linalg.matrix_exp(torch.as_tensor(ANGLES[6] * L)).numpy(),
        atol=1e-5,
    )


def test_generator_refinement_uses_large_angles(rng):
    Z, L = _so2_planted(rng, [1, 2], ANGLES, 300, noise=0.3)
    init = probes.GeneratorProbe(refine=False, n_bootstrap=0).fit(Z, ANGLES)
    refined = probes.GeneratorProbe(n_bootstrap=0).fit(Z, ANGLES)
    assert refined.loss_ < init.loss_
    err = lambda G: np.linalg.norm(G - L)  # noqa: E731
    assert err(refined.generator_) < err(refined.generator_init_)
    assert refined.r2_[5:].mean() > init.r2_[5:].mean()


def test_generator_probe_bad_angles(rng):
    Z = rng.normal(size=(3, 20, 2))
    with pytest.raises(ValueError, match="exactly one 0"):
        probes.GeneratorProbe().fit(Z, [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="small_angle"):
        probes.GeneratorProbe().fit(Z, [0.0, 1.0, 2.0])
    with pytest.raises(ValueError, match="one angle per element"):
        probes.GeneratorProbe().fit(Z, [0.0, 0.1])


class _Plane:
    """Rotation of planar point sets (n, 2), exact."""

    def rotate(self, x, angle):
        c, s = np.cos(angle), np.sin(angle)
        return x @ torch.tensor([[c, s], [-s, c]], dtype=x.dtype)


def test_lie_derivative_exact_action(rng):
    x = torch.as_tensor(rng.normal(size=(20, 2)))
    plane = _Plane()
    # Invariant function: zero derivative.
    inv = probes.lie_derivative(lambda p: p.norm(dim=1), x, plane, eps=1e-4)
    np.testing.assert_allclose(inv.numpy(), 0.0, atol=1e-10)
    # The identity function's derivative is the generator applied to x: J x, J = [[0,-1],[1,0]].
    d = probes.lie_derivative(lambda p: p, x, plane, eps=1e-4)
    Jx = torch.stack([-x[:, 1], x[:, 0]], dim=1)
    np.testing.assert_allclose(d.numpy(), Jx.numpy(), atol=1e-8)  # O(eps²) central difference
    # ... and it is equivariant: with the output rotated back the derivative vanishes.
    eq = probes.lie_derivative(lambda p: 2 * p, x, plane, eps=1e-4, out_action=plane)
    np.testing.assert_allclose(eq.numpy(), 0.0, atol=1e-9)


def test_lie_derivative_interpolated_images():
    action = ImageRotationAngles(8)
    n = 32
    yy, xx = torch.meshgrid(
        torch.arange(n) - (n - 1) / 2, torch.arange(n) - (n - 1) / 2, indexing="ij"
    )
    r2 = (xx**2 + yy**2).double()
    x = torch.exp(-r2 / 40)[None, None] * (1 + 0.3 * torch.sin(xx.double() / 3))[None, None]
    radial = torch.exp(-r2 / 60)
    tilted = radial * xx.double()
    inv = probes.lie_derivative(lambda im: (im * radial).sum(dim=(-2, -1)), x, action, eps=1e-2)
    non = probes.lie_derivative(lambda im: (im * tilted).sum(dim=(-2, -1)), x, action, eps=1e-2)
    assert inv.abs().max() < 0.05 * non.abs().max()


def test_lie_derivative_bad_input():
    with pytest.raises(TypeError, match="rotate"):
        probes.lie_derivative(lambda t: t, torch.zeros(2, 2), object())
    with pytest.raises(ValueError, match="eps"):
        probes.lie_derivative(lambda t: t, torch.zeros(2, 2), _Plane(), eps=0.0)
