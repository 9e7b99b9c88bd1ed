"""The R² interval of every probe that fits maps: the calibrated delta-method interval.

``OrthogonalProbe``, ``GroupConsistentProbe``, ``GeneratorProbe`` and ``LieAlgebraProbe`` give
``r2_ci_`` as ``LinearProbe`` does (:func:`probes._scoring.r2_interval`, an interval for the
population R² of the fitted map): recomputed here by hand from each probe's fitted
attributes and its held-out samples, with its switch (``n_bootstrap``), its containment of the
estimate and its width law.  Coverage against the analytic truth is measured by
``benchmarks/calibration.py --family maps`` (``docs/calibration.md``).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import probes
from latentgeo.datasets.planted import planted_latents
from latentgeo.groups import Cyclic, Dihedral
from probes._scoring import r2_interval, variance_weighted_r2

D4 = Dihedral(4)
C8 = Cyclic(8)
# SO(2) at the 8 angles 2πk/8 (in (−π, π]): C8's irreps A and E1 are SO(2)'s frequencies 0
# and 1 there, so the planted maps are expm(θ L) exactly.
ANGLES = np.angle(np.exp(2j * np.pi * np.arange(8) / 8))
PROBES = ["orthogonal", "consistent", "generator", "lie_algebra"]


def _planted(kind: str, n: int, seed: int):
    if kind in ("orthogonal", "consistent"):
        return planted_latents(
            D4, {i.name: 1 for i in D4.irreps()}, n, 0.5, seed=seed, exact_moments=False
        )
    return planted_latents(C8, {"A": 1, "E1": 1}, n, 0.5, seed=seed, exact_moments=False)


def _fit(kind: str, Z: np.ndarray, **kw):
    if kind == "orthogonal":
        return probes.OrthogonalProbe(**kw).fit(Z)
    if kind == "consistent":
        return probes.GroupConsistentProbe(D4, **kw).fit(Z)
    if kind == "generator":
        return probes.GeneratorProbe(small_angle=0.8, **kw).fit(Z, ANGLES)
    return probes.LieAlgebraProbe("so2", small_t=0.8, estimate_spread=False, **kw).fit(
        Z, ANGLES[:, None]
    )


def _held_out(kind: str, probe, Z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Held-out targets and predictions, rebuilt from the fitted attributes alone."""
    te = probe.test_index_
    if kind == "orthogonal":  # scored in the whitened coordinates
        P = probe.components_.T / np.sqrt(probe.explained_variance_)
        W = (Z[:, te] - probe.mean_[:, None]) @ P
        return W, W[0] @ probe.rho_.transpose(0, 2, 1)
    if kind == "consistent":
        return Z[:, te], np.einsum("gij,nj->gni", probe.rho_, Z[0, te]) + probe.bias_[:, None]
    maps = probe.rho(ANGLES) if kind == "generator" else probe.rho(ANGLES[:, None])
    centred = Z[0, te] - probe.mean_[0]
    return Z[:, te], np.einsum("gij,nj->gni", maps, centred) + probe.mean_[:, None]


@pytest.mark.parametrize("kind", PROBES)
def test_interval_is_r2_interval_of_the_held_out_predictions(kind):
    p = _planted(kind, 160, seed=1)
    probe = _fit(kind, p.Z, confidence=0.9, random_state=3)
    Y, Y_hat = (torch.as_tensor(a) for a in _held_out(kind, probe, p.Z))
    # The same arithmetic on the same float64 predictions, up to the order of a few sums.
    np.testing.assert_allclose(probe.r2_, variance_weighted_r2(Y, Y_hat).numpy(), atol=1e-10)
    np.testing.assert_allclose(probe.r2_ci_, r2_interval(Y, Y_hat, 0.9).numpy(), atol=1e-10)
    lo, hi = probe.r2_ci_[:, 0], probe.r2_ci_[:, 1]
    assert np.all(lo <= probe.r2_) and np.all(probe.r2_ <= hi)  # contains the estimate
    assert np.all(hi[1:] - lo[1:] > 0)  # a noisy element has a proper interval
    np.testing.assert_allclose(probe.r2_ci_[0], 1.0, atol=1e-10)  # the identity: exact
    # A higher confidence widens it (the Student quantile grows; the centre is unchanged).
    wide = _fit(kind, p.Z, confidence=0.99, random_state=3).r2_ci_
    assert np.all(wide[1:, 0] <= lo[1:]) and np.all(wide[1:, 1] > hi[1:])


@pytest.mark.parametrize("kind", PROBES)
def test_no_interval_without_n_bootstrap_and_the_count_is_unused(kind):
    p = _planted(kind, 120, seed=2)
    off = _fit(kind, p.Z, n_bootstrap=0, random_state=0)
    assert off.r2_ci_.shape == (p.Z.shape[0], 2) and np.isnan(off.r2_ci_).all()
    one = _fit(kind, p.Z, n_bootstrap=1, random_state=0)
    many = _fit(kind, p.Z, n_bootstrap=500, random_state=0)
    np.testing.assert_array_equal(off.r2_, one.r2_)  # the estimate does not depend on it
    np.testing.assert_array_equal(one.r2_ci_, many.r2_ci_)  # analytic: no resampling


@pytest.mark.parametrize("kind", PROBES)
def test_interval_width_shrinks_like_one_over_root_n_test(kind):
    # 25% held out: 100 and 1600 held-out samples.  The half-width is t_{n−1} se with se ∝
    # 1/sqrt(n_test) (the fitted maps are near the planted ones at both sizes, so the
    # per-sample spread is about the same): ratio 4 · t_99 / t_1599 = 4.05.  The se estimate
    # at 100 samples has relative sd ~ sqrt((κ − 1) / 4n) ≈ 0.1 for the per-sample terms'
    # kurtosis κ ≈ 5 here; averaged over 4 draws ~0.05, so ±20% is 4 sd.
    ratios = []
    for seed in range(4):
        small, large = (
            _fit(kind, _planted(kind, n, seed).Z, random_state=seed).r2_ci_[1:] for n in (400, 6400)
        )
        ratios.append(np.mean(np.diff(small)) / np.mean(np.diff(large)))
    assert 4.05 * 0.8 < np.mean(ratios) < 4.05 * 1.2, ratios


def test_consistent_r2_of_probes_run_carries_the_interval(tmp_path):
    from latentgeo.store import RunWriter

    G = Dihedral(3)
    p = planted_latents(G, {"A1": 1, "E1": 2}, 80, 0.4, seed=5, exact_moments=False)
    path = tmp_path / "run.zarr"
    meta = {"elements": list(G.elements), "group": G.spec, "probe": {"n_samples": 80}}
    with RunWriter(path, meta=meta) as w:
        w.ensure_layers({"h": {"feature_shape": [5], "n_units": 5, "dtype": "float64"}})
        w.append(0, {"h": p.Z})
    linear = {"confidence": 0.8, "test_size": 0.3, "random_state": 2}
    ds = probes.run(path, probes=("consistent",), linear=linear, progress=False, cache=False)
    want = probes.GroupConsistentProbe(G, **linear).fit(p.Z)
    got = ds.sel(layer="h", step=0)
    np.testing.assert_allclose(got.consistent_r2.values, want.r2_, atol=1e-12)
    np.testing.assert_allclose(got.consistent_r2_low.values, want.r2_ci_[:, 0], atol=1e-12)
    np.testing.assert_allclose(got.consistent_r2_high.values, want.r2_ci_[:, 1], atol=1e-12)
    assert np.all(got.consistent_r2_low.values[1:] < got.consistent_r2_high.values[1:])
    off = probes.run(
        path, probes=("consistent",), linear={"n_bootstrap": 0}, progress=False, cache=False
    )
    assert off.consistent_r2_low.isnull().all() and off.consistent_r2_high.isnull().all()
