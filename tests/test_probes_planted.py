"""Planted truth: spectrum, R², homomorphism error and multiplicities recovered for C_n, D_n,
a direct product and S_3; laws of the spectrum, invariance and characters."""

import numpy as np
import pytest
import torch

import probes
from latentgeo.datasets.planted import planted_latents
from latentgeo.groups import Cyclic, Dihedral, DirectProduct, Symmetric

GROUPS = [Cyclic(6), Dihedral(4), DirectProduct(Cyclic(2), Cyclic(4)), Symmetric(3)]


def _multiplicities(G):
    # Every irrep planted, with different multiplicities (1, 2, 3, 1, 2, 3, ...).
    return {irrep.name: i % 3 + 1 for i, irrep in enumerate(G.irreps())}


@pytest.mark.parametrize("G", GROUPS, ids=lambda G: G.spec)
def test_planted_exact(G):
    p = planted_latents(G, _multiplicities(G), n_samples=600, seed=1)
    # The dataset itself: Z[g] = rho[g] Z[e] and rho is an exact homomorphism.
    np.testing.assert_allclose(p.Z, np.einsum("gij,nj->gni", p.rho, p.Z[0]), atol=1e-12)
    assert probes.homomorphism_error(p.rho, G).max < 1e-12

    spec = probes.orbit_spectrum(p.Z, G)
    assert list(spec.irrep.values) == [irrep.name for irrep in G.irreps()]
    np.testing.assert_allclose(spec.values, p.fractions.values, atol=1e-10)
    np.testing.assert_allclose(float(spec[0]), probes.invariance(p.Z), atol=1e-12)

    lin = probes.LinearProbe(n_null=1, n_bootstrap=0).fit(p.Z)
    np.testing.assert_allclose(lin.r2_, 1.0, atol=1e-8)
    assert probes.homomorphism_error(lin.rho_, G).max < 1e-6
    m = probes.character_multiplicities(lin.rho_, G)
    np.testing.assert_allclose(m.values, p.multiplicities.values, atol=1e-6)


@pytest.mark.parametrize("G", GROUPS, ids=lambda G: G.spec)
def test_planted_noisy(G):
    noise = 0.2
    p = planted_latents(G, _multiplicities(G), n_samples=6000, noise=noise, seed=2)
    spec = probes.orbit_spectrum(p.Z, G)
    np.testing.assert_allclose(spec.values, p.spectrum.values, atol=0.01)
    lin = probes.LinearProbe(n_null=1, n_bootstrap=0).fit(p.Z)
    # Held-out R² of every non-identity element is the signal share, 1 − noise.
    np.testing.assert_allclose(lin.r2_[1:], 1 - noise, atol=0.01)
    assert np.all(np.abs(lin.null_r2_) < 0.01)
    # Soft multiplicities: no longer integers, but the nearest integer is the planted one.
    m = probes.character_multiplicities(lin.rho_, G)
    assert np.any(np.abs(m.values - np.round(m.values)) > 1e-6)
    np.testing.assert_array_equal(np.round(m.values), p.multiplicities.values)
    assert probes.homomorphism_error(lin.rho_, G).mean > 1e-3


def test_planted_custom_fractions_and_validation():
    G = Dihedral(3)
    p = planted_latents(G, {"A1": 1, "E1": 2}, 300, fractions={"A1": 0.7, "E1": 0.3})
    np.testing.assert_allclose(probes.orbit_spectrum(p.Z, G).values, p.fractions.values, atol=1e-10)
    np.testing.assert_allclose(p.fractions.sel(irrep="A1"), 0.7)
    with pytest.raises(ValueError, match="unknown irreps"):
        planted_latents(G, {"Q": 1}, 100)
    with pytest.raises(ValueError, match="noise"):
        planted_latents(G, {"A1": 1}, 100, noise=1.0)
    with pytest.raises(ValueError, match="fraction"):
        planted_latents(G, {"A1": 1}, 100, fractions={"E1": 1.0})
    with pytest.raises(ValueError, match="exact_moments"):
        planted_latents(G, {"E1": 4}, 5)


@pytest.mark.parametrize("n", [5, 6])
def test_cyclic_spectrum_is_dft_power(rng, n):
    G = Cyclic(n)
    Z = rng.normal(size=(n, 30, 4)) + rng.normal(size=(1, 30, 4))
    spec = probes.orbit_spectrum(Z, G)
    F = np.fft.fft(Z - Z.mean(axis=(0, 1)), axis=0)
    power = (np.abs(F) ** 2).sum(axis=(1, 2))
    for irrep in G.irreps():
        # The frequency of a real irrep of C_n, read off its character at the generator.
        chi_r = irrep.character[1]
        k = round(np.arccos(np.clip(chi_r / irrep.dim, -1, 1)) * n / (2 * np.pi))
        freqs = {k % n, (-k) % n}
        expected = sum(power[f] for f in freqs) / power.sum()
        np.testing.assert_allclose(float(spec.sel(irrep=irrep.name)), expected, rtol=1e-10)


@pytest.mark.parametrize("G", GROUPS, ids=lambda G: G.spec)
def test_spectrum_laws_on_random_latents(rng, G):
    Z = rng.normal(size=(G.order, 25, 3)) * 3 + 1
    spec = probes.orbit_spectrum(Z, G)
    assert np.all(spec.values >= 0)
    np.testing.assert_allclose(float(spec.sum()), 1.0, rtol=1e-12)
    np.testing.assert_allclose(float(spec[0]), probes.invariance(Z), rtol=1e-10)
    # Invariant latents are all trivial; orbit-mean-free latents have none.
    inv = np.broadcast_to(Z[:1], Z.shape)
    np.testing.assert_allclose(probes.invariance(inv), 1.0, rtol=1e-12)
    assert probes.invariance(Z - Z.mean(axis=0, keepdims=True)) < 1e-12
    # The regular representation on the standard basis: the energies of the whole basis in
    # irrep ρ's part add up to its isotypic dimension dim ρ · dim ρ / k_ρ.
    reg = G.regular_representation()
    Zreg = np.einsum("gij,nj->gni", reg, np.eye(G.order))
    spec_reg = probes.orbit_spectrum(Zreg, G)
    dims = np.array([irrep.dim**2 / irrep.commutant_dim for irrep in G.irreps()])
    uncentred = dims.copy()
    uncentred[0] -= 1  # centring removes the grand mean, which lives in the trivial part
    np.testing.assert_allclose(spec_reg.values, uncentred / uncentred.sum(), atol=1e-12)


def test_circle_spectrum_on_uniform_grid(rng):
    from latentgeo.groups import SO2

    n = 16
    theta = 2 * np.pi * np.arange(n) / n
    amp = rng.normal(size=(40, 1))
    Z = np.stack([np.hstack([amp * np.cos(3 * t), amp * np.sin(3 * t)]) for t in theta])
    spec = probes.orbit_spectrum(Z, SO2(), theta)
    np.testing.assert_allclose(float(spec.sel(irrep="E3")), 1.0, rtol=1e-12)


def test_characters_of_known_representations():
    G = Dihedral(4)
    m = probes.character_multiplicities(G.regular_representation(), G)
    np.testing.assert_allclose(m.values, [irrep.dim // irrep.commutant_dim for irrep in G.irreps()])
    for irrep in G.irreps():
        m = probes.character_multiplicities(irrep.matrices, G)
        expected = [1.0 if other.name == irrep.name else 0.0 for other in G.irreps()]
        np.testing.assert_allclose(m.values, expected, atol=1e-12)


def test_homomorphism_error_matches_brute_force(rng):
    G = Symmetric(3)
    rho = G.irreps()[2].matrices + 0.05 * rng.normal(size=(6, 2, 2))
    err = probes.homomorphism_error(rho, G)
    brute = np.zeros((6, 6))
    for g in range(6):
        for h in range(6):
            gh = G.compose(g, h)
            brute[g, h] = np.linalg.norm(rho[g] @ rho[h] - rho[gh]) / np.linalg.norm(rho[gh])
    np.testing.assert_allclose(err.pairwise, brute, rtol=1e-12)
    assert err.mean == pytest.approx(brute.mean()) and err.max == pytest.approx(brute.max())
    assert err.worst == np.unravel_index(np.argmax(brute), brute.shape)
    assert float(err) == err.mean


def test_float32_spectrum_and_invariance(rng):
    G = Dihedral(4)
    p = planted_latents(G, _multiplicities(G), 500, noise=0.1)
    Z32 = p.Z.astype(np.float32)
    s64 = probes.orbit_spectrum(Z32, G)
    s32 = probes.orbit_spectrum(Z32, G, dtype=torch.float32)
    np.testing.assert_allclose(s32.values, s64.values, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(
        probes.invariance(Z32, dtype=torch.float32), probes.invariance(Z32), rtol=1e-4
    )


def test_wrong_number_of_elements(rng):
    G = Dihedral(4)
    Z = rng.normal(size=(4, 10, 3))
    with pytest.raises(ValueError, match=r"4 elements .* order 8"):
        probes.orbit_spectrum(Z, G)
    with pytest.raises(ValueError, match="order 8"):
        probes.homomorphism_error(rng.normal(size=(4, 3, 3)), G)
    with pytest.raises(ValueError, match="order 8"):
        probes.character_multiplicities(rng.normal(size=(4, 3, 3)), G)
    Z = rng.normal(size=(8, 10, 3))
    Z[3, 2, 1] = np.nan
    with pytest.raises(ValueError, match="non-finite"):
        probes.orbit_spectrum(Z, G)
    with pytest.raises(ValueError, match="non-finite"):
        probes.invariance(Z)
