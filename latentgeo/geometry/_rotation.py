"""Orthogonal matrices and spheres: bi-invariant and great-circle distances, polar projection."""

from __future__ import annotations

import math
from typing import Any

import torch

from latentgeo.geometry._common import (
    as_pair,
    as_tensor,
    check_finite,
    check_square,
    default_tol,
)


def _check_orthogonal(R: torch.Tensor, name: str) -> None:
    check_square(R, name)
    check_finite(R, name)
    k = R.shape[-1]
    err = (R.mT @ R - torch.eye(k, dtype=R.dtype, device=R.device)).abs()
    worst = float(err.max()) if err.numel() else 0.0
    tol = default_tol(R.dtype) * max(1.0, k**0.5)
    if not worst <= tol:
        raise ValueError(
            f"{name} must be orthogonal (R^T R = I); max deviation {worst:.3g} exceeds "
            f"{tol:.3g}. Project it with latentgeo.geometry.orthogonalize first."
        )


def rotation_angles(R1: Any, R2: Any, *, check: bool = True) -> torch.Tensor:
    """Rotation angles ``theta_j`` in ``[0, pi]`` of the eigenvalues of ``R1^T R2``.

    One angle per eigenvalue (``k`` of them; conjugate pairs give equal angles), computed as
    ``2 atan2(sigma_j(R2 - R1), sigma_{k-j}(R2 + R1))``: ``R1^T R2`` is normal, so these singular
    values are ``|lambda_j - 1| = 2 sin(theta_j / 2)`` and ``|lambda_j + 1| = 2 cos(theta_j / 2)``.
    Using the difference ``R2 - R1`` resolves tiny angles that ``arccos`` or ``eig`` would lose.

    Parameters
    ----------
    R1, R2 : array of shape (..., k, k)
        Orthogonal matrices; leading dims broadcast.

    Returns
    -------
    theta : tensor of shape (..., k), descending.
    """
    R1, R2 = as_pair(R1, R2, ("R1", "R2"), min_ndim=2)
    if check:
        _check_orthogonal(R1, "R1")
        _check_orthogonal(R2, "R2")
    if R1.shape[-1] != R2.shape[-1]:
        raise ValueError(
            f"R1 and R2 must have the same size, got shapes {tuple(R1.shape)!r} and "
            f"{tuple(R2.shape)!r}"
        )
    chord = torch.linalg.svdvals(R2 - R1)  # descending
    cochord = torch.linalg.svdvals(R2 + R1).flip(-1)  # ascending, pairs with chord
    return 2 * torch.atan2(chord, cochord)


def orthogonal_distance(R1: Any, R2: Any, *, check: bool = True) -> torch.Tensor:
    """Bi-invariant geodesic distance on the orthogonal group, geomstats' convention.

    ``d(R1, R2) = ||log(R1^T R2)||_F / sqrt(2) = sqrt(sum over rotation planes theta^2)``, the
    distance of geomstats' ``SpecialOrthogonal(k)`` with its default ``BiInvariantMetric``
    (e.g. a rotation by ``theta`` in one plane is at distance ``theta`` from the identity).

    Parameters
    ----------
    R1, R2 : array of shape (..., k, k)
        Orthogonal matrices; leading dims broadcast.
    check : bool
        Verify orthogonality of the inputs.

    Returns
    -------
    dist : tensor of shape (...)
        ``inf`` where ``det R1 != det R2``: O(k) has two connected components and no geodesic
        joins them.
    """
    R1, R2 = as_pair(R1, R2, ("R1", "R2"), min_ndim=2)
    theta = rotation_angles(R1, R2, check=check)
    dist = torch.linalg.vector_norm(theta, dim=-1) / math.sqrt(2.0)
    same_component = torch.linalg.det(R1) * torch.linalg.det(R2) > 0
    return torch.where(same_component, dist, torch.full_like(dist, math.inf))


def orthogonalize(rho: Any, *, special: bool = False) -> torch.Tensor:
    """Nearest orthogonal matrix (Frobenius norm) via the polar decomposition.

    Parameters
    ----------
    rho : array of shape (..., k, k)
        Fitted linear maps, e.g. ``rho(g)`` from a probe.
    special : bool
        Return the nearest matrix of SO(k) instead of O(k) (flip the direction of the smallest
        singular value where the polar factor has determinant -1).

    Returns
    -------
    Q : tensor of shape (..., k, k)
        ``U V^T`` for ``rho = U S V^T``.
    """
    rho = as_tensor(rho, "rho", min_ndim=2)
    check_square(rho, "rho")
    check_finite(rho, "rho")
    U, _, Vh = torch.linalg.svd(rho)
    if special:
        det = torch.linalg.det(U @ Vh)
        flip = torch.ones(rho.shape[:-1], dtype=rho.dtype, device=rho.device)
        flip[..., -1] = torch.where(det < 0, -1.0, 1.0).to(rho.dtype)
        U = U * flip.unsqueeze(-2)
    return U @ Vh


def sphere_distance(x: Any, y: Any) -> torch.Tensor:
    """Great-circle distance between directions, accurate for tiny and near-antipodal angles.

    ``theta = 2 atan2(||x^ - y^||, ||x^ + y^||)`` with ``x^ = x / ||x||`` (Kahan's formula;
    ``arccos(x . y)`` floors near 1e-8). Equals geomstats' ``Hypersphere`` distance for unit
    vectors.

    Parameters
    ----------
    x, y : array of shape (..., n)
        Non-zero vectors (normalised here); leading dims broadcast.

    Returns
    -------
    theta : tensor of shape (...), in ``[0, pi]``.
    """
    x, y = as_pair(x, y, ("x", "y"), min_ndim=1)
    if x.shape[-1] != y.shape[-1]:
        raise ValueError(
            f"x and y must have the same last dimension, got shapes {tuple(x.shape)!r} and "
            f"{tuple(y.shape)!r}"
        )
    check_finite(x, "x")
    check_finite(y, "y")
    nx = torch.linalg.vector_norm(x, dim=-1, keepdim=True)
    ny = torch.linalg.vector_norm(y, dim=-1, keepdim=True)
    for name, nrm in (("x", nx), ("y", ny)):
        if bool((nrm == 0).any()):
            raise ValueError(f"{name} contains zero vectors, which have no direction")
    xh, yh = x / nx, y / ny
    return 2 * torch.atan2(
        torch.linalg.vector_norm(xh - yh, dim=-1), torch.linalg.vector_norm(xh + yh, dim=-1)
    )
