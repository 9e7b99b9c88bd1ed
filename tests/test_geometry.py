"""Closed-form geometry: agreement with scipy, scikit-learn and geomstats; axioms; accuracy."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.linalg as sla
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.covariance import ledoit_wolf as sk_ledoit_wolf
from sklearn.decomposition import PCA

import latentgeo.geometry as geo

F64 = {"rtol": 1e-8, "atol": 1e-12}
seeds = st.integers(0, 2**32 - 1)
AXIOMS = settings(max_examples=20, deadline=None)


def _basis(rng, d, k):
    return torch.from_numpy(np.linalg.qr(rng.standard_normal((d, k)))[0])


def _spd(rng, n, cond=10.0):
    Q = np.linalg.qr(rng.standard_normal((n, n)))[0]
    w = np.exp(rng.uniform(0, math.log(cond), n))
    return torch.from_numpy((Q * w) @ Q.T)


def _rotation(rng, k):
    Q = np.linalg.qr(rng.standard_normal((k, k)))[0]
    if np.linalg.det(Q) < 0:
        Q[:, 0] *= -1
    return torch.from_numpy(Q)


def _unit(rng, n):
    x = rng.standard_normal(n)
    return torch.from_numpy(x / np.linalg.norm(x))


# --- principal angles and Grassmann distances -----------------------------------------------


@pytest.mark.parametrize(("d", "k", "l"), [(7, 3, 3), (12, 2, 5), (12, 5, 2), (9, 1, 1)])
def test_principal_angles_match_scipy(rng, d, k, l):
    U, V = _basis(rng, d, k), _basis(rng, d, l)
    ours = geo.principal_angles(U, V).numpy()
    ref = np.sort(sla.subspace_angles(U.numpy(), V.numpy()))
    assert ours.shape == (min(k, l),)
    np.testing.assert_allclose(ours, ref, **F64)
    assert np.all(np.diff(ours) >= 0), "angles must be ascending"


def test_principal_angles_broadcast_to_distance_matrix(rng):
    T, d, k = 5, 8, 3
    P = torch.stack([_basis(rng, d, k) for _ in range(T)])
    D = geo.grassmann_distance(P[:, None], P[None, :])
    assert D.shape == (T, T)
    for i in range(T):
        for j in range(T):
            ref = np.linalg.norm(sla.subspace_angles(P[i].numpy(), P[j].numpy()))
            np.testing.assert_allclose(D[i, j].item(), ref, **F64)


@pytest.mark.parametrize("angle", [1e-10, 1e-13, 1e-6, math.pi / 2 - 1e-10])
def test_principal_angles_resolve_tiny_and_right_angles(angle):
    # Rotate e_1, e_2 by `angle` towards e_3, e_4: exactly representable planted angles.
    d, k = 6, 2
    U = torch.eye(d, dtype=torch.float64)[:, :k]
    V = torch.zeros(d, k, dtype=torch.float64)
    V[0, 0] = V[1, 1] = math.cos(angle)
    V[2, 0] = V[3, 1] = math.sin(angle)
    theta = geo.principal_angles(U, V)
    np.testing.assert_allclose(theta.numpy(), [angle, angle], rtol=1e-12)
    # arccos of the singular values cannot do this: it floors near 1e-8.
    if angle < 1e-9:
        naive = torch.arccos(torch.linalg.svdvals(U.T @ V).clamp(max=1))
        assert not torch.allclose(naive, theta, rtol=1e-3, atol=0)


def test_grassmann_conventions_and_basis_invariance(rng):
    d, k = 10, 3
    U, V = _basis(rng, d, k), _basis(rng, d, k)
    theta = np.sort(sla.subspace_angles(U.numpy(), V.numpy()))
    np.testing.assert_allclose(geo.grassmann_distance(U, V).item(), np.linalg.norm(theta), **F64)
    np.testing.assert_allclose(
        geo.grassmann_distance(U, V, convention="geomstats").item(),
        math.sqrt(2) * np.linalg.norm(theta),
        **F64,
    )
    proj = np.linalg.norm(U.numpy() @ U.numpy().T - V.numpy() @ V.numpy().T) / math.sqrt(2)
    np.testing.assert_allclose(
        geo.grassmann_distance(U, V, convention="chordal").item(), proj, **F64
    )
    # A point of Gr(d, k) is a subspace: any other basis of it is at distance zero.
    Q = _rotation(rng, k)
    assert geo.grassmann_distance(U, U @ Q).item() < 1e-12


def test_grassmann_float32_keeps_dtype(rng):
    U, V = _basis(rng, 9, 3), _basis(rng, 9, 3)
    d32 = geo.grassmann_distance(U.float(), V.float())
    assert d32.dtype == torch.float32
    np.testing.assert_allclose(d32.item(), geo.grassmann_distance(U, V).item(), rtol=1e-4)


def test_grassmann_rejects_bad_input(rng):
    U = _basis(rng, 6, 2)
    with pytest.raises(ValueError, match="orthonormal"):
        geo.grassmann_distance(U, 2 * U)
    with pytest.raises(ValueError, match="convention"):
        geo.grassmann_distance(U, U, convention="bogus")
    with pytest.raises(ValueError, match="ambient dimension"):
        geo.principal_angles(U, _basis(rng, 7, 2))
    with pytest.raises(TypeError, match="numeric"):
        geo.grassmann_distance(U, "not an array")


# --- metric axioms (hypothesis) --------------------------------------------------------------


def _points(metric, rng, n_points):
    if metric == "grassmann":
        return [_basis(rng, 7, 3) for _ in range(n_points)]
    if metric in ("spd_affine", "spd_log_euclidean", "bures_wasserstein"):
        return [_spd(rng, 4, cond=50.0) for _ in range(n_points)]
    if metric == "orthogonal":
        return [_rotation(rng, 4) for _ in range(n_points)]
    if metric == "sphere":
        return [_unit(rng, 5) for _ in range(n_points)]
    base = rng.standard_normal((12, 4))
    # Representations near each other (as successive checkpoints are) and far apart.
    scale = rng.choice([0.01, 1.0, 10.0])
    return [torch.from_numpy(base + scale * rng.standard_normal((12, 4))) for _ in range(n_points)]


@pytest.mark.parametrize(
    "metric",
    [
        "grassmann",
        "spd_affine",
        "spd_log_euclidean",
        "bures_wasserstein",
        "orthogonal",
        "sphere",
        "procrustes",
        "cka",
    ],
)
@AXIOMS
@given(seed=seeds)
def test_metric_axioms(metric, seed):
    rng = np.random.default_rng(seed)
    a, b, c = _points(metric, rng, 3)
    dab = geo.distance(a, b, metric).item()
    dba = geo.distance(b, a, metric).item()
    dac = geo.distance(a, c, metric).item()
    dcb = geo.distance(c, b, metric).item()
    assert dab >= 0
    assert math.isclose(dab, dba, rel_tol=1e-9, abs_tol=1e-12)
    assert geo.distance(a, a, metric).item() <= 1e-7  # cka floors at sqrt(eps)
    assert dab <= dac + dcb + 1e-10 * (1 + dac + dcb)


# --- SPD --------------------------------------------------------------------------------------


def _geomstats_spd_dist(metric, A, B):
    from latentgeo.geometry import SPD

    return float(SPD(A.shape[-1], metric).space.metric.dist(A.numpy(), B.numpy()))


@pytest.mark.parametrize("metric", ["affine", "log_euclidean", "bures_wasserstein"])
def test_spd_distance_matches_geomstats(rng, metric):
    for _ in range(3):
        A, B = _spd(rng, 5, cond=100.0), _spd(rng, 5, cond=100.0)
        np.testing.assert_allclose(
            geo.spd_distance(A, B, metric=metric).item(), _geomstats_spd_dist(metric, A, B), **F64
        )


def test_spd_closed_forms_on_commuting_matrices(rng):
    a, b = rng.uniform(0.1, 5, 4), rng.uniform(0.1, 5, 4)
    Q = np.linalg.qr(rng.standard_normal((4, 4)))[0]
    A, B = torch.from_numpy((Q * a) @ Q.T), torch.from_numpy((Q * b) @ Q.T)
    log_ratio = np.linalg.norm(np.log(a) - np.log(b))
    np.testing.assert_allclose(geo.spd_distance(A, B, "affine").item(), log_ratio, **F64)
    np.testing.assert_allclose(geo.spd_distance(A, B, "log_euclidean").item(), log_ratio, **F64)
    np.testing.assert_allclose(
        geo.spd_distance(A, B, "bures_wasserstein").item(),
        np.linalg.norm(np.sqrt(a) - np.sqrt(b)),
        **F64,
    )


def test_spd_affine_invariance_and_batching(rng):
    A = torch.stack([_spd(rng, 4) for _ in range(3)])
    B = torch.stack([_spd(rng, 4) for _ in range(3)])
    M = torch.from_numpy(rng.standard_normal((4, 4)))
    d = geo.spd_distance(A, B)
    assert d.shape == (3,)
    np.testing.assert_allclose(
        geo.spd_distance(M @ A @ M.T, M @ B @ M.T).numpy(), d.numpy(), rtol=1e-7
    )
    # Orthogonal congruence preserves all three metrics.
    Q = _rotation(rng, 4)
    for metric in ("log_euclidean", "bures_wasserstein"):
        np.testing.assert_allclose(
            geo.spd_distance(Q @ A @ Q.T, Q @ B @ Q.T, metric).numpy(),
            geo.spd_distance(A, B, metric).numpy(),
            **F64,
        )


def test_spd_rejects_bad_input(rng):
    A = _spd(rng, 3)
    with pytest.raises(ValueError, match="symmetric"):
        geo.spd_distance(A + torch.triu(torch.ones(3, 3, dtype=torch.float64), 1), A)
    with pytest.raises(ValueError, match="positive definite"):
        geo.spd_distance(-A, A, "log_euclidean")
    with pytest.raises(ValueError, match="positive definite"):
        geo.spd_distance(-A, A, "affine")
    with pytest.raises(ValueError, match="metric"):
        geo.spd_distance(A, A, "riemann")


# --- orthogonal group and sphere --------------------------------------------------------------


@pytest.mark.parametrize("k", [2, 3, 4, 5])
def test_orthogonal_distance_matches_geomstats(rng, k):
    from latentgeo.geometry import SO

    space = SO(k).space
    for _ in range(3):
        R1, R2 = _rotation(rng, k), _rotation(rng, k)
        ref = float(space.metric.dist(R1.numpy(), R2.numpy()))
        np.testing.assert_allclose(geo.orthogonal_distance(R1, R2).item(), ref, **F64)


def test_orthogonal_distance_planted_angles_and_invariance(rng):
    # Rotation by (a, b) in two planes of R^5 is at distance sqrt(a^2 + b^2) from the identity.
    for a, b in [(1e-10, 0.0), (0.3, 2.9), (math.pi - 1e-9, 1e-12)]:
        R = torch.eye(5, dtype=torch.float64)
        R[0, 0] = R[1, 1] = math.cos(a)
        R[1, 0], R[0, 1] = math.sin(a), -math.sin(a)
        R[2, 2] = R[3, 3] = math.cos(b)
        R[3, 2], R[2, 3] = math.sin(b), -math.sin(b)
        I = torch.eye(5, dtype=torch.float64)
        np.testing.assert_allclose(
            geo.orthogonal_distance(I, R).item(), math.hypot(a, b), rtol=1e-9
        )
        Q1, Q2 = _rotation(rng, 5), _rotation(rng, 5)
        np.testing.assert_allclose(
            geo.orthogonal_distance(Q1 @ Q2, Q1 @ R @ Q2).item(), math.hypot(a, b), rtol=1e-6
        )
    flip = torch.diag(torch.tensor([1.0, 1, 1, 1, -1], dtype=torch.float64))
    assert math.isinf(geo.orthogonal_distance(torch.eye(5, dtype=torch.float64), flip).item())


def test_orthogonalize_is_polar_factor(rng):
    rho = torch.from_numpy(rng.standard_normal((4, 5, 5)))
    Q = geo.orthogonalize(rho)
    for i in range(4):
        ref, _ = sla.orthogonal_procrustes(np.eye(5), rho[i].numpy())
        np.testing.assert_allclose(Q[i].numpy(), ref, rtol=1e-10, atol=1e-12)
    eye = torch.eye(5, dtype=torch.float64).expand(4, 5, 5)
    np.testing.assert_allclose((Q.mT @ Q).numpy(), eye.numpy(), atol=1e-13)
    S = geo.orthogonalize(rho, special=True)
    np.testing.assert_allclose(torch.linalg.det(S).numpy(), np.ones(4), rtol=1e-12)
    # An orthogonal input is its own polar factor; a scaled rotation maps to the rotation.
    R = _rotation(rng, 5)
    np.testing.assert_allclose(geo.orthogonalize(3.0 * R).numpy(), R.numpy(), atol=1e-13)


def test_special_orthogonalize_is_nearest_rotation(rng):
    rho = torch.from_numpy(rng.standard_normal((3, 3)))
    if torch.linalg.det(rho) > 0:
        rho[:, 0] *= -1
    S = geo.orthogonalize(rho, special=True)
    best = torch.linalg.matrix_norm(rho - S).item()
    for _ in range(200):  # no rotation nearby is closer
        R = S @ torch.linalg.matrix_exp(
            0.05 * (lambda A: A - A.T)(torch.from_numpy(rng.standard_normal((3, 3))))
        )
        assert torch.linalg.matrix_norm(rho - R).item() >= best - 1e-12


def test_sphere_distance_matches_geomstats_and_small_angles(rng):
    from latentgeo.geometry import Sphere

    space = Sphere(4).space
    x, y = _unit(rng, 5), _unit(rng, 5)
    np.testing.assert_allclose(
        geo.sphere_distance(x, y).item(), float(space.metric.dist(x.numpy(), y.numpy())), **F64
    )
    e1 = torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64)
    for angle in (1e-12, 1e-8, 1.0, math.pi - 1e-9):
        v = torch.tensor([math.cos(angle), math.sin(angle), 0.0], dtype=torch.float64)
        np.testing.assert_allclose(geo.sphere_distance(e1, v).item(), angle, rtol=1e-9)
    # Directions: scale does not matter.
    np.testing.assert_allclose(geo.sphere_distance(3 * x, 0.5 * y), geo.sphere_distance(x, y))
    with pytest.raises(ValueError, match="zero vectors"):
        geo.sphere_distance(torch.zeros(5), y)


# --- representational shape -------------------------------------------------------------------


def _procrustes_reference(X, Y):
    X = X - X.mean(0)
    Y = Y - Y.mean(0)
    p = max(X.shape[1], Y.shape[1])
    X = np.pad(X, ((0, 0), (0, p - X.shape[1]))) / np.linalg.norm(X)
    Y = np.pad(Y, ((0, 0), (0, p - Y.shape[1]))) / np.linalg.norm(Y)
    R, _ = sla.orthogonal_procrustes(Y, X)
    return np.arccos(np.clip(np.sum(X * (Y @ R)), -1, 1))


@pytest.mark.parametrize(("p", "q"), [(4, 4), (6, 3), (3, 6)])
def test_procrustes_matches_scipy(rng, p, q):
    X, Y = rng.standard_normal((20, p)), rng.standard_normal((20, q))
    np.testing.assert_allclose(
        geo.procrustes_distance(X, Y).item(), _procrustes_reference(X, Y), **F64
    )


def test_procrustes_invariances_and_small_distances(rng):
    X = rng.standard_normal((30, 5))
    Q = _rotation(rng, 5).numpy()
    Y = 2.5 * X @ Q + rng.standard_normal(5)  # rotate, scale, translate
    assert geo.procrustes_distance(X, Y).item() < 1e-7
    # A planted angle: X^ and the unit direction N orthogonal to every rotation of X^.
    Xc = X - X.mean(0)
    Xc /= np.linalg.norm(Xc)
    eps = 1e-9
    N = np.zeros_like(Xc)
    N[:, :] = rng.standard_normal(Xc.shape)
    N -= N.mean(0)
    # Make Xc^T N symmetric (the optimal rotation of Y onto Xc is then the identity) and N
    # orthogonal to Xc, so that <Xc, Y> = cos(eps) is the planted Procrustes angle.
    A = Xc.T @ N
    N -= Xc @ np.linalg.solve(Xc.T @ Xc, 0.5 * (A - A.T))
    N -= Xc * np.sum(Xc * N)
    N /= np.linalg.norm(N)
    Y = np.cos(eps) * Xc + np.sin(eps) * N
    # The inputs carry rounding errors of ~1e-16, so 1e-9 is resolved to ~1e-7 relative;
    # arccos of the nuclear norm would return ~1e-8 or 0 here.
    np.testing.assert_allclose(geo.procrustes_distance(Xc, Y).item(), eps, rtol=1e-6)


def _hsic_gram(K, L, unbiased):
    n = K.shape[0]
    if not unbiased:
        H = np.eye(n) - 1.0 / n
        return np.sum((H @ K @ H) * (H @ L @ H))
    K, L = K.copy(), L.copy()
    np.fill_diagonal(K, 0)
    np.fill_diagonal(L, 0)
    one = np.ones(n)
    return (
        np.trace(K @ L)
        + (one @ K @ one) * (one @ L @ one) / ((n - 1) * (n - 2))
        - 2.0 / (n - 2) * (one @ K @ L @ one)
    ) / (n * (n - 3))


@pytest.mark.parametrize("debiased", [False, True])
def test_linear_cka_matches_gram_formula(rng, debiased):
    X, Y = rng.standard_normal((25, 6)), rng.standard_normal((25, 4))
    X[:, 0] += 3 * Y[:, 0]
    Xc, Yc = X - X.mean(0), Y - Y.mean(0)
    K, L = Xc @ Xc.T, Yc @ Yc.T
    ref = _hsic_gram(K, L, debiased) / math.sqrt(
        _hsic_gram(K, K, debiased) * _hsic_gram(L, L, debiased)
    )
    np.testing.assert_allclose(geo.linear_cka(X, Y, debiased=debiased).item(), ref, **F64)


def test_linear_cka_invariances(rng):
    X = rng.standard_normal((40, 6))
    Q = _rotation(rng, 6).numpy()
    np.testing.assert_allclose(geo.linear_cka(X, 4 * X @ Q + 1).item(), 1.0, rtol=1e-12)
    with pytest.raises(ValueError, match="at least 4 samples"):
        geo.linear_cka(X[:3], X[:3], debiased=True)
    with pytest.raises(ValueError, match="same samples"):
        geo.linear_cka(X, X[:10])


# --- intrinsic dimension ------------------------------------------------------------------------


@pytest.mark.parametrize("estimator", ["regression", "mle"])
@pytest.mark.parametrize("dim", [2, 5])
def test_twonn_recovers_planted_dimension(rng, estimator, dim):
    n = 2000
    basis = np.linalg.qr(rng.standard_normal((30, dim)))[0]
    X = rng.standard_normal((n, dim)) @ basis.T
    est = geo.twonn_dimension(X, estimator=estimator)
    # The MLE's standard error is d / sqrt(n) (about 0.11 for d = 5); allow 4 of them.
    assert abs(est - dim) < 4 * dim / math.sqrt(n)


def test_twonn_rejects_duplicates(rng):
    X = rng.standard_normal((50, 3))
    X[1] = X[0]
    with pytest.raises(ValueError, match="duplicate"):
        geo.twonn_dimension(X)


# --- summaries --------------------------------------------------------------------------------


def test_principal_subspace_matches_sklearn_pca(rng):
    Z = rng.standard_normal((4, 50, 12)) @ np.diag(np.linspace(3, 0.1, 12))
    U = geo.principal_subspace(Z, 3)
    assert U.shape == (12, 3)
    ref = PCA(3, svd_solver="full").fit(Z.reshape(-1, 12)).components_.T
    assert geo.grassmann_distance(U, torch.from_numpy(ref)).item() < 1e-10
    np.testing.assert_allclose((U.T @ U).numpy(), np.eye(3), atol=1e-13)
    with pytest.raises(ValueError, match="k=13"):
        geo.principal_subspace(Z, 13)


def test_shrinkage_covariance_matches_sklearn(rng):
    X = rng.standard_normal((30, 6)) @ rng.standard_normal((6, 6))
    for assume_centered in (False, True):
        cov, s = geo.ledoit_wolf(X, assume_centered=assume_centered)
        ref_cov, ref_s = sk_ledoit_wolf(X, assume_centered=assume_centered)
        np.testing.assert_allclose(cov.numpy(), ref_cov, **F64)
        np.testing.assert_allclose(s.item(), ref_s, **F64)
    # Batched over leading dims, equal to one call per batch entry.
    Xb = rng.standard_normal((3, 15, 4))
    covb, _ = geo.ledoit_wolf(Xb)
    for i in range(3):
        np.testing.assert_allclose(covb[i].numpy(), sk_ledoit_wolf(Xb[i])[0], **F64)
    # In a fixed basis: the Ledoit-Wolf covariance of the projected latents.
    Z = rng.standard_normal((2, 20, 8))
    B = _basis(rng, 8, 3)
    C = geo.shrinkage_covariance(Z, 3, basis=B)
    np.testing.assert_allclose(C.numpy(), sk_ledoit_wolf(Z.reshape(-1, 8) @ B.numpy())[0], **F64)
    assert float(torch.linalg.eigvalsh(C).min()) > 0
    one = geo.shrinkage_covariance(Z, 1)
    np.testing.assert_allclose(
        one.numpy(),
        sk_ledoit_wolf(Z.reshape(-1, 8) @ geo.principal_subspace(Z, 1).numpy())[0],
        **F64,
    )
    with pytest.raises(ValueError, match="basis must have shape"):
        geo.shrinkage_covariance(Z, 2, basis=B)


def test_isotypic_subspace_recovers_planted_components(rng):
    from latentgeo.groups import Cyclic

    n, N, d = 6, 40, 10
    G = Cyclic(n)  # irreps A, B, E1, E2: E2 is the frequency-2 rotation
    basis = np.linalg.qr(rng.standard_normal((d, 3)))[0]
    u, v1, v2 = basis.T
    g = np.arange(n)[:, None, None]
    a, b, c = (rng.standard_normal((1, N, 1)) for _ in range(3))
    # Invariant part along u, frequency-2 part rotating in span(v1, v2).
    Z = a * u + (np.cos(2 * np.pi * 2 * g / n) * b + np.sin(2 * np.pi * 2 * g / n) * c) * v1
    Z = Z + (np.cos(2 * np.pi * 2 * g / n) * c - np.sin(2 * np.pi * 2 * g / n) * b) * v2
    Z = Z + 1e-9 * rng.standard_normal(Z.shape)
    U2 = geo.isotypic_subspace(Z, G, "E2", 2)
    assert geo.grassmann_distance(U2, torch.from_numpy(basis[:, 1:])).item() < 1e-6
    U0 = geo.isotypic_subspace(Z, G, "A", 1)
    assert geo.grassmann_distance(U0, torch.from_numpy(basis[:, :1])).item() < 1e-6
    with pytest.raises(ValueError, match="irrep must be one of"):
        geo.isotypic_subspace(Z, G, "nope", 1)
    with pytest.raises(ValueError, match="elements along axis 0"):
        geo.isotypic_subspace(Z[:4], G, "E2", 2)


# --- pairwise distances -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "metric",
    [
        "grassmann",
        "spd_affine",
        "spd_log_euclidean",
        "bures_wasserstein",
        "orthogonal",
        "sphere",
        "procrustes",
        "cka",
    ],
)
def test_pairwise_distances_equal_pair_by_pair(rng, metric):
    pts = torch.stack(_points(metric, rng, 5))
    D = geo.pairwise_distances(pts, metric, chunk_size=3)
    assert D.shape == (5, 5)
    ref = torch.stack([torch.stack([geo.distance(a, b, metric) for b in pts]) for a in pts])
    ref.fill_diagonal_(0)
    np.testing.assert_allclose(D.numpy(), ref.numpy(), **F64)
    np.testing.assert_array_equal(D.numpy(), D.numpy().T)
    cross = geo.pairwise_distances(pts[:2], metric, other=pts[2:])
    np.testing.assert_allclose(cross.numpy(), ref[:2, 2:].numpy(), **F64)


def test_pairwise_distances_callable_and_errors(rng):
    pts = torch.from_numpy(rng.standard_normal((4, 3)))
    D = geo.pairwise_distances(pts, lambda a, b: torch.linalg.vector_norm(a - b))
    np.testing.assert_allclose(D.numpy(), geo.pairwise_distances(pts, "euclidean").numpy(), **F64)
    with pytest.raises(ValueError, match="metric must be one of"):
        geo.pairwise_distances(pts, "manhattan")
    with pytest.raises(ValueError, match="orthonormal"):
        geo.pairwise_distances(torch.ones(3, 4, 2), "grassmann")


def test_isotypic_subspace_with_a_real_group(rng):
    from latentgeo.groups import Dihedral

    G = Dihedral(4)
    E = next(irrep for irrep in G.irreps() if irrep.dim == 2)
    N, d = 30, 9
    basis = np.linalg.qr(rng.standard_normal((d, 3)))[0]
    c = rng.standard_normal((N, 2))
    a = rng.standard_normal(N)
    # z(g . x_i) = V rho_E(g) c_i + a_i u: equivariant in span(V), invariant along u.
    Z = np.einsum("gab,nb->gna", E.matrices, c) @ basis[:, :2].T
    Z = Z + a[None, :, None] * basis[:, 2]
    UE = geo.isotypic_subspace(Z, G, E.name, 2)
    assert geo.grassmann_distance(UE, torch.from_numpy(basis[:, :2])).item() < 1e-10
    U0 = geo.isotypic_subspace(Z, G, 0, 1)  # irreps[0] is the trivial irrep
    assert geo.grassmann_distance(U0, torch.from_numpy(basis[:, 2:])).item() < 1e-10
    U0b = geo.isotypic_subspace(Z, G, G.irreps()[0], 1)
    np.testing.assert_allclose(U0b.numpy(), U0.numpy())


@pytest.mark.parametrize(
    "metric",
    [
        "grassmann",
        "spd_affine",
        "spd_log_euclidean",
        "bures_wasserstein",
        "orthogonal",
        "sphere",
        "procrustes",
        "cka",
    ],
)
def test_float32_inputs_stay_float32_and_agree(rng, metric):
    pts = torch.stack(_points(metric, rng, 4))
    if metric in ("procrustes", "cka"):
        pts = torch.from_numpy(rng.standard_normal((4, 12, 4)))  # well separated shapes
    D64 = geo.pairwise_distances(pts, metric)
    D32 = geo.pairwise_distances(pts.float(), metric)
    assert D32.dtype == torch.float32
    np.testing.assert_allclose(D32.numpy(), D64.numpy(), rtol=1e-4, atol=1e-5)
