"""Intrinsic dimension of a point cloud: the TwoNN estimator."""

from __future__ import annotations

import math
from typing import Any

import torch

from latentgeo.geometry._common import as_tensor, check_choice, check_finite

_ESTIMATORS = ("regression", "mle")


def _two_nearest(X: torch.Tensor, chunk_rows: int) -> tuple[torch.Tensor, torch.Tensor]:
    n = X.shape[0]
    r1 = torch.empty(n, dtype=X.dtype, device=X.device)
    r2 = torch.empty_like(r1)
    for start in range(0, n, chunk_rows):
        stop = min(n, start + chunk_rows)
        # Exact differences, not the |x|^2 + |y|^2 - 2 x.y shortcut: nearest-neighbour
        # distances are the small ones that the shortcut's cancellation corrupts.
        D = torch.cdist(X[start:stop], X, compute_mode="donot_use_mm_for_euclid_dist")
        D[torch.arange(stop - start), torch.arange(start, stop)] = math.inf
        two = torch.topk(D, 2, dim=1, largest=False).values
        r1[start:stop], r2[start:stop] = two[:, 0], two[:, 1]
    return r1, r2


def twonn_dimension(
    X: Any, *, estimator: str = "regression", discard_fraction: float = 0.1
) -> float:
    """Intrinsic dimension by the TwoNN estimator (Facco, d'Errico, Rodriguez & Laio 2017).

    For every point the ratio ``mu = r2 / r1`` of its second- to first-nearest-neighbour
    distance follows a Pareto law ``P(mu) = d mu^(-d-1)`` when the density is locally uniform.

    Parameters
    ----------
    X : array of shape (n_samples, n_features)
    estimator : {"regression", "mle"}
        ``"regression"`` (Facco et al.): least-squares slope through the origin of
        ``-log(1 - F(mu))`` against ``log mu`` over the smallest ``1 - discard_fraction`` of the
        ratios. ``"mle"``: maximum likelihood ``(n - 1) / sum(log mu)`` (unbiased for the
        Pareto law), using all points.
    discard_fraction : float
        Fraction of the largest ratios left out of the regression (Facco et al. use 0.1).

    Returns
    -------
    dimension : float
    """
    check_choice(estimator, "estimator", _ESTIMATORS)
    if not 0.0 <= discard_fraction < 1.0:
        raise ValueError(f"discard_fraction must lie in [0, 1), got {discard_fraction!r}")
    X = as_tensor(X, "X")
    if X.ndim != 2:
        raise ValueError(f"X must have shape (n_samples, n_features), got {tuple(X.shape)!r}")
    check_finite(X, "X")
    n = X.shape[0]
    if n < 3:
        raise ValueError(f"TwoNN needs at least 3 points, got n_samples={n!r}")
    chunk_rows = max(1, (1 << 24) // max(n, 1))
    r1, r2 = _two_nearest(X, chunk_rows)
    n_dup = int((r1 == 0).sum())
    if n_dup:
        raise ValueError(
            f"X has {n_dup} points with an exact duplicate; TwoNN needs distinct points "
            f"(remove duplicates, e.g. with torch.unique(X, dim=0))"
        )
    log_mu = torch.log(r2 / r1)
    if estimator == "mle":
        return float((n - 1) / log_mu.sum())
    log_mu, _ = torch.sort(log_mu)
    # At most n - 1 points: the largest ratio has F = 1 and -log(1 - F) = inf.
    keep = min(n - 1, max(2, math.floor(n * (1.0 - discard_fraction))))
    # Empirical CDF F(mu_(i)) = i / n (i = 1..n) so 1 - F never reaches 0 on the kept part.
    F = torch.arange(1, n + 1, dtype=X.dtype, device=X.device) / n
    x = log_mu[:keep]
    y = -torch.log1p(-F[:keep])
    return float((x * y).sum() / (x * x).sum())
