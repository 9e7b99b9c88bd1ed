"""Riemannian exp and log in closed form on the Grassmannian, the sphere and SO(n).

All functions are batched over leading dims (broadcast), run on the inputs' device and keep a
float32/float64 dtype (anything else becomes float64). They are accurate near the cut locus,
where a log is ill-conditioned but still well defined: away from it ``exp(log(y)) = y`` and the
norm of ``log(y)`` equals the closed-form distance to the dtype's precision. *At* the cut locus
(a principal angle of exactly pi/2, antipodal points, a rotation by exactly pi) minimising
geodesics are not unique; each function returns one of them by a documented rule (never the
zero vector). Conventions (the norm the log's norm matches):

* Grassmann: tangent ``D`` (d, k) at a basis ``U`` with ``U^T D = 0``;
  ``||D||_F = ||theta||_2 = grassmann_distance(convention="arc")``; geomstats' distance
  (its canonical metric on projectors) is ``sqrt(2) ||D||_F``.
* Sphere: tangent ``v`` with ``x . v = 0``; ``||v||_2 = sphere_distance``.
* SO(n): tangent ``R A`` (ambient) with ``A`` skew; ``||A||_F / sqrt(2) = orthogonal_distance``
  (geomstats' bi-invariant metric, a rotation by theta in one plane is at distance theta).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from latentgeo.geometry._common import as_pair, as_tensor, check_finite, check_orthonormal
from latentgeo.geometry._rotation import _check_orthogonal

__all__ = [
    "grassmann_exp",
    "grassmann_log",
    "so_exp",
    "so_log",
    "so_logm",
    "sphere_exp",
    "sphere_log",
]


def _arc_over_sin(c: torch.Tensor) -> torch.Tensor:
    """``theta / sin(theta)`` for ``theta = arccos(c)``, accurate for every ``c`` in (-1, 1].

    ``theta = atan2(s, c)`` with ``s = sqrt((1 - c)(1 + c))``: the ratio stays accurate as
    ``s -> 0`` at ``c = 1`` (both factors shrink together) and its value 1 is used at ``s = 0``.
    """
    c = c.clamp(-1.0, 1.0)
    s = torch.sqrt((1.0 - c) * (1.0 + c))
    positive = s > 0
    safe = torch.where(positive, s, torch.ones_like(s))
    return torch.where(positive, torch.atan2(s, c) / safe, torch.ones_like(s))


# --- Grassmannian --------------------------------------------------------------------------


def _grassmann_inputs(a: Any, b: Any, names: tuple[str, str], check: bool) -> tuple[Any, Any]:
    A, B = as_pair(a, b, names, min_ndim=2)
    if A.shape[-2:] != B.shape[-2:]:
        raise ValueError(
            f"{names[0]} and {names[1]} must have the same shape (..., d, k), got "
            f"{tuple(A.shape)!r} and {tuple(B.shape)!r}"
        )
    check_finite(A, names[0])
    check_finite(B, names[1])
    if check:
        check_orthonormal(B, names[1])
    return A, B


def grassmann_log(point: Any, base: Any, *, check: bool = True) -> torch.Tensor:
    """Riemannian log on Gr(d, k): the horizontal tangent at ``base`` pointing to ``point``.

    With ``point^T base = Q diag(cos theta) R^T`` (SVD) and ``point* = point Q R^T`` (the basis
    of ``point`` aligned with ``base`` by Procrustes), the log is
    ``(I - base base^T) point* . R diag(theta / sin theta) R^T`` (Bendokat, Zimmermann &
    Absil 2020, Algorithm 5.3, which stays valid at principal angles of pi/2, unlike the
    ``atan`` formula of Edelman, Arias & Smith 1998 used by geomstats). ``theta / sin theta`` is a
    smooth function of the cosines, so clusters of equal angles and tiny angles are harmless.

    Parameters
    ----------
    point, base : array of shape (..., d, k)
        Orthonormal bases; leading dims broadcast.
    check : bool
        Verify that the inputs are orthonormal.

    Returns
    -------
    tangent : tensor of shape (..., d, k)
        ``D`` with ``base^T D = 0`` and ``||D||_F = ||theta||_2`` (the "arc" distance; geomstats'
        distance is ``sqrt(2) ||D||_F``); ``grassmann_exp(D, base)`` spans ``point``.

    Notes
    -----
    At the cut locus (a principal angle of exactly pi/2) the minimising geodesics form a
    family; the one returned pairs the directions of ``base`` and ``point`` at right angles as
    the SVD of ``point^T base`` pairs its null singular vectors (deterministic for a given
    input and linear-algebra backend). It always has ``||D||_F = ||theta||_2``.
    """
    Y, U = _grassmann_inputs(point, base, ("point", "base"), check)
    if check:
        check_orthonormal(Y, "point")
    Qt, cos, Rth = torch.linalg.svd(Y.mT @ U)
    # (I - U U^T) Y Q = Y Q - U R diag(cos): the residual of the aligned basis, per direction.
    N = Y @ Qt - U @ (Rth.mT * cos.unsqueeze(-2))
    N = N - U @ (U.mT @ N)  # horizontal to working precision
    return (N * _arc_over_sin(cos).unsqueeze(-2)) @ Rth


def grassmann_exp(tangent: Any, base: Any, *, check: bool = True) -> torch.Tensor:
    """Riemannian exp on Gr(d, k) (Edelman, Arias & Smith 1998, Theorem 2.3).

    With the thin SVD ``D = Q diag(sigma) V^T`` of the horizontal part of the tangent,
    ``exp_U(D) = U V cos(sigma) V^T + Q sin(sigma) V^T``.

    Parameters
    ----------
    tangent : array of shape (..., d, k)
        Tangent at ``base``; its vertical part ``base base^T D`` is removed first.
    base : array of shape (..., d, k)
        Orthonormal basis; leading dims broadcast.
    check : bool
        Verify that ``base`` is orthonormal.

    Returns
    -------
    point : tensor of shape (..., d, k)
        The orthonormal basis that ``base`` is carried to along the geodesic (its horizontal
        lift), so that ``t -> grassmann_exp(t D, U)`` is a smooth curve of bases from ``U``.
    """
    D, U = _grassmann_inputs(tangent, base, ("tangent", "base"), check)
    D = D - U @ (U.mT @ D)
    Q, sigma, Vh = torch.linalg.svd(D, full_matrices=False)
    return (U @ Vh.mT * torch.cos(sigma).unsqueeze(-2) + Q * torch.sin(sigma).unsqueeze(-2)) @ Vh


# --- sphere --------------------------------------------------------------------------------


def _unit_pair(a: Any, b: Any, names: tuple[str, str]) -> tuple[torch.Tensor, torch.Tensor]:
    x, y = as_pair(a, b, names, min_ndim=1)
    if x.shape[-1] != y.shape[-1]:
        raise ValueError(
            f"{names[0]} and {names[1]} must have the same last dimension, got shapes "
            f"{tuple(x.shape)!r} and {tuple(y.shape)!r}"
        )
    check_finite(x, names[0])
    check_finite(y, names[1])
    return x, y


def _normalised(x: torch.Tensor, name: str) -> torch.Tensor:
    n = torch.linalg.vector_norm(x, dim=-1, keepdim=True)
    if bool((n == 0).any()):
        raise ValueError(f"{name} contains zero vectors, which are not points of the sphere")
    return x / n


def sphere_log(point: Any, base: Any) -> torch.Tensor:
    """Riemannian log on the unit sphere: the tangent at ``base`` pointing to ``point``.

    ``theta = 2 atan2(||x - y||, ||x + y||)`` and the direction ``y - (x . y) x``, computed as
    ``(y - x) + ||y - x||^2 / 2 x`` for ``x . y >= 0`` and ``(y + x) - ||y + x||^2 / 2 x`` else,
    so that neither nearby nor nearly antipodal points cancel catastrophically.

    Parameters
    ----------
    point, base : array of shape (..., n)
        Non-zero vectors (normalised here); leading dims broadcast.

    Returns
    -------
    tangent : tensor of shape (..., n)
        ``v`` with ``base . v = 0`` and ``||v|| = theta = sphere_distance(base, point)``.

    Notes
    -----
    For exactly antipodal points every direction is a minimising geodesic; the one returned
    heads for the coordinate axis least aligned with ``base`` (the first index ``j`` of the
    smallest ``|base_j|``): ``v = pi (e_j - base_j base) / ||e_j - base_j base||``.
    """
    y, x = _unit_pair(point, base, ("point", "base"))
    x, y = _normalised(x, "base"), _normalised(y, "point")
    x, y = torch.broadcast_tensors(x, y)
    diff, summ = y - x, y + x
    nd = torch.linalg.vector_norm(diff, dim=-1, keepdim=True)
    ns = torch.linalg.vector_norm(summ, dim=-1, keepdim=True)
    theta = 2 * torch.atan2(nd, ns)
    near = (x * y).sum(-1, keepdim=True) >= 0
    u = torch.where(near, diff + 0.5 * nd**2 * x, summ - 0.5 * ns**2 * x)
    u = u - (x * u).sum(-1, keepdim=True) * x
    # Antipodal points: u vanishes; head for the least aligned coordinate axis instead.
    j = x.abs().argmin(dim=-1, keepdim=True)
    axis = torch.zeros_like(x).scatter_(-1, j, 1.0)
    axis = axis - torch.gather(x, -1, j) * x
    antipodal = (torch.linalg.vector_norm(u, dim=-1, keepdim=True) == 0) & ~near
    u = torch.where(antipodal, axis, u)
    s = torch.linalg.vector_norm(u, dim=-1, keepdim=True)
    safe = torch.where(s > 0, s, torch.ones_like(s))
    return torch.where(s > 0, theta / safe * u, torch.zeros_like(u))


def sphere_exp(tangent: Any, base: Any) -> torch.Tensor:
    """Riemannian exp on the unit sphere: ``cos(|v|) x + sin(|v|) v / |v|``.

    Parameters
    ----------
    tangent : array of shape (..., n)
        Tangent at ``base``; its component along ``base`` is removed first.
    base : array of shape (..., n)
        Non-zero vector (normalised here); leading dims broadcast.

    Returns
    -------
    point : tensor of shape (..., n)
        Unit vector.
    """
    v, x = _unit_pair(tangent, base, ("tangent", "base"))
    x = _normalised(x, "base")
    v = v - (x * v).sum(-1, keepdim=True) * x
    n = torch.linalg.vector_norm(v, dim=-1, keepdim=True)
    out = torch.cos(n) * x + torch.sinc(n / torch.pi) * v  # torch.sinc(t) = sin(pi t)/(pi t)
    return out / torch.linalg.vector_norm(out, dim=-1, keepdim=True)


# --- SO(n) -------------------------------------------------------------------------------


def _skew(A: torch.Tensor) -> torch.Tensor:
    return 0.5 * (A - A.mT)


def _hat(w: torch.Tensor) -> torch.Tensor:
    """The 3 x 3 skew matrix of a 3-vector (``hat(w) x = w x x``)."""
    z = torch.zeros_like(w[..., 0])
    rows = [
        torch.stack([z, -w[..., 2], w[..., 1]], dim=-1),
        torch.stack([w[..., 2], z, -w[..., 0]], dim=-1),
        torch.stack([-w[..., 1], w[..., 0], z], dim=-1),
    ]
    return torch.stack(rows, dim=-2)


def _logm_so2(M: torch.Tensor) -> torch.Tensor:
    theta = torch.atan2(M[..., 1, 0] - M[..., 0, 1], M[..., 0, 0] + M[..., 1, 1])
    theta = torch.where(theta == -torch.pi, torch.full_like(theta, torch.pi), theta)
    J = torch.tensor([[0.0, -1.0], [1.0, 0.0]], dtype=M.dtype, device=M.device)
    return theta[..., None, None] * J


def _logm_so3(M: torch.Tensor) -> torch.Tensor:
    K, S = _skew(M), 0.5 * (M + M.mT)
    w = torch.stack([K[..., 2, 1], K[..., 0, 2], K[..., 1, 0]], dim=-1)  # sin(theta) * axis
    sin = torch.linalg.vector_norm(w, dim=-1)
    cos = 0.5 * (M.diagonal(dim1=-2, dim2=-1).sum(-1) - 1.0)
    theta = torch.atan2(sin, cos)
    # theta <= pi/2: K theta / sin(theta) (the skew part resolves the axis).
    small = K * _arc_over_sin(cos.clamp(min=0.0))[..., None, None]
    # theta > pi/2: the axis from the symmetric part, S = cos I + (1 - cos) a a^T, its sign
    # from the skew part; exactly at pi the axis's largest component is made positive.
    eye = torch.eye(3, dtype=M.dtype, device=M.device)
    aaT = (S - cos[..., None, None] * eye) / (1.0 - cos.clamp(max=0.0))[..., None, None]
    j = aaT.diagonal(dim1=-2, dim2=-1).argmax(dim=-1)
    col = torch.gather(aaT, -1, j[..., None, None].expand(*aaT.shape[:-1], 1))[..., 0]
    axis = col / torch.sqrt(
        torch.gather(col, -1, j[..., None]).clamp(min=torch.finfo(M.dtype).tiny)
    )
    sign = torch.sign((axis * w).sum(-1))
    axis = axis * torch.where(sign == 0, torch.ones_like(sign), sign)[..., None]
    large = _hat(axis * theta[..., None])
    return torch.where((cos >= 0)[..., None, None], small, large)


def _logm_so_schur(M: torch.Tensor) -> torch.Tensor:
    """log of rotations of any size from their real Schur form (scipy / LAPACK ``gees``).

    A rotation is normal, so its real Schur form is block diagonal: 2 x 2 blocks
    ``[[a, b], [c, a]]`` of angle ``atan2((c - b) / 2, a)`` and 1 x 1 blocks ``+1`` or ``-1``.
    The ``-1`` blocks (rotations by exactly pi) come in pairs in SO(n); consecutive Schur
    vectors ``(z_p, z_q)`` are paired into the plane rotated by ``+pi`` from ``z_p`` to ``z_q``.
    Runs on the CPU in float64, matrix by matrix.
    """
    from scipy.linalg import schur

    arr = M.detach().to("cpu", torch.float64).numpy().reshape(-1, M.shape[-1], M.shape[-1])
    out = np.zeros_like(arr)
    n = arr.shape[-1]
    for b, R in enumerate(arr):
        T, Z = schur(R, output="real")
        L = np.zeros((n, n))
        negative: list[int] = []
        i = 0
        while i < n:
            if i + 1 < n and T[i + 1, i] != 0.0:
                a = 0.5 * (T[i, i] + T[i + 1, i + 1])
                s = 0.5 * (T[i + 1, i] - T[i, i + 1])
                theta = np.arctan2(s, a)
                L[i + 1, i], L[i, i + 1] = theta, -theta
                i += 2
                continue
            if T[i, i] < 0:
                negative.append(i)
            i += 1
        if len(negative) % 2:
            raise ValueError(
                "a matrix has an odd number of eigenvalues -1, so it is not a rotation "
                "(determinant -1); its log in SO(n) does not exist"
            )
        for p, q in zip(negative[::2], negative[1::2]):
            L[q, p], L[p, q] = np.pi, -np.pi
        out[b] = Z @ L @ Z.T
    res = torch.from_numpy(out).reshape(M.shape).to(device=M.device, dtype=M.dtype)
    return _skew(res)


def so_logm(M: Any, *, check: bool = True) -> torch.Tensor:
    """Principal matrix log of rotations, stable up to and at angle pi.

    Parameters
    ----------
    M : array of shape (..., n, n)
        Rotation matrices.
    check : bool
        Verify that ``M`` is orthogonal with determinant +1.

    Returns
    -------
    A : tensor of shape (..., n, n)
        Skew-symmetric, with rotation angles in [0, pi], ``expm(A) = M``.

    Notes
    -----
    n = 2: ``atan2`` of the entries, angle in (-pi, pi] (exactly pi: counter-clockwise).
    n = 3: axis-angle with ``theta = atan2(|vee(K)|, (tr M - 1) / 2)``; for ``theta <= pi/2``
    the axis comes from the skew part ``K``, above from the symmetric part (well conditioned
    near pi) with the skew part's sign; at exactly pi the axis's largest component is
    positive. Batched torch, any device.
    n >= 4: the real Schur form via scipy on the CPU (see ``_logm_so_schur``); at exactly pi
    the rotation planes pair the Schur vectors of eigenvalue -1 in LAPACK's order.
    """
    M = as_tensor(M, "M", min_ndim=2)
    if check:
        _check_orthogonal(M, "M")
        if bool((torch.linalg.det(M) < 0).any()):
            raise ValueError("M must have determinant +1 (a rotation), got a reflection")
    n = M.shape[-1]
    if n == 1:
        return torch.zeros_like(M)
    if n == 2:
        return _logm_so2(M)
    if n == 3:
        return _logm_so3(M)
    return _logm_so_schur(M)


def _so_inputs(a: Any, b: Any, names: tuple[str, str], check: bool) -> tuple[Any, Any]:
    A, B = as_pair(a, b, names, min_ndim=2)
    if A.shape[-2:] != B.shape[-2:] or B.shape[-1] != B.shape[-2]:
        raise ValueError(
            f"{names[0]} and {names[1]} must be (..., n, n) matrices of one size, got shapes "
            f"{tuple(A.shape)!r} and {tuple(B.shape)!r}"
        )
    check_finite(A, names[0])
    if check:
        _check_orthogonal(B, names[1])
    return A, B


def so_log(point: Any, base: Any, *, check: bool = True) -> torch.Tensor:
    """Riemannian log on SO(n) with the bi-invariant metric: ``base logm(base^T point)``.

    Parameters
    ----------
    point, base : array of shape (..., n, n)
        Rotations; leading dims broadcast.
    check : bool
        Verify that the inputs are rotations.

    Returns
    -------
    tangent : tensor of shape (..., n, n)
        ``base A`` with ``A`` skew; ``||A||_F / sqrt(2) = orthogonal_distance(base, point)``
        (geomstats' convention). The choice at angle exactly pi is that of :func:`so_logm`.
    """
    P, B = _so_inputs(point, base, ("point", "base"), check)
    if check:
        _check_orthogonal(P, "point")
    P, B = torch.broadcast_tensors(P, B)
    return B @ so_logm(B.mT @ P, check=check)


def so_exp(tangent: Any, base: Any, *, check: bool = True) -> torch.Tensor:
    """Riemannian exp on SO(n): ``base expm(skew(base^T V))`` (``torch.linalg.matrix_exp``).

    Parameters
    ----------
    tangent : array of shape (..., n, n)
        Ambient tangent ``V = base A`` at ``base``; the symmetric part of ``base^T V`` (not
        tangent) is dropped.
    base : array of shape (..., n, n)
        Rotations; leading dims broadcast.
    check : bool
        Verify that ``base`` is orthogonal.

    Returns
    -------
    point : tensor of shape (..., n, n)
    """
    V, B = _so_inputs(tangent, base, ("tangent", "base"), check)
    return B @ torch.linalg.matrix_exp(_skew(B.mT @ V))
