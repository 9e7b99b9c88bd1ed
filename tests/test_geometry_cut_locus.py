"""exp / log / geodesics / means at and near the cut locus: Grassmannian, sphere, SO(3), SO(n).

Planted truth: points built from a known tangent (``Y = U cos(theta) + W sin(theta)`` on the
Grassmannian, ``y = cos(theta) x + sin(theta) t`` on the sphere, ``R = expm(A)`` on SO(n)), so
the log is known exactly. Near the cut locus the log is ill-conditioned (its direction moves by
about ``eps / sin`` of the distance to the cut locus when the input is rounded), so directions
are checked to that bound; ``||log|| = distance`` and ``exp(log y) = y`` hold to the dtype's
precision everywhere. Away from the cut locus the closed forms agree with geomstats.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

import latentgeo.geometry as geo

F64 = torch.float64
NEAR = [1e-1, 1e-3, 1e-6, 1e-9, 1e-12]  # distance to the cut locus


def _eps(dtype):
    return float(torch.finfo(dtype).eps)


def _frame(seed, n):
    g = torch.Generator().manual_seed(seed)
    return torch.linalg.qr(torch.randn(n, n, dtype=F64, generator=g))[0]


# --- Grassmannian ---------------------------------------------------------------------------


def _planted_grassmann(seed, theta, d=8):
    """U, Y = U cos + W sin (in a rotated basis), and the exact log W diag(theta)."""
    k = theta.numel()
    Q = _frame(seed, d)
    U, W = Q[:, :k], Q[:, k : 2 * k]
    Y = U * torch.cos(theta) + W * torch.sin(theta)
    R = _frame(seed + 1, k)
    return U, Y @ R, W * theta


@pytest.mark.parametrize("dtype", [F64, torch.float32])
@pytest.mark.parametrize("gap", NEAR)
def test_grassmann_log_near_right_angles(dtype, gap):
    eps = _eps(dtype)
    # Two angles near pi/2 (a cluster: the hardest case), one ordinary angle.
    theta = torch.tensor([math.pi / 2 - gap, 0.4, math.pi / 2 - 2 * gap], dtype=F64)
    U, Y, D_true = _planted_grassmann(0, theta)
    U, Y = U.to(dtype), Y.to(dtype)
    D = geo.grassmann_log(Y, U)
    assert D.dtype == dtype and D.shape == (8, 3)
    dist = geo.grassmann_distance(U, Y)
    # Horizontal, and the norm is the arc distance, to the dtype's precision.
    assert (U.mT @ D).abs().max().item() < 8 * eps
    np.testing.assert_allclose(torch.linalg.matrix_norm(D).item(), dist.item(), atol=16 * eps)
    # exp(log Y) spans Y.
    back = geo.grassmann_exp(D, U)
    assert geo.grassmann_distance(back, Y).item() < 64 * eps
    assert (back.mT @ back - torch.eye(3, dtype=dtype)).abs().max().item() < 8 * eps
    # The planted log, to the conditioning bound eps / cos(largest angle).
    cos_max = math.cos(math.pi / 2 - gap)
    if 4 * eps / cos_max < 1e-2:
        err = (D.double() - D_true).abs().max().item()
        assert err < 4 * eps / cos_max + 8 * eps


def test_grassmann_log_at_right_angles_is_a_minimising_geodesic():
    # Exactly pi/2: one, two and all angles; the log has the right norm and reaches Y.
    e = torch.eye(6, dtype=F64)
    U = e[:, :3]
    for Y in (e[:, [0, 1, 3]], e[:, [0, 3, 4]], e[:, [3, 4, 5]]):
        D = geo.grassmann_log(Y, U)
        theta = geo.principal_angles(U, Y)
        assert torch.linalg.matrix_norm(D).item() == pytest.approx(
            torch.linalg.vector_norm(theta).item(), abs=1e-15
        )
        assert geo.grassmann_distance(geo.grassmann_exp(D, U), Y).item() < 1e-15
        assert (U.T @ D).abs().max().item() < 1e-15
    # An ordinary angle beside a right angle is still planted exactly.
    theta = torch.tensor([math.pi / 2, 0.7], dtype=F64)
    U, Y, _ = _planted_grassmann(3, theta, d=5)
    D = geo.grassmann_log(Y, U)
    # The pi/2 direction's sign is a choice; its column space and the other one are not.
    R = torch.linalg.svd(D, full_matrices=False)
    np.testing.assert_allclose(R.S.numpy(), [math.pi / 2, 0.7], atol=1e-14)


def test_grassmann_log_laws_and_geomstats_agreement(rng):
    Gr = geo.Grassmann(6, 2)
    metric = Gr.space.metric
    for seed in range(4):
        U = _frame(seed, 6)[:, :2]
        Y = _frame(seed + 10, 6)[:, :2]
        D = geo.grassmann_log(Y, U)
        # Basis invariance: log depends on the subspaces only (a basis change of the base
        # rotates the tangent with it).
        R = _frame(seed + 20, 2)
        torch.testing.assert_close(geo.grassmann_log(Y @ R, U), D, rtol=0, atol=1e-13)
        torch.testing.assert_close(geo.grassmann_log(Y, U @ R), D @ R, rtol=0, atol=1e-13)
        # Agreement with geomstats (projector representation) away from the cut locus.
        X = metric.log((Y @ Y.T).numpy(), (U @ U.T).numpy())
        np.testing.assert_allclose((D @ U.T + U @ D.T).numpy(), X, rtol=1e-8, atol=1e-10)
        P = metric.exp((D @ U.T + U @ D.T).numpy(), (U @ U.T).numpy())
        Z = geo.grassmann_exp(D, U)
        np.testing.assert_allclose((Z @ Z.T).numpy(), P, rtol=1e-8, atol=1e-10)
        np.testing.assert_allclose(
            math.sqrt(2) * torch.linalg.matrix_norm(D).item(),
            float(metric.dist((Y @ Y.T).numpy(), (U @ U.T).numpy())),
            rtol=1e-10,
        )
    # Batched and broadcast: a (3, 1) against a (1, 4) stack equals pair by pair.
    A = torch.stack([_frame(s, 6)[:, :2] for s in range(3)])[:, None]
    B = torch.stack([_frame(s + 5, 6)[:, :2] for s in range(4)])[None]
    out = geo.grassmann_log(A, B)
    assert out.shape == (3, 4, 6, 2)
    torch.testing.assert_close(out[2, 1], geo.grassmann_log(A[2, 0], B[0, 1]))
    # exp of the zero tangent and log of the base point itself.
    U = _frame(0, 6)[:, :2]
    assert geo.grassmann_log(U, U).abs().max().item() < 1e-15
    torch.testing.assert_close(geo.grassmann_exp(torch.zeros(6, 2, dtype=F64), U), U)


# --- sphere -------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [F64, torch.float32])
@pytest.mark.parametrize("gap", [*NEAR, 1e-15])
def test_sphere_log_near_antipodes(dtype, gap):
    eps = _eps(dtype)
    Q = _frame(1, 5)
    x, t = Q[:, 0], Q[:, 1]
    theta = math.pi - gap
    y = math.cos(theta) * x + math.sin(theta) * t
    x, y = x.to(dtype), y.to(dtype)
    v = geo.sphere_log(y, x)
    assert v.dtype == dtype
    assert abs((x * v).sum().item()) < 8 * eps
    np.testing.assert_allclose(
        torch.linalg.vector_norm(v).item(), geo.sphere_distance(x, y).item(), atol=8 * eps
    )
    assert geo.sphere_distance(geo.sphere_exp(v, x), y).item() < 8 * eps + 1e-300
    sin = math.sin(theta)
    if 4 * eps / sin < 1e-2:  # the planted direction, to the conditioning bound
        err = (v.double() - theta * t).abs().max().item()
        assert err < 4 * math.pi * eps / sin + 8 * eps


def test_sphere_log_small_angles_and_antipodal_choice():
    Q = _frame(2, 4)
    x, t = Q[:, 0], Q[:, 1]
    for theta in (1e-15, 1e-9, 1e-4):
        y = math.cos(theta) * x + math.sin(theta) * t
        v = geo.sphere_log(y, x)
        # Accurate to the rounding of y itself (no cancellation in y - x).
        np.testing.assert_allclose(v.numpy(), (theta * t).numpy(), rtol=1e-12, atol=4e-16)
    # Exactly antipodal: pi towards the coordinate axis least aligned with the base point.
    x = torch.tensor([0.48, 0.6, 0.0, 0.64], dtype=F64)  # a unit vector, smallest |x_j| at j=2
    v = geo.sphere_log(-x, x)
    e = torch.zeros(4, dtype=F64)
    e[2] = 1.0
    expected = math.pi * (e - x[2] * x) / torch.linalg.vector_norm(e - x[2] * x)
    torch.testing.assert_close(v, expected, rtol=0, atol=1e-15)
    torch.testing.assert_close(geo.sphere_exp(v, x), -x, rtol=0, atol=1e-15)
    x = torch.tensor([0.6, 0.8, 0.0], dtype=F64)  # the antipode's log for a batch too
    v = geo.sphere_log(torch.stack([-x, x]), x)
    torch.testing.assert_close(v[0], torch.tensor([0.0, 0.0, math.pi], dtype=F64))
    assert v[1].abs().max().item() == 0.0
    with pytest.raises(ValueError, match="zero vectors"):
        geo.sphere_log(torch.zeros(3), torch.ones(3))


def test_sphere_agrees_with_geomstats_away_from_antipodes(rng):
    S = geo.Sphere(4)
    for _ in range(5):
        x = torch.from_numpy(rng.standard_normal(5))
        y = torch.from_numpy(rng.standard_normal(5))
        x, y = x / x.norm(), y / y.norm()
        v = geo.sphere_log(y, x)
        np.testing.assert_allclose(
            v.numpy(), S.space.metric.log(y.numpy(), x.numpy()), rtol=1e-9, atol=1e-12
        )
        np.testing.assert_allclose(
            geo.sphere_exp(v, x).numpy(), S.space.metric.exp(v.numpy(), x.numpy()), atol=1e-12
        )


# --- SO(3) and SO(n) ----------------------------------------------------------------------


def _rotvec(A):
    return torch.stack([A[..., 2, 1], A[..., 0, 2], A[..., 1, 0]], dim=-1)


@pytest.mark.parametrize("dtype", [F64, torch.float32])
@pytest.mark.parametrize("gap", [*NEAR, 1e-15])
def test_so3_log_near_pi_matches_scipy(dtype, gap):
    eps = _eps(dtype)
    axis = np.array([0.3, -0.5, 0.8]) / np.linalg.norm([0.3, -0.5, 0.8])
    theta = math.pi - gap
    R = Rotation.from_rotvec(theta * axis).as_matrix()
    base = Rotation.from_rotvec([0.2, 0.1, -0.4]).as_matrix()
    Rt, Bt = torch.from_numpy(base @ R).to(dtype), torch.from_numpy(base).to(dtype)
    V = geo.so_log(Rt, Bt)
    A = Bt.mT @ V
    assert V.dtype == dtype
    assert (A + A.mT).abs().max().item() < 8 * eps
    dist = geo.orthogonal_distance(Bt, Rt).item()
    np.testing.assert_allclose(
        torch.linalg.matrix_norm(A).item() / math.sqrt(2), dist, atol=8 * eps
    )
    np.testing.assert_allclose(geo.so_exp(V, Bt).numpy(), Rt.numpy(), atol=16 * eps)
    # scipy's quaternion-based rotation vector, to the conditioning bound near pi.
    ref = Rotation.from_matrix((Bt.mT @ Rt).double().numpy()).as_rotvec()
    sin = math.sin(theta)
    if 4 * eps / sin < 1e-2:
        err = np.abs(_rotvec(A).double().numpy() - ref).max()
        assert err < 4 * math.pi * eps / max(sin, eps) + 16 * eps


def test_so3_and_so2_choice_at_exactly_pi():
    # A rotation by exactly pi about an axis: the axis's largest component is made positive.
    for axis in ([0.0, 0.0, 1.0], [0.0, -0.6, 0.8], [-2.0, 1.0, 0.5]):
        a = torch.tensor(axis, dtype=F64)
        a = a / a.norm()
        R = 2 * torch.outer(a, a) - torch.eye(3, dtype=F64)  # exactly pi about a
        w = _rotvec(geo.so_logm(R))
        sign = torch.sign(a[a.abs().argmax()])
        torch.testing.assert_close(w, math.pi * sign * a, rtol=0, atol=1e-14)
    R2 = torch.tensor([[-1.0, 0.0], [0.0, -1.0]], dtype=F64)
    torch.testing.assert_close(
        geo.so_logm(R2), torch.tensor([[0.0, -math.pi], [math.pi, 0.0]], dtype=F64)
    )


@pytest.mark.parametrize("n", [4, 5, 6])
@pytest.mark.parametrize("gap", [0.5, 1e-4, 1e-9, 1e-13, 0.0])
def test_so_n_log_near_and_at_pi(n, gap):
    eps = _eps(F64)
    # Planted: one plane rotated by pi - gap, another by 1.1 (and, for n = 6, one by 1e-7).
    angles = [math.pi - gap, 1.1] + ([1e-7] if n == 6 else [])
    B = torch.zeros(n, n, dtype=F64)
    for i, a in enumerate(angles):
        B[2 * i + 1, 2 * i], B[2 * i, 2 * i + 1] = a, -a
    F = _frame(n, n)
    A_true = F @ B @ F.T
    R = torch.linalg.matrix_exp(A_true)
    A = geo.so_logm(R)
    assert (A + A.mT).abs().max().item() < 4 * eps
    dist = geo.orthogonal_distance(torch.eye(n, dtype=F64), R).item()
    np.testing.assert_allclose(
        torch.linalg.matrix_norm(A).item() / math.sqrt(2), dist, atol=32 * eps
    )
    np.testing.assert_allclose(torch.linalg.matrix_exp(A).numpy(), R.numpy(), atol=32 * eps)
    if gap >= 1e-9:  # away from exactly pi the log is unique: the planted one
        err = (A - A_true).abs().max().item()
        assert err < 4 * math.pi * eps / math.sin(gap) + 64 * eps


def test_so_n_agrees_with_geomstats_away_from_pi(rng):
    for n in (3, 4, 5):
        S = geo.SO(n)
        for _ in range(3):
            Q = [np.linalg.qr(rng.standard_normal((n, n)))[0] for _ in range(2)]
            Q = [q * np.sign(np.linalg.det(q)) if n % 2 else _fix(q) for q in Q]
            base, point = (torch.from_numpy(q) for q in Q)
            V = geo.so_log(point, base)
            np.testing.assert_allclose(
                V.numpy(), S.space.metric.log(point.numpy(), base.numpy()), atol=1e-9
            )
            np.testing.assert_allclose(
                geo.so_exp(V, base).numpy(),
                S.space.metric.exp(V.numpy(), base.numpy()),
                atol=1e-10,
            )


def _fix(q):
    if np.linalg.det(q) < 0:
        q = q.copy()
        q[:, 0] *= -1
    return q


def test_so_rejects_reflections_and_bad_shapes():
    with pytest.raises(ValueError, match="determinant"):
        geo.so_logm(torch.diag(torch.tensor([1.0, 1.0, -1.0], dtype=F64)))
    with pytest.raises(ValueError, match="orthogonal"):
        geo.so_log(torch.ones(3, 3), torch.eye(3))
    with pytest.raises(ValueError, match="same shape"):
        geo.grassmann_log(torch.eye(4)[:, :2], torch.eye(5)[:, :2])
    with pytest.raises(ValueError, match="orthonormal"):
        geo.grassmann_log(torch.eye(4)[:, :2], torch.ones(4, 2))


# --- the manifolds' means, geodesics and tangent PCA at the cut locus --------------------


def test_frechet_means_at_the_cut_locus_are_equidistant():
    e = torch.eye(6, dtype=F64)
    Gr = geo.Grassmann(6, 3)
    U, W = e[:, :3], e[:, 3:]  # three angles of pi/2
    m = Gr.frechet_mean(torch.stack([U, W]))
    np.testing.assert_allclose(
        [Gr.dist(m, U).item(), Gr.dist(m, W).item()], [Gr.dist(U, W).item() / 2] * 2, atol=1e-12
    )
    S = geo.Sphere(2)
    x = torch.tensor([0.0, 0.6, 0.8], dtype=F64)
    m = S.frechet_mean(torch.stack([x, -x]))
    np.testing.assert_allclose([S.dist(m, x).item(), S.dist(m, -x).item()], [math.pi / 2] * 2)
    SO3 = geo.SO(3)
    half_turn = torch.diag(torch.tensor([1.0, -1.0, -1.0], dtype=F64))
    m = SO3.frechet_mean(torch.stack([torch.eye(3, dtype=F64), half_turn]))
    np.testing.assert_allclose(
        [SO3.dist(m, torch.eye(3, dtype=F64)).item(), SO3.dist(m, half_turn).item()],
        [math.pi / 2] * 2,
        atol=1e-12,
    )


def test_geodesics_and_tangent_pca_through_the_cut_locus():
    e = torch.eye(4, dtype=F64)
    cases = [
        (geo.Grassmann(4, 2), e[:, :2], e[:, 2:]),
        (geo.Sphere(3), e[0], -e[0]),
        (geo.SO(3), torch.eye(3, dtype=F64), torch.diag(torch.tensor([-1.0, -1.0, 1.0]))),
        (geo.SO(4), e, -e),
    ]
    for manifold, a, b in cases:
        total = manifold.dist(a, b).item()
        curve = manifold.geodesic(a, b, torch.linspace(0, 1, 5))
        assert manifold.dist(curve[-1], b).item() < 1e-12, repr(manifold)
        np.testing.assert_allclose(
            manifold.dist(curve[:-1], curve[1:]).numpy(), [total / 4] * 4, rtol=1e-10
        )
        # Tangent coordinates at a: the far point sits at the full distance (geomstats' zero
        # log put it on top of a).
        coords = manifold.tangent_pca(torch.stack([a, b]), n_components=1, base=a)
        np.testing.assert_allclose(abs(coords[1, 0] - coords[0, 0]).item(), total, rtol=1e-12)


def test_karcher_mean_warns_when_it_does_not_converge():
    S = geo.Sphere(2)
    g = torch.Generator().manual_seed(0)
    pts = torch.randn(6, 3, dtype=F64, generator=g)
    pts = pts / pts.norm(dim=1, keepdim=True)
    with pytest.warns(RuntimeWarning, match="max_iter=1"):
        S.frechet_mean(pts, max_iter=1, tol=1e-14)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_closed_forms_run_on_the_inputs_device():
    dev = torch.device("cuda")
    theta = torch.tensor([math.pi / 2 - 1e-6, 0.3], dtype=F64)
    U, Y, _ = _planted_grassmann(5, theta)
    x = torch.tensor([0.0, 0.6, 0.8], dtype=F64)
    y = torch.tensor([1e-7, -0.6, -0.8], dtype=F64)
    R3 = torch.from_numpy(Rotation.from_rotvec([0.0, 0.0, math.pi - 1e-7]).as_matrix())
    R5 = torch.linalg.matrix_exp(_frame(9, 5) - _frame(9, 5).T)
    pairs = [
        (geo.grassmann_log, geo.grassmann_exp, Y, U),
        (geo.sphere_log, geo.sphere_exp, y, x),
        (geo.so_log, geo.so_exp, R3, torch.eye(3, dtype=F64)),
        (geo.so_log, geo.so_exp, R5, torch.eye(5, dtype=F64)),
    ]
    for log, exp, p, b in pairs:
        v = log(p.to(dev), b.to(dev))
        assert v.device.type == "cuda"
        torch.testing.assert_close(v.cpu(), log(p, b), rtol=1e-9, atol=1e-12)
        out = exp(v, b.to(dev))
        assert out.device.type == "cuda"
        torch.testing.assert_close(out.cpu(), exp(v.cpu(), b), rtol=1e-9, atol=1e-12)
