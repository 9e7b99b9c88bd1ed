"""Intervals of continuous groups' shares account for the draw of Haar-random elements.

``OrbitEnergies.intervals`` adds the delete-one-element jackknife variance of the pooled
shares to the percentile bootstrap over probe samples where the orbit's elements are a random
sample of the group (``latentgeo._bootstrap.add_jackknife_variance``); finite groups' whole
orbits, orbits over a given set of elements and quadrature grids keep the bootstrap alone.

Coverage bound (as in ``tests/test_calibration.py``): over ``N`` independent draws the
coverage of a calibrated 95% interval is Binomial(N, 0.95) / N with sd
``sqrt(0.95 · 0.05 / N)``; the tests require at least ``0.95 − 2 sd`` (one-sided, ~2.3%
chance for a calibrated interval; seeds fixed, so deterministic).  N = 120: 0.910.
"""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pytest

from latentgeo._bootstrap import add_jackknife_variance
from latentgeo.datasets.planted import planted_harmonic, planted_latents
from latentgeo.groups import (
    O3,
    SO2,
    SO3,
    Dihedral,
    FallbackWarning,
    finite_energies,
    harmonic_basis,
    harmonic_energies,
    resolve_max_degree,
    subset_energies,
)
from latentgeo.groups._element_jackknife import pooled_energies
from trajectories import spectrum_with_ci

CONFIDENCE = 0.95
SO2_ENERGIES = {"A": 0.3, "E1": 0.4, "E2": 0.3}
SO3_ENERGIES = {"0": 0.3, "1": 0.4, "2": 0.3}


def lower_band(n_draws: int) -> float:
    return CONFIDENCE - 2.0 * np.sqrt(CONFIDENCE * (1 - CONFIDENCE) / n_draws)


def _energies(group, p, degree=None):
    with warnings.catch_warnings():  # few elements: the documented fallback to degree 0
        warnings.simplefilter("ignore", FallbackWarning)
        degree = resolve_max_degree(group, p.elements) if degree is None else degree
    return harmonic_energies(p.Z, group, p.elements, degree), degree


@pytest.mark.parametrize(
    ("group", "energies", "n_el"), [(SO2(), SO2_ENERGIES, 4), (SO3(), SO3_ENERGIES, 8)]
)
def test_few_element_invariance_interval_covers_the_haar_share(group, energies, n_el):
    # Low noise and 256 samples: the setting where the spread over the draw of elements
    # dominates; the bootstrap over samples alone covered 0.285 (SO2, 4 elements) and 0.595
    # (SO3, 8) here.  One interval per draw: 120 draws, lower band 0.910.
    hits = []
    for seed in range(120):
        p = planted_harmonic(group, energies, 256, n_el, 0.2, seed=seed, n_units=4)
        e, _ = _energies(group, p)
        ci = e.intervals(100, CONFIDENCE, np.random.default_rng(seed))
        hits.append(ci[0, 0] <= p.invariance <= ci[0, 1])
    assert np.mean(hits) >= lower_band(len(hits)), np.mean(hits)


def test_interval_widens_when_fewer_elements_are_sampled():
    # The same 128 samples recorded at 48 Haar-random elements and at the first 6 of them,
    # both fitted at degree 0: the element-sampling variance scales like 1/m, so the interval
    # at 6 elements is wider in every one of 10 draws; and both contain the interval of the
    # bootstrap over samples alone (same resamples), which the element variance only widens.
    group = SO2()
    for seed in range(10):
        p = planted_harmonic(group, SO2_ENERGIES, 128, 48, 0.3, seed=seed, n_units=4)
        widths = []
        for m in (48, 6):
            few = dataclasses.replace(p, Z=p.Z[:m], elements=p.elements[:m])
            e, _ = _energies(group, few, degree=0)
            ci = e.intervals(100, CONFIDENCE, np.random.default_rng(seed))
            boot = dataclasses.replace(e, element_sample=None).intervals(
                100, CONFIDENCE, np.random.default_rng(seed)
            )
            assert np.all(ci[:, 0] <= boot[:, 0] + 1e-12) and np.all(ci[:, 1] >= boot[:, 1] - 1e-12)
            widths.append(ci[0, 1] - ci[0, 0])
        assert widths[1] > widths[0], (seed, widths)


@pytest.mark.parametrize(
    ("group", "energies", "n_el"),
    [
        (SO2(), SO2_ENERGIES, 5),
        (SO2(), SO2_ENERGIES, 32),
        (SO3(), SO3_ENERGIES, 40),
        (O3(), {"0e": 0.3, "0o": 0.2, "1o": 0.3, "1e": 0.2}, 30),
    ],
)
def test_jackknife_rows_are_the_fit_without_each_element(group, energies, n_el):
    # Each jackknife row (from the pooled element Gram matrix) equals the core's pooled
    # energies refitted on the latents with that element removed, at the same degree; and the
    # Gram formula reproduces the full fit.  float64 throughout: 1e-10 of the total energy.
    p = planted_harmonic(group, energies, 48, n_el, 0.4, seed=5, n_units=3)
    e, degree = _energies(group, p)
    assert e.jackknife is not None and e.jackknife.shape == (n_el, len(e.names))
    scale = float(e.total.sum())
    for k in (0, n_el // 2, n_el - 1):
        keep = np.delete(np.arange(n_el), k)
        direct = harmonic_energies(p.Z[keep], group, p.elements[keep], degree)
        np.testing.assert_allclose(
            e.jackknife[k], direct.energies.sum(0).numpy(), rtol=0, atol=1e-10 * scale
        )
    Y = p.Z - p.Z.mean(axis=(0, 1))
    mean = Y.mean(axis=1)
    B, owner = harmonic_basis(group, p.elements, degree)
    full = pooled_energies(np.einsum("gid,hid->gh", Y, Y), mean @ mean.T, Y.shape[1], B, owner)
    np.testing.assert_allclose(full, e.energies.sum(0).numpy(), rtol=0, atol=1e-10 * scale)


def test_too_few_elements_give_nan_and_a_warning():
    # Degree 0 fits one function; leaving one of 2 elements out leaves no residual degree of
    # freedom to debias with: no interval, and the warning names the cause and the remedy.
    group = SO2()
    p = planted_harmonic(group, SO2_ENERGIES, 64, 2, 0.3, seed=0, n_units=4)
    e, degree = _energies(group, p)
    assert degree == 0 and e.jackknife is None and e.jackknife_note is not None
    with pytest.warns(FallbackWarning, match=r"2 Haar-random elements.*at least 3 elements"):
        ci = e.intervals(50, CONFIDENCE, np.random.default_rng(0))
    assert np.isnan(ci).all()
    # The point estimate is still reported, and with n_bootstrap=0 nothing is asked: no warning.
    assert np.isfinite(e.invariance())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert np.isnan(e.intervals(0, CONFIDENCE, None)).all()
    # Three elements are enough.
    p3 = planted_harmonic(group, SO2_ENERGIES, 64, 3, 0.3, seed=0, n_units=4)
    e3, _ = _energies(group, p3)
    assert np.isfinite(e3.intervals(50, CONFIDENCE, np.random.default_rng(0))).all()


def test_singular_leave_one_out_fit_gives_nan_and_a_warning():
    # O(3) at degree 0 fits the constant and det; an element alone on its component makes
    # the leave-one-out basis singular.
    group = O3()
    p = planted_harmonic(group, {"0e": 0.5, "0o": 0.5}, 32, 12, 0.3, seed=1, n_units=2)
    det = np.sign(np.linalg.det(p.elements))
    lone = np.flatnonzero(det < 0)[0]
    keep = np.concatenate([np.flatnonzero(det > 0), [lone]])
    e = harmonic_energies(p.Z[keep], group, p.elements[keep], 0)
    assert e.jackknife is None
    with pytest.warns(FallbackWarning, match="linearly dependent"):
        assert np.isnan(e.intervals(50, CONFIDENCE, np.random.default_rng(0))).all()


def test_quadrature_grid_keeps_the_bootstrap_interval():
    # A uniform SO(2) grid integrates the fitted harmonics exactly: no element sampling.
    group = SO2()
    p = planted_harmonic(group, SO2_ENERGIES, 64, 16, 0.3, seed=2, n_units=4)
    grid = group.grid(16)
    e = harmonic_energies(p.Z, group, grid, 4)
    assert e.jackknife is None and e.jackknife_note is None


def test_add_jackknife_variance_limits():
    # No spread over the second sample: the bootstrap interval unchanged.  A spread with no
    # bootstrap width: est ± t_{m-1} sqrt(v_J) (Welch-Satterthwaite dof m - 1).
    from scipy.stats import t as student_t

    est = np.array([0.3, 0.7])
    boot = np.array([[0.25, 0.36], [0.64, 0.75]])
    same = np.tile(est, (5, 1))
    np.testing.assert_allclose(add_jackknife_variance(est, boot, same, 0.95), boot, atol=1e-15)
    reps = est + np.array([[0.01, -0.01], [-0.02, 0.02], [0.0, 0.0], [0.03, -0.03]])
    v_j = 3 / 4 * ((reps - reps.mean(0)) ** 2).sum(0)
    half = student_t.ppf(0.975, 3) * np.sqrt(v_j)
    out = add_jackknife_variance(est, np.stack([est, est], 1), reps, 0.95)
    np.testing.assert_allclose(out, np.stack([est - half, est + half], 1), atol=1e-15)


# Seeded finite-group intervals as computed before this change (main at 881ed28): exact sums
# over the group's elements, no element sampling, so they must not move.
_D4_SPECTRUM_CI = np.array(
    [
        [0.1066342187948327, 0.17365628171817105],
        [0.13292904562085273, 0.22002983599737297],
        [0.10688319083338414, 0.165430173565542],
        [0.14466326216641137, 0.20106128152956318],
        [0.33336516214221845, 0.4218416359831929],
    ]
)
_D4_SUBSET_CI = np.array(
    [[0.3470531451561721, 0.42149973356819614], [0.5785002664318039, 0.6529468548438279]]
)


def test_finite_group_and_subset_intervals_are_unchanged():
    g = Dihedral(4)
    p = planted_latents(g, {r.name: 1 for r in g.irreps()}, 48, 0.4, seed=7, exact_moments=False)
    e = finite_energies(p.Z, g)
    assert e.jackknife is None and e.jackknife_note is None
    np.testing.assert_allclose(
        e.intervals(100, 0.95, np.random.default_rng(3)), _D4_SPECTRUM_CI, rtol=0, atol=1e-14
    )
    s = subset_energies(p.Z[[0, 2, 5]])
    assert s.jackknife is None
    np.testing.assert_allclose(
        s.intervals(100, 0.95, np.random.default_rng(3)), _D4_SUBSET_CI, rtol=0, atol=1e-14
    )
    _, _, ci = spectrum_with_ci(p.Z, g, n_bootstrap=100, random_state=3)
    np.testing.assert_allclose(ci, _D4_SPECTRUM_CI, rtol=0, atol=1e-14)


def test_probes_run_reports_the_element_sampling_interval(tmp_path):
    # probes.run's invariance/spectrum intervals on a real SO(3) store at Haar-random elements
    # are OrbitEnergies.intervals (bootstrap + element jackknife) with the run's settings;
    # at 2 elements they are NaN with the FallbackWarning naming the cause.
    import probes
    from latentgeo.store import RunWriter

    group = SO3()
    for n_el in (8, 2):
        p = planted_harmonic(group, SO3_ENERGIES, 64, n_el, 0.3, seed=4, n_units=3)
        meta = {
            "elements": [f"g{k}" for k in range(n_el)],
            "group": "SO3",
            "probe": {"n_samples": 64},
        }
        path = tmp_path / f"so3_{n_el}.zarr"
        with RunWriter(path, meta=meta) as w:
            w.ensure_layers({"h": {"feature_shape": [3], "n_units": 3, "dtype": "float64"}})
            w.write_element_values(p.elements)
            w.append(0, {"h": p.Z})
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            ds = probes.run(
                path,
                probes=("spectrum", "invariance"),
                linear={"n_bootstrap": 100, "random_state": 3},
                progress=False,
                cache=False,
            ).sel(layer="h", step=0)
        e, _ = _energies(group, p)
        expected = e.intervals(100, CONFIDENCE, np.random.default_rng(3)) if n_el == 8 else None
        if n_el == 8:
            np.testing.assert_allclose(
                [ds.invariance_low, ds.invariance_high], expected[0], rtol=0, atol=1e-12
            )
            np.testing.assert_allclose(ds.spectrum_low, expected[:, 0], rtol=0, atol=1e-12)
            assert expected[0, 1] - expected[0, 0] > 0
        else:
            assert np.isnan(float(ds.invariance_low)) and np.isnan(ds.spectrum_high).all()
            assert np.isfinite(float(ds.invariance))
            assert any("no interval for the shares" in str(w.message) for w in caught)


def test_point_estimate_fit_refuses_an_interval_it_cannot_give():
    # element_sample=False (live metrics, orbit_spectrum) skips the element Gram matrix: the
    # same shares, and intervals() answers NaN with a warning, never a bootstrap-only one.
    group = SO2()
    p = planted_harmonic(group, SO2_ENERGIES, 64, 12, 0.3, seed=3, n_units=4)
    full = harmonic_energies(p.Z, group, p.elements, 0)
    bare = harmonic_energies(p.Z, group, p.elements, 0, element_sample=False)
    np.testing.assert_array_equal(full.energies.numpy(), bare.energies.numpy())
    with pytest.warns(FallbackWarning, match="element_sample=False"):
        assert np.isnan(bare.intervals(50, CONFIDENCE, np.random.default_rng(0))).all()
