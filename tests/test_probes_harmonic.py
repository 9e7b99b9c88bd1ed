"""Harmonic least-squares spectra on continuous groups: planted irreps, Haar energies,
centring, residual, the FFT on a uniform SO(2) grid, default degree and errors."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from numpy.testing import assert_allclose

import probes
from latentgeo.groups import O2, O3, SO2, SO3, harmonic_basis, resolve_max_degree


def _planted(G, name, elements, n=40, units=3, seed=0):
    """z_u(g·x_i) = w_uᵀ ρ(g) v_i: one irrep's matrix entries, known Haar energy."""
    rng = np.random.default_rng(seed)
    rho = G.irrep(name)
    v = rng.normal(size=(n, rho.dim))
    W = rng.normal(size=(rho.dim, units))
    Z = np.einsum("gij,nj,iu->gnu", rho(elements), v, W, optimize=True)
    # Haar norm of g ↦ aᵀρ(g)b is |a|²|b|²/d (Schur orthogonality).
    energy = (v**2).sum(1)[:, None] * (W**2).sum(0)[None, :] / rho.dim
    return Z, energy


@pytest.mark.parametrize(
    ("G", "names"),
    [
        (SO3(), ["0", "1", "2", "3", "4"]),
        (O3(), ["0o", "1o", "1e", "2e", "2o", "3o"]),
        (O2(), ["A2", "E1", "E2", "E4"]),
    ],
    ids=repr,
)
def test_planted_irreps_land_on_their_irrep(G, names):
    g = G.sample(1024, 1)
    g[0] = G.identity
    for name in names:
        Z, _ = _planted(G, name, g)
        spec = probes.orbit_spectrum(Z, G, g)
        assert spec.irrep.values[-1] == "residual"
        assert_allclose(float(spec.sum()), 1.0, rtol=1e-12)
        expected = (spec.irrep.values == name).astype(float)
        assert_allclose(spec.values, expected, atol=1e-10, err_msg=name)


def test_mixture_shares_are_haar_energies():
    G = SO3()
    g = G.sample(600, 2)
    parts = {"1": 1.0, "2": 0.5, "3": 2.0}
    Z = 0
    energies = {}
    for k, (name, scale) in enumerate(parts.items()):
        Zl, e = _planted(G, name, g, seed=k)
        Z = Z + scale * Zl
        energies[name] = scale**2 * e.sum()
    total = sum(energies.values())
    spec = probes.orbit_spectrum(Z, G, g, max_degree=3)
    for name, e in energies.items():
        assert_allclose(float(spec.sel(irrep=name)), e / total, rtol=1e-10)
    assert float(spec.sel(irrep="0")) < 1e-12 and float(spec.sel(irrep="residual")) < 1e-12


def test_invariant_share_is_haar_not_sampled_mean():
    # A pure degree-2 signal on few elements: the sampled orbit means are not zero, and
    # centring by them would report a false invariant share; the Haar share is exactly 0.
    G = SO3()
    g = G.sample(120, 3)
    Z, _ = _planted(G, "2", g, n=200)
    naive = probes.invariance(Z)  # finite-group formula: the mean over sampled elements
    assert naive > 1e-4
    assert probes.invariance(Z, G, g, max_degree=2) < 1e-12
    # Invariant latents plus a degree-1 part: the invariant share is their Haar share.
    rng = np.random.default_rng(4)
    h = rng.normal(size=(200, 3))
    Z1, e1 = _planted(G, "1", g, n=200, seed=5)
    Zi = np.broadcast_to(h, Z1.shape) + Z1
    inv = ((h - h.mean(0)) ** 2).sum()
    spec = probes.orbit_spectrum(Zi, G, g, max_degree=2)
    assert_allclose(float(spec.sel(irrep="0")), inv / (inv + e1.sum()), rtol=1e-10)
    assert_allclose(probes.invariance(Zi, G, g, max_degree=2), float(spec[0]), rtol=1e-12)


def test_residual_holds_degrees_above_the_fit():
    G = SO3()
    g = G.sample(512, 6)
    Z, _ = _planted(G, "5", g)
    spec = probes.orbit_spectrum(Z, G, g, max_degree=2)
    # Degree 5 is Haar-orthogonal to degrees <= 2: on 512 elements only a little leaks.
    assert float(spec.sel(irrep="residual")) > 0.9


def test_so2_uniform_grid_equals_fft():
    rng = np.random.default_rng(7)
    n = 24
    theta = SO2().grid(n)
    Z = rng.normal(size=(n, 30, 4)) + np.cos(3 * theta)[:, None, None]
    L = 5
    spec = probes.orbit_spectrum(Z, SO2(), theta, max_degree=L)
    Zc = Z - Z.mean(axis=(0, 1))
    power = (np.abs(np.fft.rfft(Zc, axis=0)) ** 2).sum(axis=(1, 2))
    power[1 : (n + 1) // 2] *= 2  # k and n - k
    power /= power.sum()
    assert list(spec.irrep.values) == ["A", "E1", "E2", "E3", "E4", "E5", "residual"]
    assert_allclose(spec.values[: L + 1], power[: L + 1], atol=1e-13)
    assert_allclose(float(spec.sel(irrep="residual")), power[L + 1 :].sum(), atol=1e-13)


def test_default_degree_and_warning():
    assert resolve_max_degree(SO3(), SO3().sample(512, 0)) == 4  # 165 functions, 330 needed
    assert resolve_max_degree(SO3(), SO3().sample(64, 0)) == 1  # 35 functions need 70
    assert resolve_max_degree(O3(), O3().sample(512, 0)) == 3  # per det component
    assert resolve_max_degree(SO2(), SO2().grid(16)) == 3  # 7 functions need 14
    g = SO3().sample(64, 0)
    with pytest.warns(UserWarning, match=r"max_degree=3 .*84 basis functions.*168.*64"):
        resolve_max_degree(SO3(), g, 3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert resolve_max_degree(SO3(), g, 1) == 1
    with pytest.raises(ValueError, match="max_degree"):
        resolve_max_degree(SO3(), g, -1)
    # The basis is Haar-orthonormal: its empirical Gram matrix tends to the identity.
    B, owner = harmonic_basis(SO2(), SO2().grid(32), 3)
    assert_allclose(B.T @ B / 32, np.eye(B.shape[1]), atol=1e-12)
    assert owner.tolist() == [0, 1, 1, 2, 2, 3, 3]


def test_continuous_spectrum_needs_elements():
    Z = np.random.default_rng(0).normal(size=(10, 5, 2))
    with pytest.raises(TypeError, match="elements="):
        probes.orbit_spectrum(Z, SO3())
    with pytest.raises(TypeError, match="elements="):
        probes.invariance(Z, O2())
    with pytest.raises(ValueError, match="10 elements"):
        probes.orbit_spectrum(Z, SO3(), SO3().sample(9, 0))


def test_float32_and_zero_signal():
    G = O2()
    g = G.sample(64, 0)
    Z, _ = _planted(G, "E2", g)
    spec = probes.orbit_spectrum(Z, G, g, dtype=torch.float32)
    assert_allclose(float(spec.sel(irrep="E2")), 1.0, rtol=1e-4)
    zero = probes.orbit_spectrum(np.zeros((64, 3, 2)), G, g)
    assert float(zero[0]) == 1.0 and float(zero.sum()) == 1.0


def test_run_on_so2_store_without_element_values(tmp_path):
    # A store that records SO2 but no element values (indices only): its orbit axis was the
    # uniform grid, which the runner recovers; the spectrum goes through the harmonic path.
    from latentgeo.store import RunWriter

    n = 16
    theta = SO2().grid(n)
    rng = np.random.default_rng(0)
    amp = rng.normal(size=(50, 2))
    Z = np.stack([amp @ SO2().irrep("E2")(t) for t in theta])  # (16, 50, 2)
    meta = {"elements": [f"g{k}" for k in range(n)], "group": "SO2", "probe": {"n_samples": 50}}
    path = tmp_path / "so2.zarr"
    with RunWriter(path, meta=meta) as w:
        w.ensure_layers({"h": {"feature_shape": [2], "n_units": 2, "dtype": "float64"}})
        w.append(0, {"h": Z})
    ds = probes.run(path, probes=("spectrum", "invariance"), progress=False, cache=False)
    assert list(ds.irrep.values) == ["A", "E1", "E2", "E3", "residual"]
    assert_allclose(ds.spectrum.sel(layer="h", step=0, irrep="E2"), 1.0, atol=1e-12)
    assert_allclose(ds.invariance.sel(layer="h", step=0), 0.0, atol=1e-12)
    with pytest.raises(ValueError, match="need a finite group"):
        probes.run(path, probes=("homomorphism",), progress=False, cache=False)


def test_chunked_fit_and_offsets_do_not_change_the_spectrum(monkeypatch):
    import latentgeo.groups._harmonic as core

    G = SO3()
    g = G.sample(300, 9)
    Z, _ = _planted(G, "2", g, n=30, units=5)
    Z = Z + 0.3 * _planted(G, "1", g, n=30, units=5, seed=1)[0]
    whole = probes.orbit_spectrum(Z, G, g, max_degree=2).values
    monkeypatch.setattr(core, "_CHUNK_VALUES", 300 * 5)  # chunks of one sample each
    chunked = probes.orbit_spectrum(Z + 1e4 * np.arange(5), G, g, max_degree=2).values
    assert_allclose(chunked, whole, atol=1e-10)
