"""The geomstats bridge: global-state hygiene, agreement of dist, exp/log/geodesic/mean/PCA."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

import latentgeo.geometry as geo

F64 = {"rtol": 1e-8, "atol": 1e-12}
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

_HYGIENE = textwrap.dedent(
    """
    import json, os, sys
    import numpy, torch
    before = (str(torch.get_default_dtype()), os.environ.get("GEOMSTATS_BACKEND"))
    import latentgeo.geometry as geo
    imported_at_import = "geomstats" in sys.modules
    Gr = geo.Grassmann(5, 2)
    U = torch.linalg.qr(torch.randn(5, 2, dtype=torch.float64))[0]
    V = torch.linalg.qr(torch.randn(5, 2, dtype=torch.float64))[0]
    Gr.frechet_mean(torch.stack([U, V]))
    Gr.geodesic(U, V, [0.0, 0.5, 1.0])
    eye = torch.eye(3, dtype=torch.float64)
    geo.SPD(3, "affine").log(2 * eye, eye)
    after = (str(torch.get_default_dtype()), os.environ.get("GEOMSTATS_BACKEND"))
    print(json.dumps({"before": before, "after": after, "eager": imported_at_import,
                      "trapz": hasattr(numpy, "trapz"),
                      "backend": sys.modules["geomstats._backend"].BACKEND_NAME}))
    """
)


def _run_hygiene(env_backend):
    env = {k: v for k, v in os.environ.items() if k != "GEOMSTATS_BACKEND"}
    if env_backend is not None:
        env["GEOMSTATS_BACKEND"] = env_backend
    env["OMP_NUM_THREADS"] = "1"
    out = subprocess.run(
        [sys.executable, "-c", _HYGIENE],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("env_backend", [None, "pytorch"])
def test_bridge_leaves_torch_dtype_and_environment_alone(env_backend):
    res = _run_hygiene(env_backend)
    assert res["before"] == ["torch.float32", env_backend]
    assert res["after"] == res["before"]
    assert res["eager"] is False, "import latentgeo.geometry must not import geomstats"
    assert res["trapz"] is True
    assert res["backend"] == (env_backend or "numpy")


def _basis(rng, d, k):
    return torch.from_numpy(np.linalg.qr(rng.standard_normal((d, k)))[0])


def _spd(rng, n):
    A = rng.standard_normal((n, n))
    return torch.from_numpy(A @ A.T + n * np.eye(n))


def _rotation(rng, k):
    Q = np.linalg.qr(rng.standard_normal((k, k)))[0]
    if np.linalg.det(Q) < 0:
        Q[:, 0] *= -1
    return torch.from_numpy(Q)


def _unit(rng, n):
    x = rng.standard_normal(n)
    return torch.from_numpy(x / np.linalg.norm(x))


def _cases(rng):
    return [
        (geo.Grassmann(6, 2), lambda: _basis(rng, 6, 2), lambda P: P @ P.mT),
        (geo.SPD(3, "affine"), lambda: _spd(rng, 3), lambda P: P),
        (geo.SPD(3, "log_euclidean"), lambda: _spd(rng, 3), lambda P: P),
        (geo.SPD(3, "bures_wasserstein"), lambda: _spd(rng, 3), lambda P: P),
        (geo.SO(3), lambda: _rotation(rng, 3), lambda P: P),
        (geo.Sphere(3), lambda: _unit(rng, 4), lambda P: P),
    ]


def test_dist_equals_geomstats_dist(rng):
    for manifold, sample, to_gs in _cases(rng):
        for _ in range(3):
            a, b = sample(), sample()
            ref = float(manifold.space.metric.dist(to_gs(a).numpy(), to_gs(b).numpy()))
            np.testing.assert_allclose(
                manifold.dist(a, b).item(), ref, **F64, err_msg=repr(manifold)
            )


def test_exp_inverts_log_and_geodesics_have_constant_speed(rng):
    for manifold, sample, _ in _cases(rng):
        a, b = sample(), sample()
        v = manifold.log(b, a)
        back = manifold.exp(v, a)
        assert manifold.dist(back, b).item() < 1e-7, repr(manifold)
        curve = manifold.geodesic(a, b, torch.linspace(0, 1, 6))
        assert curve.shape == (6, *manifold.point_shape)
        steps = manifold.dist(curve[:-1], curve[1:])
        total = manifold.dist(a, b).item()
        np.testing.assert_allclose(steps.numpy(), np.full(5, total / 5), rtol=1e-6)
        assert manifold.dist(curve[0], a).item() < 1e-7
        assert manifold.dist(curve[-1], b).item() < 1e-7


def test_grassmann_tangent_is_horizontal_and_scaled(rng):
    Gr = geo.Grassmann(7, 3)
    U, V = _basis(rng, 7, 3), _basis(rng, 7, 3)
    D = Gr.log(V, U)
    assert D.shape == (7, 3)
    assert (U.T @ D).abs().max().item() < 1e-12
    # geomstats' dist is sqrt(2) times the arc length, which is ||D||_F.
    np.testing.assert_allclose(
        torch.linalg.matrix_norm(D).item(), geo.grassmann_distance(U, V).item(), rtol=1e-8
    )


def test_frechet_mean_of_two_points_is_geodesic_midpoint(rng):
    for manifold, sample, _ in _cases(rng):
        a, b = sample(), sample()
        mean = manifold.frechet_mean(torch.stack([a, b]))
        mid = manifold.geodesic(a, b, [0.5])[0]
        assert manifold.dist(mean, mid).item() < 1e-7, repr(manifold)


def test_frechet_mean_is_a_critical_point(rng):
    # First-order optimality: the logs of the points at their mean average to zero. The
    # points lie in a ball (as checkpoints of one run do), where the mean is unique.
    for manifold, sample, _ in _cases(rng):
        a = sample()
        pts = torch.stack([a] + [manifold.geodesic(a, sample(), [0.3])[0] for _ in range(4)])
        mean = manifold.frechet_mean(pts, tol=1e-10)
        grad = manifold.log(pts, mean.expand_as(pts)).mean(dim=0)
        assert torch.linalg.vector_norm(grad).item() < 1e-8, repr(manifold)
    # Weights: all the weight on one point puts the mean there.
    Gr = geo.Grassmann(6, 2)
    U, V = _basis(rng, 6, 2), _basis(rng, 6, 2)
    m = Gr.frechet_mean(torch.stack([U, V]), weights=[1.0, 0.0])
    assert Gr.dist(m, U).item() < 1e-7


def test_grassmann_reduction_matches_full_geomstats(rng):
    # Operations run on the span of the bases involved; compare with geomstats on d x d.
    d, k = 30, 3
    Gr = geo.Grassmann(d, k)
    U, V = _basis(rng, d, k), _basis(rng, d, k)
    metric = Gr.space.metric
    X_full = metric.log((V @ V.T).numpy(), (U @ U.T).numpy())
    D = Gr.log(V, U)
    np.testing.assert_allclose((D @ U.T + U @ D.T).numpy(), X_full, rtol=1e-8, atol=1e-10)
    P_full = metric.exp(X_full, (U @ U.T).numpy())
    W = Gr.exp(D, U)
    np.testing.assert_allclose((W @ W.T).numpy(), P_full, rtol=1e-8, atol=1e-10)
    pts = torch.stack([_basis(rng, d, k) for _ in range(4)])
    mean = Gr.frechet_mean(pts, tol=1e-10)
    grad = metric.log((pts @ pts.mT).numpy(), (mean @ mean.T).numpy()).mean(axis=0)
    assert np.linalg.norm(grad) < 1e-8


def test_tangent_pca_finds_one_dimensional_geodesic_data(rng):
    for manifold, sample, _ in _cases(rng):
        a, b = sample(), sample()
        t = torch.linspace(0.1, 0.9, 7, dtype=torch.float64)
        pts = manifold.geodesic(a, b, t)
        coords = manifold.tangent_pca(pts, n_components=2)
        assert coords.shape == (7, 2)
        # All the spread is along the geodesic, in metric units: the first coordinate moves
        # at the geodesic's speed and the second vanishes.
        speed = manifold.dist(a, b).item()
        steps = torch.diff(coords[:, 0]).abs()
        np.testing.assert_allclose(steps.numpy(), speed * torch.diff(t).numpy(), rtol=1e-6)
        assert coords[:, 1].abs().max().item() < 1e-5 * speed, repr(manifold)


def test_bridge_rejects_bad_points(rng):
    with pytest.raises(ValueError, match="orthonormal"):
        geo.Grassmann(5, 2).dist(torch.ones(5, 2), torch.ones(5, 2))
    with pytest.raises(ValueError, match="shape"):
        geo.Grassmann(5, 2).dist(_basis(rng, 6, 2), _basis(rng, 6, 2))
    with pytest.raises(ValueError, match="determinant"):
        geo.SO(3).frechet_mean(-torch.eye(3, dtype=torch.float64)[None].repeat(2, 1, 1))
    with pytest.raises(ValueError, match="unit vectors"):
        geo.Sphere(2).dist(torch.ones(3), torch.ones(3))
    with pytest.raises(ValueError, match="metric"):
        geo.SPD(3, "euclid")
    with pytest.raises(ValueError, match="k must be <= d"):
        geo.Grassmann(2, 3)
    assert repr(geo.SPD(4, "log_euclidean")) == "SPD(4, metric='log_euclidean')"
    assert math.isfinite(geo.Sphere(2).dist(_unit(rng, 3), _unit(rng, 3)).item())


def test_closed_form_means_agree_with_geomstats_frechet_mean(rng):
    # Away from the cut locus the Karcher descent on the closed forms and geomstats'
    # FrechetMean find the same mean (points in a ball, where it is unique).
    cases = _cases(rng)  # builds the manifolds: imports geomstats through the bridge
    from geomstats.learning.frechet_mean import FrechetMean

    for manifold, sample, to_gs in cases:
        if isinstance(manifold, geo.SPD):
            continue  # SPD still runs through geomstats
        a = sample()
        pts = torch.stack([a] + [manifold.geodesic(a, sample(), [0.4])[0] for _ in range(4)])
        ours = manifold.frechet_mean(pts, tol=1e-12)
        est = FrechetMean(manifold.space)
        est.set(max_iter=500, epsilon=1e-24)
        est.fit(np.stack([to_gs(p).numpy() for p in pts]))
        np.testing.assert_allclose(
            to_gs(ours).numpy(), est.estimate_, atol=1e-8, err_msg=repr(manifold)
        )
