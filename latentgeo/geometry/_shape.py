"""Representational shape between checkpoints: angular Procrustes distance and linear CKA."""

from __future__ import annotations

from typing import Any

import torch

from latentgeo.geometry._common import as_pair, check_finite


def _prepare_pair(X: Any, Y: Any, center: bool) -> tuple[torch.Tensor, torch.Tensor]:
    X, Y = as_pair(X, Y, ("X", "Y"), min_ndim=2)
    if X.shape[-2] != Y.shape[-2]:
        raise ValueError(
            f"X and Y must hold the same samples (axis -2), got shapes {tuple(X.shape)!r} and "
            f"{tuple(Y.shape)!r}"
        )
    check_finite(X, "X")
    check_finite(Y, "Y")
    if center:
        X = X - X.mean(dim=-2, keepdim=True)
        Y = Y - Y.mean(dim=-2, keepdim=True)
    return X, Y


def _unit_frobenius(X: torch.Tensor, name: str) -> torch.Tensor:
    nrm = torch.linalg.matrix_norm(X, keepdim=True)
    if bool((nrm == 0).any()):
        raise ValueError(f"{name} is constant over samples (zero norm after centring)")
    return X / nrm


def procrustes_distance(X: Any, Y: Any, *, center: bool = True) -> torch.Tensor:
    """Angular Procrustes shape distance (Williams, Kunz, Kornblith & Linderman 2021).

    ``d(X, Y) = min_Q arccos <X^, Y^ Q>`` over orthogonal ``Q`` with ``X^``, ``Y^`` the centred,
    unit-Frobenius-norm representations, i.e. ``arccos ||X^T Y||_*``. It is a metric on shapes
    (representations modulo translation, isotropic scaling and rotation/reflection of units),
    taking values in ``[0, pi/2]``. Representations of different widths are zero-padded to the
    wider one. Computed as ``2 atan2(||X^ - Y^ Q||, ||X^ + Y^ Q||)`` with the optimal ``Q`` so
    that nearby shapes are resolved (``arccos`` floors near 1e-8).

    Parameters
    ----------
    X : array of shape (..., n_samples, p)
    Y : array of shape (..., n_samples, q)
        The same samples seen by two networks or checkpoints; leading dims broadcast.
    center : bool
        Remove the mean over samples (translation invariance).

    Returns
    -------
    dist : tensor of shape (...)
    """
    X, Y = _prepare_pair(X, Y, center)
    X = _unit_frobenius(X, "X")
    Y = _unit_frobenius(Y, "Y")
    p, q = X.shape[-1], Y.shape[-1]
    if p < q:
        X = torch.nn.functional.pad(X, (0, q - p))
    elif q < p:
        Y = torch.nn.functional.pad(Y, (0, p - q))
    U, _, Vh = torch.linalg.svd(Y.mT @ X)
    YQ = Y @ (U @ Vh)
    return 2 * torch.atan2(torch.linalg.matrix_norm(X - YQ), torch.linalg.matrix_norm(X + YQ))


def _debiased_dot(
    xty: torch.Tensor,
    rows_x: torch.Tensor,
    rows_y: torch.Tensor,
    sq_x: torch.Tensor,
    sq_y: torch.Tensor,
    n: int,
) -> torch.Tensor:
    # Unbiased HSIC (Song et al. 2012) rewritten in feature space (Kornblith et al. 2019),
    # up to the common factor 1 / (n (n - 3)) that cancels in the CKA ratio.
    return xty - n / (n - 2.0) * (rows_x * rows_y).sum(-1) + sq_x * sq_y / ((n - 1.0) * (n - 2.0))


def linear_cka(X: Any, Y: Any, *, debiased: bool = False) -> torch.Tensor:
    """Linear centred kernel alignment (Kornblith, Norouzi, Lee & Hinton 2019).

    ``CKA = ||Y^T X||_F^2 / (||X^T X||_F ||Y^T Y||_F)`` on centred features, computed in
    feature space (no n x n Gram matrix). With ``debiased=True`` the unbiased HSIC estimator
    replaces the biased one (needs ``n_samples >= 4``; the result can be slightly negative).

    Parameters
    ----------
    X : array of shape (..., n_samples, p)
    Y : array of shape (..., n_samples, q)

    Returns
    -------
    cka : tensor of shape (...), in ``[0, 1]`` for the biased estimator.
    """
    X, Y = _prepare_pair(X, Y, center=True)
    n = X.shape[-2]
    if debiased and n < 4:
        raise ValueError(f"debiased CKA needs at least 4 samples, got n_samples={n!r}")
    xty = torch.linalg.matrix_norm(Y.mT @ X) ** 2
    xtx = torch.linalg.matrix_norm(X.mT @ X)
    yty = torch.linalg.matrix_norm(Y.mT @ Y)
    for name, nrm in (("X", xtx), ("Y", yty)):
        if bool((nrm == 0).any()):
            raise ValueError(f"{name} is constant over samples (zero norm after centring)")
    if debiased:
        rows_x = (X * X).sum(-1)
        rows_y = (Y * Y).sum(-1)
        sq_x, sq_y = rows_x.sum(-1), rows_y.sum(-1)
        xty = _debiased_dot(xty, rows_x, rows_y, sq_x, sq_y, n)
        xtx = _debiased_dot(xtx**2, rows_x, rows_x, sq_x, sq_x, n).clamp_min(0).sqrt()
        yty = _debiased_dot(yty**2, rows_y, rows_y, sq_y, sq_y, n).clamp_min(0).sqrt()
    return xty / (xtx * yty)


def cka_distance(X: Any, Y: Any) -> torch.Tensor:
    """Angular CKA distance ``arccos(linear_cka(X, Y))``, a metric on centred Gram matrices.

    Linear CKA is the cosine between the centred Gram matrices ``X X^T`` and ``Y Y^T`` in
    Frobenius space, so its arccos is the great-circle distance between them (Williams et al.
    2021). Resolution floors near 1e-8 rad (arccos near 1).

    Parameters
    ----------
    X : array of shape (..., n_samples, p)
    Y : array of shape (..., n_samples, q)

    Returns
    -------
    dist : tensor of shape (...), in ``[0, pi/2]``.
    """
    return torch.arccos(linear_cka(X, Y).clamp(-1.0, 1.0))
