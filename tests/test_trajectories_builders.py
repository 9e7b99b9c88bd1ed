"""Trajectory builders on real run stores (latentgeo.store.RunWriter) and probe results."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import xarray as xr

import latentgeo.geometry as geo
import trajectories
from latentgeo.store import RunWriter, open_run

ELEMENTS = ["e", "r", "r2", "r3"]
N = 16
STEPS = [0, 3, 10, 30]
F64 = {"rtol": 1e-8, "atol": 1e-10}


def _rot2(angle):
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[c, -s], [s, c]])


def _plane(phi, step, d=8):
    """Orthonormal basis of the plane spanned by cos(phi s) e1 + sin(phi s) e3 and e2."""
    U = np.zeros((d, 2))
    U[0, 0], U[2, 0], U[1, 1] = math.cos(phi * step), math.sin(phi * step), 1.0
    return U


def _write_store(path, phi, seed=0):
    """C4-equivariant latents: a 2-D rotating part in a plane that turns with the step, plus an
    invariant part along e5; a wide layer that is a rotated, rescaled copy of a fixed one."""
    rng = np.random.default_rng(seed)
    c = 3.0 * rng.standard_normal((N, 2))
    a = 0.3 * rng.standard_normal(N)
    wide0 = rng.standard_normal((len(ELEMENTS), N, 40))
    meta = {"group": "C4", "elements": ELEMENTS, "probe": {"n_samples": N}}
    specs = {
        "fc": {"feature_shape": [8], "n_units": 8, "dtype": "float64", "reducer": "flatten"},
        "wide": {"feature_shape": [40], "n_units": 40, "dtype": "float64", "reducer": "flatten"},
    }
    with RunWriter(path, "w-", meta=meta) as w:
        w.ensure_layers(specs)
        for s in STEPS:
            U = _plane(phi, s)
            fc = np.stack([(c @ _rot2(math.pi / 2 * g).T) @ U.T for g in range(4)])
            fc[:, :, 4] += a  # invariant: the same for every element
            Q = np.linalg.qr(np.random.default_rng(100 + s).standard_normal((40, 40)))[0]
            w.append(s, {"fc": fc, "wide": (1 + s) * wide0 @ Q + wide0 * 0.01 * s})
    return path


@pytest.fixture
def store(tmp_path):
    return _write_store(tmp_path / "a.zarr", phi=0.02)


def test_subspace_trajectory_follows_the_planted_plane(store):
    run = open_run(store)
    traj = trajectories.subspace(run, "fc", 2)
    assert traj.points.shape == (4, 8, 2) and traj.name == "fc"
    np.testing.assert_array_equal(traj.steps, STEPS)
    steps = np.array(STEPS, dtype=float)
    expected = 0.02 * np.abs(steps[:, None] - steps[None, :])
    np.testing.assert_allclose(traj.distance_matrix().values, expected, **F64)
    np.testing.assert_allclose(traj.speed().values, np.full(3, 0.02), **F64)
    np.testing.assert_allclose(traj.tortuosity(), 1.0, rtol=1e-8)
    # From a path, with the geomstats convention.
    traj2 = trajectories.subspace(store, "fc", 2, convention="geomstats")
    np.testing.assert_allclose(traj2.distance_matrix().values, math.sqrt(2) * expected, **F64)


def test_isotypic_subspace_trajectories(store):
    run = open_run(store)
    names = [irrep.name for irrep in run.group.irreps()]
    two_dim = next(irrep.name for irrep in run.group.irreps() if irrep.dim == 2)
    moving = trajectories.subspace(run, "fc", 2, irrep=two_dim)
    steps = np.array(STEPS, dtype=float)
    np.testing.assert_allclose(
        moving.distance_matrix().values, 0.02 * np.abs(steps[:, None] - steps[None, :]), **F64
    )
    # The invariant part stays on e5.
    still = trajectories.subspace(run, "fc", 1, irrep=names[0])
    e5 = torch.zeros(8, 1, dtype=torch.float64)
    e5[4] = 1
    for U in still.points:
        assert geo.grassmann_distance(U, e5).item() < 1e-10
    assert still.path_length() < 1e-10


def test_covariance_trajectory_in_a_fixed_basis(store):
    run = open_run(store)
    traj = trajectories.covariance(run, "fc", 2, "log_euclidean")
    lat = run.latents("fc")
    B = geo.principal_subspace(lat.isel(step=-1).values, 2)
    np.testing.assert_allclose(traj.basis.numpy(), B.numpy(), rtol=1e-12, atol=1e-14)
    covs = torch.stack(
        [geo.shrinkage_covariance(lat.isel(step=i).values, 2, basis=B) for i in range(4)]
    )
    np.testing.assert_allclose(traj.points.numpy(), covs.numpy(), rtol=1e-12, atol=1e-14)
    D = geo.pairwise_distances(covs, "spd_log_euclidean")
    np.testing.assert_allclose(traj.distance_matrix().values, D.numpy(), **F64)
    first = trajectories.covariance(run, "fc", 2, basis="first")
    assert first.metric == "spd_affine"
    assert trajectories.covariance(run, "fc", 2, "spd_affine").metric == "spd_affine"
    at_step = trajectories.covariance(run, "fc", 2, basis=0)
    np.testing.assert_allclose(at_step.points.numpy(), first.points.numpy(), rtol=1e-12)
    with pytest.raises(ValueError, match="basis step 7"):
        trajectories.covariance(run, "fc", 2, basis=7)
    with pytest.raises(ValueError, match="metric must be one of"):
        trajectories.covariance(run, "fc", 2, "euclidean")


@pytest.mark.parametrize("metric", ["procrustes", "cka"])
def test_shape_trajectory_equals_raw_representation_distances(store, metric):
    run = open_run(store)
    traj = trajectories.shape(run, "wide", metric, element="e")
    # 40 units > 16 samples: units are rotated to principal axes, distances unchanged.
    assert traj.points.shape == (4, 16, 16)
    raw = torch.from_numpy(run.latents("wide").sel(element="e").values)
    ref = geo.pairwise_distances(raw, metric)
    np.testing.assert_allclose(traj.distance_matrix().values, ref.numpy(), rtol=1e-7, atol=1e-9)
    whole = trajectories.shape(run, "wide", metric)
    assert whole.points.shape == (4, 64, 40)
    with pytest.raises(ValueError, match="metric must be one of"):
        trajectories.shape(run, "wide", "grassmann")


def test_builders_reject_bad_input(store, tmp_path):
    run = open_run(store)
    with pytest.raises(ValueError, match="layer must be one of"):
        trajectories.subspace(run, "conv9", 2)
    with pytest.raises(ValueError, match="k must be an int >= 1"):
        trajectories.subspace(run, "fc", 0)
    with pytest.raises(TypeError, match="latentgeo Run"):
        trajectories.subspace(42, "fc", 2)
    with pytest.raises(ValueError, match="irrep must be one of"):
        trajectories.subspace(run, "fc", 2, irrep="Z9")


def _rot3(angle):
    R = np.eye(3)
    R[:2, :2] = _rot2(angle)
    return R


def _probe_results():
    steps = [0, 5, 50]
    thetas = [0.0, 0.3, 0.35]
    rho = np.full((2, 3, 4, 3, 3), np.nan)
    for si, th in enumerate(thetas):
        for g in range(4):
            rho[0, si, g] = 1.3 * _rot3(th + g * math.pi / 2)  # scaled rotation: polar = R
            rho[1, si, g, :2, :2] = 0.7 * _rot2(2 * th)  # narrower layer, NaN-padded
    r2 = np.stack([np.tile(np.array([[0.1], [0.6], [0.9]]), (1, 4))] * 2)
    return xr.Dataset(
        {
            "rho": (("layer", "step", "element", "unit_out", "unit_in"), rho),
            "r2": (("layer", "step", "element"), r2),
            "invariance": (("layer", "step"), np.array([[0.2, 0.5, 0.8], [0.1, 0.1, 0.1]])),
            "spectrum": (
                ("layer", "step", "irrep"),
                np.array([[[0.9, 0.1], [0.5, 0.5], [0.2, 0.8]]] * 2),
            ),
        },
        coords={"layer": ["fc", "conv"], "step": steps, "element": ELEMENTS, "irrep": ["A", "E1"]},
    )


def test_representation_trajectory_from_probe_results():
    res = _probe_results()
    traj = trajectories.representation(res, "fc", "r")
    assert traj.metric == "orthogonal" and traj.points.shape == (3, 3, 3)
    np.testing.assert_allclose(traj.points[1].numpy(), _rot3(0.3 + math.pi / 2), atol=1e-12)
    expected = np.abs(np.subtract.outer([0.0, 0.3, 0.35], [0.0, 0.3, 0.35]))
    np.testing.assert_allclose(traj.distance_matrix().values, expected, rtol=1e-9, atol=1e-12)
    narrow = trajectories.representation(res, "conv", 1)
    assert narrow.points.shape == (3, 2, 2)
    np.testing.assert_allclose(narrow.distance_matrix().values, 2 * expected, rtol=1e-9, atol=1e-12)
    with pytest.raises(ValueError, match="element must be one of"):
        trajectories.representation(res, "fc", "q")
    with pytest.raises(ValueError, match="layer must be one of"):
        trajectories.representation(res, "head", "r")


def test_series_from_probe_results_feeds_onset():
    res = _probe_results()
    inv = trajectories.series(res, "invariance", "fc")
    assert inv.dims == ("step",)
    assert trajectories.onset(inv, 0.5) == 5
    spec = trajectories.series(res, "spectrum", "fc", irrep="E1")
    np.testing.assert_allclose(spec.values, [0.1, 0.5, 0.8])
    r2 = trajectories.series(res, "r2", "fc")
    assert r2.dims == ("step", "element")
    np.testing.assert_array_equal(trajectories.onset(r2, 0.5).values, [5.0] * 4)
    with pytest.raises(ValueError, match="var must be one of"):
        trajectories.series(res, "accuracy", "fc")
    with pytest.raises(ValueError, match="cannot select"):
        trajectories.series(res, "invariance", "fc", irrep="A")


def test_compare_runs_from_stores(tmp_path):
    a = _write_store(tmp_path / "slow.zarr", phi=0.01, seed=1)
    b = _write_store(tmp_path / "fast.zarr", phi=0.03, seed=2)
    ds = trajectories.compare([a, b], summary="subspace", layer="fc", k=2)
    assert list(ds["run"].values) == ["slow.zarr", "fast.zarr"]
    np.testing.assert_allclose(
        ds["speed"].values, [[0.01] * 3 + [np.nan], [0.03] * 3 + [np.nan]], **F64
    )
    between = ds["distance_between"].sel(run="slow.zarr", run_other="fast.zarr")
    np.testing.assert_allclose(between.values, 0.02 * np.array(STEPS), **F64)
    np.testing.assert_allclose(ds["path_length"].values, [0.3, 0.9], **F64)
    with pytest.raises(ValueError, match="summary must be one of"):
        trajectories.compare([a, b], layer="fc")


class _CountingArray:
    """Array-like that records every block read from it (to check streaming)."""

    def __init__(self, data):
        self.data, self.shape, self.dtype, self.ndim = data, data.shape, data.dtype, data.ndim
        self.reads = []

    def __getitem__(self, key):
        out = self.data[key]
        if out.size:  # dask also takes empty slices to learn the dtype
            self.reads.append(key)
        return out


def test_builders_stream_one_checkpoint_at_a_time(store, monkeypatch):
    import dask.array as da

    from trajectories import _builders

    run = open_run(store)
    source = _CountingArray(np.asarray(run.latents("fc").values))

    class _Run:
        layers = run.layers
        steps = run.steps
        group = run.group

        def latents(self, layer):
            lazy = da.from_array(source, chunks=(1, 4, N, 8))
            return xr.DataArray(
                lazy,
                dims=("step", "element", "sample", "unit"),
                coords={"step": run.steps, "element": ELEMENTS},
            )

    # Record how many checkpoints had been read when each summary was computed.
    reads_at_summary = []
    original = _builders.principal_subspace

    def spy(Z, k, **kw):
        reads_at_summary.append(len(source.reads))
        return original(Z, k, **kw)

    monkeypatch.setattr(_builders, "principal_subspace", spy)
    traj = trajectories.subspace(_Run(), "fc", 2)
    assert reads_at_summary == [1, 2, 3, 4]
    np.testing.assert_allclose(
        traj.distance_matrix().values,
        trajectories.subspace(run, "fc", 2).distance_matrix(),
        rtol=1e-12,
        atol=1e-14,
    )
