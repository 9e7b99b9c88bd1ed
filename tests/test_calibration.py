"""Calibration against analytic truth: planted truths, interval coverage, the sketched null.

The full grid (every group kind, sizes, noise levels, every interval) is
``benchmarks/calibration.py``, which writes ``docs/calibration.md``; here a test-sized grid.

Coverage bound.  A calibrated 95% interval contains its truth in each independent draw with
probability 0.95, so over ``N`` draws (one interval per draw, draws independent) the empirical
coverage is Binomial(N, 0.95) / N with standard deviation ``sqrt(0.95 · 0.05 / N)``; the tests
require coverage >= 0.95 − 2 sd (one-sided; a calibrated interval fails with probability
~2.3%; the seeds are fixed, so the outcome is deterministic).  N = 240 gives 0.922.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from latentgeo._bootstrap import delta_ratio_interval as ratio_interval
from latentgeo.datasets.planted import planted_harmonic, planted_latents
from latentgeo.groups import (
    O3,
    SO2,
    SO3,
    Cyclic,
    Dihedral,
    DirectProduct,
    FallbackWarning,
    Symmetric,
    harmonic_energies,
    orbit_energies,
    resolve_max_degree,
    subset_energies,
)
from probes import LinearProbe, orbit_spectrum, subgroup_scan
from probes._ridge import fit_design
from probes._scoring import r2_and_interval, r2_interval, variance_weighted_r2

CONFIDENCE = 0.95


def lower_band(n_draws: int) -> float:
    return CONFIDENCE - 2.0 * np.sqrt(CONFIDENCE * (1 - CONFIDENCE) / n_draws)


def all_irreps(group, copies=1):
    return {irrep.name: copies for irrep in group.irreps()}


# ---------------------------------------------------------------- planted truths
@pytest.mark.parametrize(
    "group", [Cyclic(5), Dihedral(4), Symmetric(3), DirectProduct(Cyclic(2), Cyclic(3))]
)
def test_true_linear_r2_is_the_population_r2_of_the_best_map(group):
    # Least squares on many independent samples converges to the best affine map, so its
    # in-sample R² converges to the true linear R² (1 − noise) at rate ~ sqrt(2 / (n d)):
    # n = 40000, d <= 10 units -> standard error <= 0.005 per element; 5 se = 0.025.
    p = planted_latents(group, all_irreps(group), 40_000, noise=0.3, seed=3, exact_moments=False)
    X = np.c_[p.Z[0], np.ones(p.Z.shape[1])]
    for g in range(group.order):
        coef = np.linalg.lstsq(X, p.Z[g], rcond=None)[0]
        resid = p.Z[g] - X @ coef
        r2 = 1 - (resid**2).sum() / ((p.Z[g] - p.Z[g].mean(0)) ** 2).sum()
        assert abs(r2 - p.r2[g]) < 0.025
    assert p.r2[group.identity] == 1.0


def test_map_r2_is_the_r2_of_the_map_on_fresh_samples():
    group = Dihedral(3)
    p = planted_latents(
        group, all_irreps(group, 2), 100_000, noise=0.4, seed=1, exact_moments=False
    )
    rng = np.random.default_rng(0)
    A = p.rho + 0.2 * rng.normal(size=p.rho.shape)
    b = 0.1 * rng.normal(size=p.rho.shape[:2])
    pred = np.einsum("gij,nj->gni", A, p.Z[0]) + b[:, None]
    emp = variance_weighted_r2(torch.as_tensor(p.Z), torch.as_tensor(pred)).numpy()
    # Ratio of two means over 1e5 samples of a 8-unit sum: relative se ~ sqrt(2 / (1e5 · 8))
    # ~ 0.0016 on each; the R² error is (1 − R²) times that, 5 se < 0.01.
    np.testing.assert_allclose(emp, p.map_r2(A, b), atol=0.01)
    np.testing.assert_allclose(p.map_r2(p.rho, np.zeros_like(b)), p.r2, atol=1e-12)
    pooled = p.pooled_map_r2([1, 2], A, b)
    err = ((p.Z[1:3] - pred[1:3]) ** 2).sum()
    tot = ((p.Z[1:3] - p.Z[1:3].mean(1, keepdims=True)) ** 2).sum()
    assert abs(pooled - (1 - err / tot)) < 0.01
    with pytest.raises(ValueError, match="shapes"):
        p.map_r2(A[:2], b)


def test_subgroup_invariance_truth_matches_a_large_sample():
    group = Dihedral(4)
    p = planted_latents(group, all_irreps(group), 50_000, noise=0.5, seed=2, exact_moments=False)
    scan = subgroup_scan(p.Z, group, n_bootstrap=0)
    truth = [p.subgroup_invariance(h) for h in group.subgroups(False)]
    # Ratios of means over 5e4 samples of 6 units: se ~ sqrt(2 / 3e5) ~ 0.003; 5 se ~ 0.013.
    np.testing.assert_allclose(scan.invariance.values, truth, atol=0.013)
    whole = next(h for h in group.subgroups(False) if h.order == group.order)
    trivial = float(p.spectrum.sel(irrep=group.irreps()[0].name))
    assert p.subgroup_invariance(whole) == pytest.approx(trivial, abs=1e-12)


# ---------------------------------------------------------------- R² intervals
SETTINGS = [  # (group, copies, n_samples, noise): 64 samples -> 16 held out
    (Cyclic(4), 1, 64, 0.5),
    (Dihedral(3), 2, 64, 0.2),
    (Cyclic(8), 1, 64, 0.8),
]
DRAWS = 80  # per setting: 240 draws in all


def test_r2_interval_covers_the_fitted_maps_population_r2():
    hits = []
    for group, copies, n, noise in SETTINGS:
        for seed in range(DRAWS):
            p = planted_latents(
                group, all_irreps(group, copies), n, noise, seed=seed, exact_moments=False
            )
            probe = LinearProbe(n_null=0, random_state=seed).fit(p.Z)
            g = 1 + seed % (group.order - 1)  # one element per draw: independent draws
            truth = p.map_r2(probe.rho_, probe.bias_)[g]
            lo, hi = probe.r2_ci_[g]
            hits.append(lo <= truth <= hi)
            assert lo <= probe.r2_[g] <= hi  # the interval contains the reported estimate
    assert np.mean(hits) >= lower_band(len(hits)), np.mean(hits)


def test_subgroup_scan_intervals_cover_pooled_r2_and_invariance():
    hits, inv_hits = [], []
    for group, copies, n, noise in SETTINGS[:2]:
        subs = [h for h in group.subgroups(False) if 1 < h.order]
        for seed in range(60):  # 120 draws: lower band 0.910
            p = planted_latents(
                group, all_irreps(group, copies), n, noise, seed=seed, exact_moments=False
            )
            h = subs[seed % len(subs)]
            # n_bootstrap only switches the intervals on (the R² interval is analytic).
            scan = subgroup_scan(p.Z, group, subgroups=[h], random_state=seed, n_bootstrap=1)
            # The scan fits on grand-mean-centred latents: move the intercepts back.
            mean = p.Z.mean(axis=(0, 1))
            inner = LinearProbe(n_null=0, n_bootstrap=0, random_state=seed).fit(p.Z - mean)
            bias = inner.bias_ + mean - inner.rho_ @ mean
            others = [g for g in h.elements if g != group.identity]
            truth = p.pooled_map_r2(others, inner.rho_, bias)
            hits.append(float(scan.r2_low[0]) <= truth <= float(scan.r2_high[0]))
            inv = p.subgroup_invariance(h)
            inv_hits.append(float(scan.invariance_low[0]) <= inv <= float(scan.invariance_high[0]))
    assert np.mean(hits) >= lower_band(len(hits)), np.mean(hits)
    assert np.mean(inv_hits) >= lower_band(len(inv_hits)), np.mean(inv_hits)


def test_held_out_r2_is_biased_low_for_the_best_map_when_the_fit_is_poor():
    # 30 units on 48 training samples: the fitted map is far from the best one, and the
    # documented bias (held-out R² below the true linear R²) is large; the interval still
    # covers the fitted map's own R².
    group = Symmetric(3)
    r2, best, fitted = [], [], []
    for seed in range(40):
        p = planted_latents(group, all_irreps(group, 10), 64, 0.5, seed=seed, exact_moments=False)
        probe = LinearProbe(n_null=0, n_bootstrap=0, random_state=seed).fit(p.Z)
        r2.append(probe.r2_[1:])
        best.append(p.r2[1:])
        fitted.append(p.map_r2(probe.rho_, probe.bias_)[1:])
    bias = np.mean(np.array(r2) - np.array(best))
    # The held-out R² tracks the fitted map (unbiased up to the (1 − R²)/(n_test − 1) of the
    # n_test denominator, ~0.05 here, and its 0.02 standard error over 200 values) and sits
    # far below the best map.
    assert bias < -0.15
    assert abs(np.mean(np.array(r2) - np.array(fitted))) < 0.1


def test_r2_interval_edge_cases():
    Y = torch.zeros(2, 10, 3, dtype=torch.float64)
    Y[1] = torch.randn(10, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    ci = r2_interval(Y, Y.clone(), 0.9)  # exact predictions: degenerate at 1
    np.testing.assert_array_equal(ci.numpy(), np.ones((2, 2)))
    r2, ci = r2_and_interval(Y[:, :2], Y[:, :2] + 1, 0.9)  # 2 held-out samples: no interval
    assert torch.isnan(ci).all() and r2.shape == (2,)
    r2, ci = r2_and_interval(Y, Y + 0.1, None)
    assert torch.isnan(ci).all()
    np.testing.assert_allclose(r2.numpy(), variance_weighted_r2(Y, Y + 0.1).numpy())


def test_ratio_interval_is_exact_for_proportional_terms_and_matches_the_delta_method():
    den = torch.tensor([[1.0, 2.0, 3.0, 4.0]], dtype=torch.float64)
    r, lo, hi = ratio_interval(0.25 * den, den, 0.95)  # num = 0.25 den: no spread at all
    assert float(r) == pytest.approx(0.25) and float(lo) == float(hi) == pytest.approx(0.25)
    rng = np.random.default_rng(0)
    a, b = rng.gamma(2.0, size=500), rng.gamma(3.0, size=500)
    r, lo, hi = ratio_interval(torch.as_tensor(a), torch.as_tensor(b), 0.9)
    # Delta method written out: Var(ā/b̄) ≈ Var(a − r b) / (n b̄²).
    ratio = a.mean() / b.mean()
    se = np.sqrt(np.var(a - ratio * b, ddof=1) / 500) / b.mean()
    from scipy.stats import t

    assert float(hi - lo) == pytest.approx(2 * t.ppf(0.95, 499) * se, rel=1e-12)
    r, lo, hi = ratio_interval(torch.zeros(1, 3), torch.zeros(1, 3), 0.9)
    assert torch.isnan(torch.stack([r, lo, hi])).all()


# ---------------------------------------------------------------- the float32 null
@pytest.mark.parametrize("copies", [1, 12])
def test_float32_null_lies_inside_the_exact_nulls_interval(copies):
    group = Cyclic(4)
    for seed in range(4):
        p = planted_latents(
            group, all_irreps(group, copies), 128, 0.5, seed=seed, exact_moments=False
        )
        probe = LinearProbe(n_null=1, null="permutation", random_state=seed).fit(p.Z)
        Z = torch.as_tensor(p.Z)
        tr = torch.as_tensor(probe.train_index_)
        te = torch.as_tensor(probe.test_index_)
        perm = torch.as_tensor(probe.null_permutations_[0])
        design = fit_design(Z[0, tr])
        DB, b, _, _ = probe._fit_targets(
            design, Z.permute(1, 0, 2)[perm[tr]].clone(), torch.as_tensor(probe.alphas_)
        )
        pred = probe._predict_projected(Z[0, te] @ design.Vt.T, DB, b)
        exact, ci = r2_and_interval(Z[:, perm[te]], pred, CONFIDENCE)
        ci = ci.numpy()
        # Inside the exact null's interval (up to the float32 tolerance below: the exact null
        # can sit on the interval's lower end, which extends down to the estimate).
        assert np.all((ci[:, 0] - 1e-4 <= probe.null_r2_) & (probe.null_r2_ <= ci[:, 1]))
        # Float32 round-off of ratios of sums over 32 x 48 values: ~1e-6; the penalty choice
        # is the same, so the two nulls agree to float32 accuracy (1e-4 leaves room for the
        # float32 GCV choosing a neighbouring penalty at a near tie, which it does not here).
        np.testing.assert_allclose(probe.null_r2_, exact.numpy(), atol=1e-4)


# ---------------------------------------------------------------- continuous groups, subsets
SO2_ENERGIES = {"A": 0.3, "E1": 0.4, "E2": 0.3}


def test_planted_harmonic_truth_matches_a_plain_fourier_transform():
    # On a uniform grid of 16 angles the DFT is an exact quadrature of degrees <= 7, so the
    # Haar energies of each sample's (noise-free) orbit are read off the FFT, independently
    # of the package's estimator.  Ratios of means over 10000 samples of 4 units: relative
    # se ~ sqrt(2 / 4e4) ~ 0.007 per energy, a share's error <= 0.004; 0.01 is >= 2.5 se of
    # the worst case (and 5 se of the typical share 0.3).
    group = SO2()
    p = planted_harmonic(group, SO2_ENERGIES, 10_000, 16, 0.0, seed=1, elements=group.grid(16))
    F = np.fft.rfft(p.Z, axis=0) / 16  # (9, n, d)
    inv = np.abs(F[0] - F[0].mean(axis=0)) ** 2
    energy = [inv.sum()] + [2 * (np.abs(F[m]) ** 2).sum() for m in (1, 2, 3)]
    total = ((p.Z - p.Z.mean(axis=(0, 1))) ** 2).sum() / 16
    truth = p.spectrum(3)
    np.testing.assert_allclose(np.array(energy) / total, truth.values[:4], atol=0.01)
    assert float(truth.sel(irrep="residual")) == pytest.approx(0.0, abs=1e-12)
    assert p.invariance == pytest.approx(0.3)


@pytest.mark.parametrize(
    "group, energies, n_el, degree",
    [
        (SO3(), {"0": 0.3, "1": 0.4, "2": 0.3}, 80, 2),
        (O3(), {"0e": 0.3, "0o": 0.2, "1o": 0.5}, 96, 1),
    ],
)
def test_harmonic_spectrum_recovers_the_planted_one(group, energies, n_el, degree):
    # Every planted irrep within the fitted degree (which the elements support, 2x
    # oversampled: no warning): the debiased harmonic fit is unbiased given the elements, and
    # over 3000 samples of 4 units each share's se is ~ sqrt(2 / 12000) ~ 0.013 of its
    # value (<= 0.5) plus the noise's: 0.03 is >= 4 se.  (At a degree below the planted
    # irreps, one draw of elements moves the shares by more: the calibration's few-element
    # rows measure that spread.)
    p = planted_harmonic(group, energies, 3000, n_el, 0.3, seed=2)
    with warnings.catch_warnings():
        warnings.simplefilter("error", FallbackWarning)
        assert resolve_max_degree(group, p.elements, degree) == degree
        spec = orbit_spectrum(p.Z, group, p.elements, max_degree=degree)
    np.testing.assert_allclose(spec.values, p.spectrum(degree).values, atol=0.03)


@pytest.mark.parametrize(
    "group, energies, n_el",
    [
        (SO2(), SO2_ENERGIES, 4),
        (SO2(), {"E1": 0.5, "E2": 0.5}, 2),  # no invariant part: the plain mean reads ~1/2
        (SO3(), {"0": 0.3, "1": 0.4, "2": 0.3}, 6),
    ],
)
def test_haar_invariant_share_is_unbiased_at_few_elements(group, energies, n_el):
    # Degree 0 (few elements, a FallbackWarning): the U-statistic of the orbit minus the mean
    # orbit is exactly unbiased over Haar-random elements; the ratio over 256 samples adds
    # O(1/(n d)) ~ 1e-3.  300 independent draws: |mean - truth| <= 4 se (se from the draws)
    # + 0.002.  (Debiasing with the uncentred residual read 0.113 for a truth of 0.15 at 4
    # SO(2) elements, ~9 se.)  The ratio of the pooled energies is the unbiased one: the
    # reported share clamps a negative pooled energy at 0, so for a truth of 0 its mean is
    # above 0 by construction.
    est = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FallbackWarning)
        for seed in range(300):
            p = planted_harmonic(group, energies, 256, n_el, 0.3, seed=seed)
            e = orbit_energies(p.Z, group, p.elements)
            est.append(float(e.energies[:, 0].sum() / e.total.sum()))
    se = np.std(est, ddof=1) / np.sqrt(len(est))
    assert abs(np.mean(est) - p.invariance) <= 4 * se + 0.002, (np.mean(est), p.invariance, se)


def _coverage(draw, n_draws):
    hits = [draw(seed) for seed in range(n_draws)]
    return float(np.mean(hits)), lower_band(n_draws)


def test_harmonic_intervals_cover_the_planted_shares():
    # probes.run's intervals (OrbitEnergies.intervals: percentile bootstrap over samples plus
    # the element jackknife's variance) at the degree it resolves; many elements (degree 4 on
    # SO(2)).  Few elements: tests/test_element_sampling.py.  One part per draw (cycled)
    # keeps the draws independent: 150 draws, lower band 0.914.
    group = SO2()

    def draw(seed):
        p = planted_harmonic(group, SO2_ENERGIES, 128, 32, 0.5, seed=seed)
        degree = resolve_max_degree(group, p.elements)
        energies = harmonic_energies(p.Z, group, p.elements, degree)
        ci = energies.intervals(200, CONFIDENCE, np.random.default_rng(seed))
        k = seed % 3  # A, E1, E2
        return ci[k, 0] <= p.spectrum(degree).values[k] <= ci[k, 1]

    cov, band = _coverage(draw, 150)
    assert cov >= band, cov


def test_subset_invariance_interval_covers_the_planted_truth():
    # An orbit recorded on 3 random elements of D4 (a run over a subset): probes.run's
    # invariance interval; 150 draws, lower band 0.914.
    group = Dihedral(4)

    def draw(seed):
        p = planted_latents(group, all_irreps(group), 128, 0.5, seed=seed, exact_moments=False)
        rng = np.random.default_rng(seed)
        S = np.sort(rng.choice(group.order, size=3, replace=False))
        energies = subset_energies(p.Z[S])
        ci = energies.intervals(200, CONFIDENCE, rng)
        return ci[0, 0] <= p.subset_invariance(S) <= ci[0, 1]

    cov, band = _coverage(draw, 150)
    assert cov >= band, cov


def test_subset_invariance_truth():
    group = Dihedral(4)
    clean = planted_latents(group, all_irreps(group), 100, 0.0, seed=0, exact_moments=False)
    for h in group.subgroups(False):  # without noise: the subgroup's own orbit = its cosets'
        assert clean.subset_invariance(h.elements) == pytest.approx(
            clean.subgroup_invariance(h), abs=1e-12
        )
    p = planted_latents(group, all_irreps(group), 60_000, 0.5, seed=1, exact_moments=False)
    S = [1, 4, 6]
    Y = p.Z[S] - p.Z[S].mean(axis=(0, 1))
    plain = 3 * (Y.mean(axis=0) ** 2).sum() / (Y**2).sum()
    # Ratio of means over 6e4 samples of 6 units: se ~ sqrt(2 / 3.6e5) ~ 0.0024; 5 se.
    assert plain == pytest.approx(p.subset_invariance(S), abs=0.012)
    with pytest.raises(ValueError, match="distinct"):
        p.subset_invariance([1, 1])
    with pytest.raises(ValueError, match="distinct"):
        p.subset_invariance([8])


def test_planted_harmonic_rejects_bad_input():
    with pytest.raises(TypeError, match="continuous"):
        planted_harmonic(Cyclic(4), {"A": 1.0}, 10, 4)
    with pytest.raises(ValueError, match="unknown irreps"):
        planted_harmonic(SO3(), {"E1": 1.0}, 10, 4)
    with pytest.raises(ValueError, match=">= 0"):
        planted_harmonic(SO2(), {"A": -1.0}, 10, 4)
    with pytest.raises(ValueError, match="noise"):
        planted_harmonic(SO2(), {"A": 1.0}, 10, 4, noise=1.0)
