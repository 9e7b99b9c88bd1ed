"""Trajectories: invariants of metric paths, onsets, change points, embeddings, comparison."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st

import latentgeo.geometry as geo
import trajectories
from trajectories import Trajectory

seeds = st.integers(0, 2**32 - 1)


def _basis(rng, d, k):
    return torch.from_numpy(np.linalg.qr(rng.standard_normal((d, k)))[0])


def _spd(rng, n):
    A = rng.standard_normal((n, n))
    return torch.from_numpy(A @ A.T + n * np.eye(n))


def _unit(rng, n):
    x = rng.standard_normal(n)
    return torch.from_numpy(x / np.linalg.norm(x))


# --- invariants of paths -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("manifold", "metric", "sample"),
    [
        (lambda: geo.Grassmann(8, 3), "grassmann", lambda r: _basis(r, 8, 3)),
        (lambda: geo.SPD(3, "affine"), "spd_affine", lambda r: _spd(r, 3)),
        (lambda: geo.SPD(3, "bures_wasserstein"), "bures_wasserstein", lambda r: _spd(r, 3)),
        (lambda: geo.Sphere(4), "sphere", lambda r: _unit(r, 5)),
    ],
)
def test_geodesic_has_constant_speed_and_unit_tortuosity(rng, manifold, metric, sample):
    M = manifold()
    a, b = sample(rng), sample(rng)
    steps = np.array([0, 1, 3, 7, 15, 40, 100])  # uneven, like a log-spaced schedule
    pts = M.geodesic(a, b, steps / steps[-1])
    options = {"convention": "geomstats"} if metric == "grassmann" else {}
    traj = Trajectory(pts, steps, metric, **options)
    total = M.dist(a, b).item()
    speed = traj.speed()
    assert speed.dims == ("step",)
    np.testing.assert_array_equal(speed["step"].values, steps[:-1])
    np.testing.assert_array_equal(speed["step_end"].values, steps[1:])
    np.testing.assert_allclose(speed.values, np.full(6, total / steps[-1]), rtol=1e-6)
    np.testing.assert_allclose(traj.path_length(), total, rtol=1e-6)
    np.testing.assert_allclose(traj.end_to_end(), total, rtol=1e-9)
    np.testing.assert_allclose(traj.tortuosity(), 1.0, rtol=1e-6)
    # Along a geodesic, the distance to the start grows linearly with the step.
    np.testing.assert_allclose(
        traj.distance_to("first").values, total * steps / steps[-1], rtol=1e-6, atol=1e-12
    )


@settings(max_examples=15, deadline=None)
@given(seed=seeds, metric=st.sampled_from(["grassmann", "spd_log_euclidean", "sphere", "cka"]))
def test_path_invariants_on_random_trajectories(seed, metric):
    rng = np.random.default_rng(seed)
    T = int(rng.integers(2, 7))
    if metric == "grassmann":
        pts = torch.stack([_basis(rng, 6, 2) for _ in range(T)])
    elif metric == "spd_log_euclidean":
        pts = torch.stack([_spd(rng, 3) for _ in range(T)])
    elif metric == "sphere":
        pts = torch.stack([_unit(rng, 4) for _ in range(T)])
    else:
        pts = torch.from_numpy(rng.standard_normal((T, 10, 3)))
    steps = np.cumsum(rng.integers(1, 50, T))
    traj = Trajectory(pts, steps, metric)
    D = traj.distance_matrix()
    assert D.dims == ("step", "step_other")
    np.testing.assert_array_equal(D.values, D.values.T)
    np.testing.assert_array_equal(np.diag(D.values), np.zeros(T))
    assert traj.path_length() >= traj.end_to_end() * (1 - 1e-12)
    assert traj.tortuosity() >= 1 - 1e-12
    np.testing.assert_allclose(
        traj.speed().values * np.diff(steps), traj.step_lengths().values, rtol=1e-12
    )
    ds = traj.to_dataset()
    assert set(ds.data_vars) == {"distance", "speed", "distance_to_first", "distance_to_final"}
    assert math.isnan(ds["speed"].values[-1])


def test_trajectory_rejects_bad_input(rng):
    pts = torch.stack([_unit(rng, 3) for _ in range(3)])
    with pytest.raises(ValueError, match="strictly increasing"):
        Trajectory(pts, [0, 5, 5], "sphere")
    with pytest.raises(ValueError, match=r"steps must have shape \(3,\)"):
        Trajectory(pts, [0, 1], "sphere")
    with pytest.raises(ValueError, match="metric must be one of"):
        Trajectory(pts, None, "hyperbolic")
    with pytest.raises(ValueError, match="convention"):
        Trajectory(torch.stack([_basis(rng, 4, 2)] * 2), None, "grassmann", convention="x")
    with pytest.raises(ValueError, match="orthonormal"):
        Trajectory(torch.ones(2, 4, 2), None, "grassmann")
    traj = Trajectory(pts, None, "sphere")
    with pytest.raises(ValueError, match="method must be one of"):
        traj.embed("umap")
    with pytest.raises(ValueError, match="reference step 7"):
        traj.distance_to(7)
    with pytest.raises(ValueError, match="tangent_pca needs a manifold"):
        Trajectory(torch.from_numpy(rng.standard_normal((3, 5, 2))), None, "cka").embed(
            "tangent_pca"
        )


def test_callable_metric(rng):
    pts = torch.from_numpy(rng.standard_normal((4, 3)))
    traj = Trajectory(pts, [0, 2, 4, 8], lambda a, b: float(torch.abs(a - b).sum()))
    expected = np.abs(pts.numpy()[:, None] - pts.numpy()[None]).sum(-1)
    np.testing.assert_allclose(traj.distance_matrix().values, expected, rtol=1e-12)
    assert traj.distance_matrix().attrs["metric"] == "callable"


# --- onset ---------------------------------------------------------------------------------------


def test_onset_on_planted_series():
    steps = np.array([0, 10, 20, 30, 40, 50, 60])
    r2 = np.array([0.1, 0.6, 0.3, 0.55, 0.8, 0.9, 0.95])  # crosses at 10, dips, stays from 30
    assert trajectories.onset(r2, 0.5, steps=steps) == 30
    assert trajectories.onset(r2, 0.05, steps=steps) == 0
    assert trajectories.onset(r2, 0.99, steps=steps) is None
    da = xr.DataArray(r2, dims="step", coords={"step": steps})
    assert trajectories.onset(da, 0.5) == 30
    assert trajectories.onset(1 - da, 0.5, direction="below") == 30
    # A missing value interrupts "staying past".
    with_nan = da.copy()
    with_nan[4] = np.nan
    assert trajectories.onset(with_nan, 0.5) == 50
    # Several series at once: one onset per element, NaN for "never".
    multi = xr.DataArray(
        np.stack([r2, np.full(7, 0.2), np.linspace(0, 1, 7)]),
        dims=("element", "step"),
        coords={"element": ["r", "s", "rs"], "step": steps},
    )
    out = trajectories.onset(multi, 0.5)
    assert out.dims == ("element",)
    np.testing.assert_array_equal(out.values, [30.0, np.nan, 30.0])
    with pytest.raises(ValueError, match="direction"):
        trajectories.onset(r2, 0.5, direction="up")


def test_trajectory_onset_of_distance_to_final(rng):
    # A path that settles: distance to the final checkpoint falls below 0.1 from step 40 on.
    angles = np.array([1.0, 0.7, 0.2, 0.15, 0.05, 0.02, 0.0])
    pts = torch.stack([torch.tensor([math.cos(a), math.sin(a)]) for a in angles]).double()
    steps = np.array([0, 5, 10, 20, 40, 80, 160])
    traj = Trajectory(pts, steps, "sphere")
    assert traj.onset("distance_to_final", 0.1, direction="below") == 40
    np.testing.assert_allclose(traj.distance_to("final").values, angles, atol=1e-12)


# --- change points -----------------------------------------------------------------------------


def _penalised_cost(x, bkps, penalty):
    edges = [0, *bkps, len(x)]
    return sum(((x[a:b] - x[a:b].mean()) ** 2).sum() for a, b in itertools.pairwise(edges)) + (
        penalty * len(bkps)
    )


def _brute_force_optimum(x, penalty, min_size):
    n, best = len(x), math.inf
    for r in range(n):
        for bkps in itertools.combinations(range(1, n), r):
            if np.diff([0, *bkps, n]).min() >= min_size:
                best = min(best, _penalised_cost(x, list(bkps), penalty))
    return best


@settings(max_examples=15, deadline=None)
@given(seed=seeds, min_size=st.integers(1, 3))
def test_pelt_finds_the_optimum(seed, min_size):
    # ruptures' PELT is exact for min_size=1. With min_size > 1 its pruning can drop a start
    # before a segment from it may exist (ruptures PR #383, open), so there the result is a
    # valid segmentation at least as good as no change, and exact on the planted signal.
    rng = np.random.default_rng(seed)
    n = 11
    x = rng.standard_normal(n) + np.repeat(rng.normal(0, 3, 3), [4, 3, 4])
    penalty = float(rng.uniform(0.5, 5.0))
    found = list(trajectories.change_points(x, penalty=penalty, min_size=min_size))
    best = _brute_force_optimum(x, penalty, min_size)
    assert np.diff([0, *found, n]).min() >= min_size
    cost = _penalised_cost(x, found, penalty)
    if min_size == 1:
        np.testing.assert_allclose(cost, best, rtol=1e-10)
    else:
        assert best * (1 - 1e-12) <= cost <= _penalised_cost(x, [], penalty) * (1 + 1e-12)


@pytest.mark.xfail(strict=True, reason="ruptures PR #383: PELT pruning with min_size > 1")
def test_pelt_with_min_size_is_exact():
    # The counterexample of ruptures PR #383: the optimum [] costs 1.2, PELT returns [2].
    # When ruptures fixes its pruning this passes and the xfail (strict) reports it.
    x = np.array([0.0, 1.0, 0.0, 0.0, 1.0])
    found = list(trajectories.change_points(x, penalty=0.1, min_size=2))
    np.testing.assert_allclose(
        _penalised_cost(x, found, 0.1), _brute_force_optimum(x, 0.1, 2), rtol=1e-12
    )


def test_change_points_recover_planted_changes(rng):
    steps = np.arange(0, 300, 3)
    x = np.concatenate([np.full(40, 1.0), np.full(25, 3.0), np.full(35, 0.5)])
    x = x + 0.1 * rng.standard_normal(x.size)
    np.testing.assert_array_equal(trajectories.change_points(x, steps=steps), steps[[40, 65]])
    np.testing.assert_array_equal(
        trajectories.change_points(x, method="binseg", n_change_points=2, steps=steps),
        steps[[40, 65]],
    )
    np.testing.assert_array_equal(
        trajectories.change_points(x, method="binseg", steps=steps), steps[[40, 65]]
    )
    # Pure noise: no change.
    assert trajectories.change_points(0.1 * rng.standard_normal(100)).size == 0
    with pytest.raises(ValueError, match="NaN"):
        trajectories.change_points(np.array([1.0, np.nan, 2.0, 3.0]))
    with pytest.raises(ValueError, match="n_change_points needs method='binseg'"):
        trajectories.change_points(x, n_change_points=2)
    with pytest.raises(ValueError, match="do not fit"):
        trajectories.change_points(x[:9], method="binseg", n_change_points=4, min_size=2)


@pytest.mark.parametrize("method", ["pelt", "binseg"])
def test_change_points_find_planted_changes_in_noise(method):
    # Five segments of random lengths and levels, noise sigma = 1, jumps of 3 to 6 sigma:
    # PELT with latentgeo's penalty (3 sigma^2 log n) finds every planted change, at most two
    # steps off (noise), and nothing else. Greedy binary segmentation, told the number of
    # changes, finds them too, but its first splits can land a few steps off when neighbouring
    # jumps interact (about 1 change in 40 here): most exactly, none far.
    offsets = []
    for seed in range(20):
        rng = np.random.default_rng(seed)
        lengths = rng.integers(15, 60, 5)
        jumps = rng.uniform(3.0, 6.0, 4) * rng.choice([-1, 1], 4)
        levels = np.concatenate([[0.0], np.cumsum(jumps)])
        x = np.repeat(levels, lengths) + rng.standard_normal(lengths.sum())
        planted = np.cumsum(lengths)[:-1]
        n_changes = planted.size if method == "binseg" else None
        found = trajectories.change_points(x, method=method, n_change_points=n_changes)
        assert found.size == planted.size, (seed, found, planted)
        offsets.append(np.abs(found - planted))
    offsets = np.concatenate(offsets)
    if method == "pelt":
        assert offsets.max() <= 2, offsets
    else:
        assert np.mean(offsets <= 2) >= 0.9 and offsets.max() <= 10, offsets


def test_trajectory_change_points_on_speed():
    # Move fast along a great circle, then slowly: one change in speed.
    steps = np.arange(60)
    angle = np.where(steps < 30, 0.05 * steps, 0.05 * 29 + 0.005 * (steps - 29))
    pts = torch.from_numpy(np.stack([np.cos(angle), np.sin(angle)], axis=1))
    traj = Trajectory(pts, steps, "sphere")
    np.testing.assert_array_equal(traj.change_points(), [29])


# --- embeddings ----------------------------------------------------------------------------------


def test_mds_recovers_planted_distances(rng):
    X = rng.standard_normal((12, 2)) * [3.0, 1.0]
    D = np.linalg.norm(X[:, None] - X[None], axis=-1)
    coords, eig = trajectories.classical_mds(D, 2)
    np.testing.assert_allclose(
        np.linalg.norm(coords[:, None] - coords[None], axis=-1), D, atol=1e-10
    )
    Xc = X - X.mean(0)
    np.testing.assert_allclose(np.sort(eig), np.sort(np.linalg.eigvalsh(Xc.T @ Xc)), rtol=1e-10)
    traj = Trajectory(torch.from_numpy(X), np.arange(12), "euclidean")
    emb = traj.embed("mds")
    assert emb.dims == ("step", "component")
    E = emb.values
    np.testing.assert_allclose(np.linalg.norm(E[:, None] - E[None], axis=-1), D, atol=1e-10)


def test_tangent_pca_embedding_of_a_geodesic(rng):
    Gr = geo.Grassmann(6, 2)
    steps = np.array([0, 2, 4, 6, 8])
    pts = Gr.geodesic(_basis(rng, 6, 2), _basis(rng, 6, 2), steps / 10)
    emb = Trajectory(pts, steps, "grassmann").embed("tangent_pca")
    assert emb.shape == (5, 2)
    first = np.abs(np.diff(emb.values[:, 0]))
    np.testing.assert_allclose(first, np.full(4, first.mean()), rtol=1e-4)
    assert np.abs(emb.values[:, 1]).max() < 1e-5 * first.mean()


def _rotation(rng, k):
    Q, _ = np.linalg.qr(rng.standard_normal((k, k)))
    if np.linalg.det(Q) < 0:
        Q[:, 0] = -Q[:, 0]
    return torch.from_numpy(Q)


@pytest.mark.parametrize(
    ("manifold", "metric", "options", "sample"),
    [
        (lambda: geo.Grassmann(7, 2), "grassmann", {}, lambda r: _basis(r, 7, 2)),
        (
            lambda: geo.Grassmann(7, 2),
            "grassmann",
            {"convention": "geomstats"},
            lambda r: _basis(r, 7, 2),
        ),
        (lambda: geo.Sphere(4), "sphere", {}, lambda r: _unit(r, 5)),
        (lambda: geo.SPD(3, "affine"), "spd_affine", {}, lambda r: _spd(r, 3)),
        (lambda: geo.SPD(3, "log_euclidean"), "spd_log_euclidean", {}, lambda r: _spd(r, 3)),
        (lambda: geo.SPD(3, "bures_wasserstein"), "bures_wasserstein", {}, lambda r: _spd(r, 3)),
        (lambda: geo.SO(3), "orthogonal", {}, lambda r: _rotation(r, 3)),
    ],
)
def test_mds_and_tangent_pca_share_the_trajectory_metric(rng, manifold, metric, options, sample):
    # On a geodesic the logs at the Frechet mean are collinear with norms equal to distances,
    # and the distance matrix is that of points on a line: both embeddings must reproduce the
    # trajectory's distances exactly (the Grassmann arc convention is 1/sqrt(2) of geomstats').
    M = manifold()
    a = sample(rng)
    b = M.geodesic(a, sample(rng), [0.6])[0]  # well inside the injectivity radius
    steps = np.array([0, 1, 3, 6, 10, 20])
    traj = Trajectory(M.geodesic(a, b, steps / 20), steps, metric, **options)
    D = traj.distance_matrix().values
    assert D[0, -1] > 0.1
    for method in ("mds", "tangent_pca"):
        E = traj.embed(method).values
        np.testing.assert_allclose(
            np.linalg.norm(E[:, None] - E[None], axis=-1), D, rtol=1e-6, atol=1e-8
        )
        # One straight line: the second component carries nothing.
        assert np.abs(E[:, 1]).max() < 1e-5 * D[0, -1]


def test_tangent_pca_scale_on_a_random_grassmann_trajectory(rng):
    # Off a geodesic the two embeddings differ by curvature only (second order in the spread),
    # not by the sqrt(2) factor between conventions: their spreads agree closely.
    base = _basis(rng, 8, 3)
    Gr = geo.Grassmann(8, 3)
    pts = torch.stack([Gr.geodesic(base, _basis(rng, 8, 3), [0.05])[0] for _ in range(8)])
    traj = Trajectory(pts, None, "grassmann")
    spread = {
        m: np.linalg.norm(traj.embed(m, n_components=3).values) for m in ("mds", "tangent_pca")
    }
    np.testing.assert_allclose(spread["tangent_pca"] / spread["mds"], 1.0, rtol=2e-2)
    with pytest.raises(ValueError, match="no chordal units"):
        Trajectory(pts, None, "grassmann", convention="chordal").embed("tangent_pca")


# --- comparison ----------------------------------------------------------------------------------


def test_compare_lines_runs_up_step_by_step(rng):
    a = Trajectory(torch.stack([_basis(rng, 6, 2) for _ in range(4)]), [0, 10, 20, 30], name="a")
    b = Trajectory(torch.stack([_basis(rng, 6, 2) for _ in range(3)]), [0, 20, 40], name="b")
    ds = trajectories.compare([a, b])
    assert list(ds["run"].values) == ["a", "b"]
    np.testing.assert_array_equal(ds["step"].values, [0, 10, 20, 30, 40])
    assert ds["speed"].dims == ("run", "step")
    np.testing.assert_allclose(ds["speed"].sel(run="a").dropna("step").values, a.speed().values)
    assert np.isnan(ds["speed"].sel(run="b", step=10))
    np.testing.assert_allclose(ds["path_length"].values, [a.path_length(), b.path_length()])
    between = ds["distance_between"]
    assert between.dims == ("run", "run_other", "step")
    for s, ia, ib in [(0, 0, 0), (20, 2, 1)]:
        ref = geo.grassmann_distance(a.points[ia], b.points[ib]).item()
        np.testing.assert_allclose(between.sel(run="a", run_other="b", step=s), ref, rtol=1e-12)
        np.testing.assert_allclose(between.sel(run="b", run_other="a", step=s), ref, rtol=1e-12)
    assert np.isnan(between.sel(run="a", run_other="b", step=10))
    np.testing.assert_array_equal(between.sel(run="a", run_other="a").dropna("step"), 0.0)
    # Different point shapes: no distance between runs, and the Dataset says so.
    c = Trajectory(torch.stack([_basis(rng, 5, 2) for _ in range(2)]), [0, 10])
    ds2 = trajectories.compare({"a": a, "c": c})
    assert "distance_between" not in ds2 and "omitted" in ds2.attrs["distance_between"]
    with pytest.raises(ValueError, match="unique"):
        trajectories.compare([a, a])
