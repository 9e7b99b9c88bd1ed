"""The group-Fourier core: laws, agreement with the per-sample projection, planted truths,
unbiased invariant shares of continuous groups at few elements, and bootstrap coverage."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from numpy.testing import assert_allclose

import probes
from latentgeo._bootstrap import bootstrap_counts, ratio_interval
from latentgeo.groups import (
    O2,
    SO2,
    SO3,
    Cyclic,
    Dihedral,
    DirectProduct,
    FallbackWarning,
    Quaternion,
    Symmetric,
    finite_energies,
    isotypic_energies,
    orbit_energies,
    project_isotypic,
    subset_energies,
)

FINITE = [Cyclic(8), Dihedral(4), Symmetric(4), Quaternion(), DirectProduct(Cyclic(2), Cyclic(3))]


def _centred(Z: np.ndarray) -> torch.Tensor:
    Zt = torch.as_tensor(Z, dtype=torch.float64)
    return Zt - Zt.mean(dim=(0, 1))


@pytest.mark.parametrize("G", FINITE, ids=repr)
def test_finite_laws_and_agreement_with_the_projection(G):
    rng = np.random.default_rng(0)
    Z = 5.0 + rng.normal(size=(G.order, 40, 6))
    e = finite_energies(Z, G)
    Zc = _centred(Z)
    # Per-sample energies equal <P_rho f_i, f_i> from the projector (float64 rounding).
    want = torch.stack(
        [(project_isotypic(G, rho, Zc) * Zc).sum(dim=(0, 2)) for rho in G.irreps()], dim=1
    )
    scale = float((Zc**2).sum())
    assert_allclose(e.energies.numpy(), want.numpy(), atol=1e-12 * scale)
    # Parseval: energies partition each sample's total, which is ||f_i||².
    assert_allclose(e.energies.sum(dim=1).numpy(), e.total.numpy(), atol=1e-12 * scale)
    assert_allclose(e.total.numpy(), (Zc**2).sum(dim=(0, 2)).numpy(), rtol=1e-12)
    shares = e.shares().numpy()
    assert_allclose(shares.sum(), 1.0, rtol=1e-14)
    # The trivial share is the invariance over the orbit; the pooled Gram gives the same.
    assert_allclose(e.invariance(), subset_energies(Z).invariance(), rtol=1e-12)
    flat = Zc.reshape(G.order, -1)
    names, pooled = isotypic_energies(G, flat @ flat.T)
    assert list(names) == list(e.names)
    assert_allclose(pooled.numpy(), e.energies.sum(dim=0).numpy(), atol=1e-12 * scale)


@pytest.mark.parametrize("G", FINITE[:3], ids=repr)
def test_isotypic_projectors_are_a_resolution_of_the_identity(G):
    f = torch.as_tensor(np.random.default_rng(1).normal(size=(G.order, 5)))
    parts = [project_isotypic(G, rho, f) for rho in G.irreps()]
    for rho, p in zip(G.irreps(), parts, strict=True):  # idempotent
        assert_allclose(project_isotypic(G, rho, p).numpy(), p.numpy(), atol=1e-12)
    assert_allclose(sum(parts).numpy(), f.numpy(), atol=1e-12)  # sum to the identity
    for i in range(len(parts)):  # mutually orthogonal
        for j in range(i):
            assert abs(float((parts[i] * parts[j]).sum())) < 1e-10


@pytest.mark.parametrize("G", FINITE, ids=repr)
def test_planted_irrep_lands_on_its_irrep(G):
    rng = np.random.default_rng(2)
    f = torch.as_tensor(rng.normal(size=(G.order, 30, 4)))
    for k, rho in enumerate(G.irreps()[1:], start=1):
        part = project_isotypic(G, rho, f)  # mean zero over the orbit: no centring effect
        expected = np.zeros(len(G.irreps()))
        expected[k] = 1.0
        assert_allclose(finite_energies(part + 3.0, G).shares().numpy(), expected, atol=1e-12)


def test_chunking_and_offsets_do_not_change_the_energies(monkeypatch):
    import latentgeo.groups._fourier as core

    G = Dihedral(4)
    rng = np.random.default_rng(3)
    Z = 1e3 + rng.normal(size=(8, 50, 7)) * rng.uniform(0.1, 2, size=7)
    whole = finite_energies(Z, G)
    for per_chunk in (1, 3, 50):
        monkeypatch.setattr(core, "_CHUNK_VALUES", 8 * 7 * per_chunk)
        got = finite_energies(Z, G)
        # Offsets 1e3 times the spread: relative error up to ~1e6 eps in the raw sums.
        assert_allclose(got.energies.numpy(), whole.energies.numpy(), atol=1e-8 * 50 * 7)


def test_offline_probes_call_the_core():
    G = Symmetric(3)
    Z = np.random.default_rng(4).normal(size=(6, 30, 3)).astype(np.float32)
    e = orbit_energies(Z, G)
    assert_allclose(probes.orbit_spectrum(Z, G).values, e.shares().numpy(), rtol=1e-12)
    assert_allclose(probes.invariance(Z), e.invariance(), rtol=1e-12)


# -- continuous groups: unbiased invariant share at few elements --------------------------


def _elements(G, n: int, rng: np.random.Generator) -> np.ndarray:
    if isinstance(G, O2):  # Haar-random, with both components sampled (half each)
        return _rotations(n, rng, reflect=n // 2)
    return G.sample(n, rng)


def _rotations(n: int, rng: np.random.Generator, reflect: int = 0) -> np.ndarray:
    t = rng.uniform(0, 2 * np.pi, size=n)
    g = np.stack([np.stack([np.cos(t), -np.sin(t)], -1), np.stack([np.sin(t), np.cos(t)], -1)], 1)
    g[:reflect] = g[:reflect] @ np.diag([1.0, -1.0])
    return g


def _planted(G, g: np.ndarray, share: float, noise: float, rng, n: int = 200, d: int = 3):
    """Orbit latents with Haar-invariant variance ``share`` and equivariant variance
    ``1 - share`` per unit (the degree-1 irrep acting on a Gaussian vector), plus i.i.d.
    noise of variance ``noise²``: the true invariant share is ``share / (1 + noise²)``."""
    rho = next(r for r in G.irreps(1) if r.dim > 1)
    M = np.asarray(rho(g))  # (n_el, D, D) orthogonal
    v = rng.normal(size=(n, rho.dim, d))
    # E_g (rho(g) v)_0² = |v|² / D (Schur), E_v |v|² = D: unit Haar variance.
    equi = np.einsum("gj,njd->gnd", M[:, 0, :], v)
    inv = rng.normal(size=(1, n, d))
    Z = np.sqrt(share) * inv + np.sqrt(1.0 - share) * equi
    return Z + noise * rng.normal(size=Z.shape), share / (1.0 + noise**2)


@pytest.mark.parametrize("G", [SO2(), O2(), SO3()], ids=repr)
@pytest.mark.parametrize("share", [0.0, 0.5, 1.0])
def test_invariant_share_is_unbiased_at_few_elements(G, share):
    reps = 40
    for n_el in (4, 8, 16) if isinstance(G, O2) else (2, 4, 8, 16):
        rng = np.random.default_rng(n_el)
        est = []
        for _ in range(reps):
            g = _elements(G, n_el, rng)
            Z, truth = _planted(G, g, share, 0.3, rng)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FallbackWarning)
                e = orbit_energies(Z, G, g)
            # The unclamped pooled ratio (the clamp at 0 of the reported share is a bias of
            # its own at a true share of 0).
            est.append(float(e.energies[:, 0].sum() / e.total.sum()))
        est = np.asarray(est)
        # Under no bias the mean of `reps` independent estimates lies within 4 standard
        # errors of the truth (two-sided p < 1e-4), plus the O(1/n_samples) bias of a ratio
        # of unbiased sums (<= 1/200 here).
        tol = 4 * est.std(ddof=1) / np.sqrt(reps) + 1.0 / 200
        assert abs(est.mean() - truth) < tol, (n_el, est.mean(), truth, tol)
        # The plain element mean (today's fallback) would read about truth + (1-truth)/n.


def test_fallback_warns_exactly_when_it_happens():
    def caught(call):
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            call()
        return [str(x.message) for x in w if x.category is FallbackWarning]

    Z18 = np.random.default_rng(0).normal(size=(18, 20, 2))
    # Enough elements for the default degree: no warning; an explicit supported degree: none.
    assert caught(lambda: probes.orbit_spectrum(Z18, SO2(), SO2().grid(18))) == []
    assert caught(lambda: probes.orbit_spectrum(Z18[:8], SO2(), SO2().grid(8), 1)) == []
    # Default degree lowered: one warning naming what was asked, what was done, the remedy.
    (msg,) = caught(lambda: probes.invariance(Z18[:8], SO2(), SO2().grid(8)))
    assert "default max_degree is 4" in msg and "degree 1" in msg and "at least 18" in msg
    # One sampled component of O(2): the Haar mean over both cannot be fitted.
    rot = _rotations(6, np.random.default_rng(0))
    (msg,) = caught(lambda: probes.orbit_spectrum(Z18[:6], O2(), rot, 0))
    assert "1 of the 2 components" in msg
    # No residual degrees of freedom: not debiased, and said so.
    (msg,) = caught(lambda: probes.invariance(Z18[:1], SO3(), SO3().sample(1, 0), max_degree=0))
    assert "not debiased" in msg


def test_quadrature_grid_is_exact_and_random_elements_are_debiased():
    # On a uniform SO(2) grid the spectrum is the DFT: band-limited signals exactly.
    theta = 2 * np.pi * np.arange(12) / 12
    Z = np.stack([np.cos(theta), np.sin(2 * theta), np.ones(12)], axis=-1)[:, None, :]
    Z = Z * np.random.default_rng(0).normal(size=(1, 30, 1))
    spec = probes.orbit_spectrum(Z, SO2(), SO2().grid(12), max_degree=2)
    assert_allclose(spec.sel(irrep="residual"), 0.0, atol=1e-12)


# -- the one bootstrap --------------------------------------------------------------------


def test_bootstrap_counts_rows_sum_to_n_and_follow_the_rng():
    counts = bootstrap_counts(50, 17, np.random.default_rng(0))
    assert counts.shape == (50, 17) and (counts.sum(axis=1) == 17).all()
    draws = np.random.default_rng(0).integers(0, 17, size=(50, 17))
    assert_allclose(counts[3], np.bincount(draws[3], minlength=17))


def test_ratio_interval_coverage():
    # Per-sample (num, den) with a known population ratio 0.3: the 90% percentile interval
    # covers it at a rate within binomial bounds of 0.90 over 300 draws (±3 sd = ±0.052),
    # plus 0.02 for the percentile bootstrap's known O(1/n) undercoverage at n = 120.
    rng = np.random.default_rng(1)
    hits = 0
    draws = 300
    for _ in range(draws):
        den = rng.exponential(size=120)
        num = 0.3 * den + 0.2 * rng.normal(size=120) * np.sqrt(den)
        E = torch.as_tensor(np.stack([num, den - num], axis=1))
        lo, hi = ratio_interval(E, E.sum(dim=1), 400, 0.90, rng)[0]
        hits += lo <= 0.3 <= hi
    assert abs(hits / draws - 0.90) < 3 * np.sqrt(0.9 * 0.1 / draws) + 0.02


def test_probes_run_reports_intervals_from_the_one_bootstrap(tmp_path):
    # The "spectrum" and "invariance" kinds of probes.run carry percentile intervals over probe
    # samples, the same resamples (seed) as trajectories.spectrum_with_ci on the stored block.
    import trajectories
    from latentgeo.actions import ImageRotations
    from latentgeo.record import LatentRecorder
    from latentgeo.store import open_run

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(36, 5))
    x = torch.randn(40, 1, 6, 6, generator=torch.Generator().manual_seed(0))
    path = tmp_path / "run.zarr"
    with LatentRecorder(net, ["1"], ImageRotations(Cyclic(4)), x, path, dtype="float64") as rec:
        rec.record(0)
    run = open_run(path)
    res = probes.run(run, probes=("spectrum", "invariance"), cache=False, progress=False)
    at = res.sel(layer="1").isel(step=0)
    assert (at.spectrum_low <= at.spectrum).all() and (at.spectrum <= at.spectrum_high).all()
    assert at.invariance_low <= at.invariance <= at.invariance_high
    Z = run.latents("1").isel(step=0).values
    _, share, ci = trajectories.spectrum_with_ci(Z, Cyclic(4))
    assert_allclose(at.spectrum.values, share, rtol=1e-12)
    assert_allclose(at.spectrum_low.values, ci[:, 0], rtol=1e-12)
    assert_allclose(at.spectrum_high.values, ci[:, 1], rtol=1e-12)
    assert_allclose([at.invariance_low, at.invariance_high], ci[0], rtol=1e-12)
