"""Symmetric positive-definite matrices: distances and Ledoit-Wolf shrinkage covariances."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from latentgeo._validate import check_int
from latentgeo.geometry._common import (
    as_pair,
    as_tensor,
    check_choice,
    check_finite,
    check_square,
    default_tol,
)
from latentgeo.geometry._subspace import _flatten_rows, principal_subspace

SPD_METRICS = ("affine", "log_euclidean", "bures_wasserstein")


def _check_spd_input(A: torch.Tensor, name: str) -> torch.Tensor:
    check_square(A, name)
    check_finite(A, name)
    scale = A.abs().amax(dim=(-2, -1), keepdim=True).clamp_min(torch.finfo(A.dtype).tiny)
    asym = float(((A - A.mT).abs() / scale).max()) if A.numel() else 0.0
    if not asym <= default_tol(A.dtype):
        raise ValueError(
            f"{name} must be symmetric; relative asymmetry {asym:.3g} exceeds "
            f"{default_tol(A.dtype):.3g}"
        )
    # Symmetrise exactly so that eigh and Cholesky see the matrix they are meant to.
    return 0.5 * (A + A.mT)


def _not_pd(name: str, value: float) -> ValueError:
    return ValueError(
        f"{name} must be positive definite; smallest eigenvalue {value:.3g} is not > 0"
    )


def _sym_function(A: torch.Tensor, fn: Callable[[torch.Tensor], torch.Tensor], name: str):
    w, Q = torch.linalg.eigh(A)
    if w.numel() and not float(w.min()) > 0:
        raise _not_pd(name, float(w.min()))
    return (Q * fn(w).unsqueeze(-2)) @ Q.mT


def spd_logm(A: Any) -> torch.Tensor:
    """Matrix logarithm of SPD matrices (..., n, n) through their eigendecomposition."""
    A = _check_spd_input(as_tensor(A, "A", min_ndim=2), "A")
    return _sym_function(A, torch.log, "A")


def spd_sqrtm(A: Any) -> torch.Tensor:
    """Principal square root of SPD matrices (..., n, n) through their eigendecomposition."""
    A = _check_spd_input(as_tensor(A, "A", min_ndim=2), "A")
    return _sym_function(A, torch.sqrt, "A")


def _affine(A: torch.Tensor, B: torch.Tensor) -> torch.Tensor:
    # Generalised eigenvalues of (B, A) via the Cholesky factor of A:
    # d = ||log(L^-1 B L^-T)||_F = ||log(A^-1/2 B A^-1/2)||_F (both are congruent to A^-1 B).
    L, info = torch.linalg.cholesky_ex(A)
    if bool((info != 0).any()):
        raise _not_pd("A", float(torch.linalg.eigvalsh(A).min()))
    L, B = torch.broadcast_tensors(L, B)
    X = torch.linalg.solve_triangular(L, B, upper=False)
    C = torch.linalg.solve_triangular(L, X.mT, upper=False)
    w = torch.linalg.eigvalsh(0.5 * (C + C.mT))
    if w.numel() and not float(w.min()) > 0:
        raise _not_pd("B", float(w.min()))
    return torch.linalg.vector_norm(torch.log(w), dim=-1)


def _log_euclidean(A: torch.Tensor, B: torch.Tensor) -> torch.Tensor:
    diff = _sym_function(A, torch.log, "A") - _sym_function(B, torch.log, "B")
    return torch.linalg.matrix_norm(diff)


def _bures_wasserstein(A: torch.Tensor, B: torch.Tensor) -> torch.Tensor:
    # d^2 = tr A + tr B - 2 tr (A^1/2 B A^1/2)^1/2 (the 2-Wasserstein distance between centred
    # Gaussians), the convention of geomstats' SPDBuresWassersteinMetric. Evaluated as the
    # Procrustes distance min_U ||A^1/2 - B^1/2 U||_F between the square roots, which equals
    # it and has no cancellation: the trace formula floors near sqrt(eps * tr A).
    sA = _sym_function(A, torch.sqrt, "A")
    sB = _sym_function(B, torch.sqrt, "B")
    sA, sB = torch.broadcast_tensors(sA, sB)
    W, _, Vh = torch.linalg.svd(sB.mT @ sA)
    return torch.linalg.matrix_norm(sA - sB @ (W @ Vh))


_SPD_IMPL = {
    "affine": _affine,
    "log_euclidean": _log_euclidean,
    "bures_wasserstein": _bures_wasserstein,
}


def spd_distance(A: Any, B: Any, metric: str = "affine") -> torch.Tensor:
    """Riemannian distance between symmetric positive-definite matrices.

    Parameters
    ----------
    A, B : array of shape (..., n, n)
        SPD matrices; leading dims broadcast.
    metric : {"affine", "log_euclidean", "bures_wasserstein"}
        ``"affine"``: affine-invariant ``||log(A^-1/2 B A^-1/2)||_F``;
        ``"log_euclidean"``: ``||log A - log B||_F``;
        ``"bures_wasserstein"``: ``sqrt(tr A + tr B - 2 tr (A^1/2 B A^1/2)^1/2)``.
        All three equal geomstats 2.8's ``SPDAffineMetric``, ``SPDLogEuclideanMetric`` and
        ``SPDBuresWassersteinMetric`` distances.

    Returns
    -------
    dist : tensor of shape (...)
    """
    check_choice(metric, "metric", SPD_METRICS)
    A, B = as_pair(A, B, ("A", "B"), min_ndim=2)
    A = _check_spd_input(A, "A")
    B = _check_spd_input(B, "B")
    if A.shape[-1] != B.shape[-1]:
        raise ValueError(
            f"A and B must be matrices of the same size, got shapes {tuple(A.shape)!r} and "
            f"{tuple(B.shape)!r}"
        )
    return _SPD_IMPL[metric](A, B)


def ledoit_wolf(X: Any, *, assume_centered: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Ledoit-Wolf shrunk covariance, batched torch version of scikit-learn's ``ledoit_wolf``.

    Parameters
    ----------
    X : array of shape (..., n_samples, n_features)
    assume_centered : bool
        Skip centring (data already has zero mean).

    Returns
    -------
    covariance : tensor of shape (..., n_features, n_features)
        ``(1 - s) S + s mu I`` with ``S`` the (biased) empirical covariance and
        ``mu = tr S / n_features``.
    shrinkage : tensor of shape (...)
        The shrinkage ``s`` in ``[0, 1]`` (Ledoit & Wolf 2004, as in scikit-learn).
    """
    X = as_tensor(X, "X", min_ndim=2)
    check_finite(X, "X")
    n, p = X.shape[-2:]
    if n < 2:
        raise ValueError(f"X needs at least 2 samples for a covariance, got {n!r}")
    if not assume_centered:
        X = X - X.mean(dim=-2, keepdim=True)
    S = X.mT @ X / n
    if p == 1:
        # A 1x1 covariance is unchanged by shrinkage towards mu * I.
        return S, torch.zeros(S.shape[:-2], dtype=X.dtype, device=X.device)
    X2 = X * X
    emp_trace = X2.sum(dim=-2) / n  # diagonal of S
    mu = emp_trace.sum(-1) / p
    beta_ = (X2.mT @ X2).sum(dim=(-2, -1))
    delta_ = ((X.mT @ X) ** 2).sum(dim=(-2, -1)) / n**2
    beta = (beta_ / n - delta_) / (p * n)
    delta = (delta_ - 2.0 * mu * emp_trace.sum(-1) + p * mu**2) / p
    beta = torch.minimum(beta, delta)
    shrinkage = torch.where(delta > 0, beta / torch.where(delta > 0, delta, 1), 0)
    eye = torch.eye(p, dtype=X.dtype, device=X.device)
    s = shrinkage[..., None, None]
    cov = (1 - s) * S + s * mu[..., None, None] * eye
    return cov, shrinkage


def shrinkage_covariance(
    Z: Any, k: int, basis: Any = None, *, assume_centered: bool = False
) -> torch.Tensor:
    """Ledoit-Wolf covariance of latents expressed in a fixed ``k``-dimensional basis.

    For a trajectory over checkpoints, pass the same ``basis`` at every step (e.g. the principal
    subspace of the final checkpoint): covariances in different bases are not comparable.

    Parameters
    ----------
    Z : array of shape (n_elements, n_samples, n_units) or (n_samples, n_units)
        Latents; leading dims are pooled as observations.
    k : int
        Number of basis directions.
    basis : array of shape (n_units, k), optional
        Orthonormal basis to project on; by default the top-``k`` principal subspace of ``Z``.
    assume_centered : bool
        Skip centring.

    Returns
    -------
    covariance : tensor of shape (k, k)
        A point of SPD(k).
    """
    k = check_int(k, "k", minimum=1)
    Z = as_tensor(Z, "Z")
    check_finite(Z, "Z")
    X = _flatten_rows(Z, "Z")
    if basis is None:
        basis = principal_subspace(X, k, center=not assume_centered)
    basis = as_tensor(basis, "basis", dtype=X.dtype, device=X.device)
    if basis.shape != (X.shape[-1], k):
        raise ValueError(
            f"basis must have shape (n_units, k) = {(X.shape[-1], k)!r}, got {tuple(basis.shape)!r}"
        )
    cov, _ = ledoit_wolf(X @ basis, assume_centered=assume_centered)
    return cov
