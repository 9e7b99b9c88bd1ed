"""Held-out scores shared by the probes: variance-weighted R² and its bootstrap interval."""

from __future__ import annotations

import numpy as np
import torch

from latentgeo._bootstrap import bootstrap_counts

__all__ = ["bootstrap_r2", "r2_from_sums", "variance_weighted_r2"]


def r2_from_sums(ss_res: torch.Tensor, ss_tot: torch.Tensor) -> torch.Tensor:
    """``1 − ss_res / ss_tot`` with scikit-learn's ``force_finite`` convention.

    A constant target (``ss_tot == 0``) scores 1 when predicted exactly and 0 otherwise, as
    ``sklearn.metrics.r2_score`` does, so a dead unit never produces NaN.
    """
    safe = torch.where(ss_tot > 0, ss_tot, torch.ones_like(ss_tot))
    r2 = 1.0 - ss_res / safe
    exact = torch.where(ss_res == 0, torch.ones_like(r2), torch.zeros_like(r2))
    return torch.where(ss_tot > 0, r2, exact)


def variance_weighted_r2(Y: torch.Tensor, Y_hat: torch.Tensor) -> torch.Tensor:
    """R² per element, aggregated over units weighted by their variance.

    Equal to ``sklearn.metrics.r2_score(Y[g], Y_hat[g], multioutput="variance_weighted")``.

    Parameters
    ----------
    Y, Y_hat : Tensor of shape (n_elements, n_samples, n_units)

    Returns
    -------
    Tensor of shape (n_elements,)
    """
    # vector_norm reduces without materialising the squares (one temporary at a time).
    ss_res = torch.linalg.vector_norm(Y - Y_hat, dim=(1, 2)) ** 2
    ss_tot = torch.linalg.vector_norm(Y - Y.mean(dim=1, keepdim=True), dim=(1, 2)) ** 2
    return r2_from_sums(ss_res, ss_tot)


def bootstrap_r2(
    Y: torch.Tensor,
    Y_hat: torch.Tensor,
    n_bootstrap: int,
    confidence: float,
    rng: np.random.Generator,
    chunk: int = 64,
) -> torch.Tensor:
    """Percentile bootstrap interval of the held-out R² over resampled held-out samples.

    Each resample draws the held-out samples with replacement (the same draw for every element,
    so intervals of different elements are comparable) and recomputes the variance-weighted R²
    from per-sample sums, without materialising resampled copies of ``Y``.

    Parameters
    ----------
    Y, Y_hat : Tensor of shape (n_elements, n_samples, n_units)
    n_bootstrap : int
    confidence : float in (0, 1)
    rng : numpy.random.Generator

    Returns
    -------
    Tensor of shape (n_elements, 2)
        Lower and upper ends; NaN when ``n_bootstrap == 0``.
    """
    G, n, d = Y.shape
    if n_bootstrap == 0:
        return torch.full((G, 2), float("nan"), dtype=Y.dtype, device=Y.device)
    err = ((Y - Y_hat) ** 2).sum(dim=2)  # (G, n) per-sample squared error
    sq = (Y**2).sum(dim=2)  # (G, n)
    flat = Y.permute(1, 0, 2).reshape(n, G * d)
    r2s = []
    for start in range(0, n_bootstrap, chunk):
        b = min(chunk, n_bootstrap - start)
        C = torch.as_tensor(bootstrap_counts(b, n, rng), dtype=Y.dtype, device=Y.device)  # (b, n)
        ss_res = C @ err.T  # (b, G)
        sums = (C @ flat).reshape(b, G, d)
        ss_tot = C @ sq.T - (sums**2).sum(dim=2) / n
        r2s.append(r2_from_sums(ss_res, ss_tot))
    r2 = torch.cat(r2s, dim=0)  # (n_bootstrap, G)
    tail = (1.0 - confidence) / 2.0
    q = torch.tensor([tail, 1.0 - tail], dtype=Y.dtype, device=Y.device)
    return torch.quantile(r2, q, dim=0).T.contiguous()
