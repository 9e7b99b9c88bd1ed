"""Held-out scores shared by the probes: variance-weighted R² and its intervals.

What a held-out R² estimates.  ``variance_weighted_r2`` of a map fitted on training samples
and scored on held-out ones estimates the *population R² of that fitted map*,
``1 − E‖y − ŷ‖² / E‖y − E y‖²`` over fresh samples (conditional on the training samples),
with scikit-learn's convention (held-out variance with the held-out mean, ``n_test``
denominator), which reads low by ``(1 − R²) / (n_test − 1)`` on average.  The fitted map is
itself worse than the best linear map by the fit's error, so as an estimate of the
*population R² of the best linear map* the held-out R² is biased low: for a least-squares fit
of ``p`` units on ``n_train`` Gaussian samples by ``(1 − R²) (p + 1) / (n_train − p − 2)``
(Stein 1960), less for a well-chosen ridge penalty, and without bound when
``p >= n_train``.  ``docs/calibration.md`` measures both biases on planted latents.
"""

from __future__ import annotations

import torch

from latentgeo._bootstrap import delta_ratio_interval

__all__ = [
    "r2_and_interval",
    "r2_from_sums",
    "r2_interval",
    "variance_weighted_r2",
]


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


def r2_interval(Y: torch.Tensor, Y_hat: torch.Tensor, confidence: float) -> torch.Tensor:
    """Interval for the population R² of a fitted map, from its held-out predictions.

    The estimand is ``R² = 1 − E‖y − ŷ‖² / tr Cov(y)`` over fresh samples, the map held
    fixed (:func:`variance_weighted_r2` estimates it).  With per-sample squared errors
    ``e_i = ‖y_i − ŷ_i‖²`` and ``q_i = ‖y_i − ȳ‖² n / (n − 1)`` (unbiased for ``tr Cov(y)``),
    ``r = Σ e_i / Σ q_i`` is a ratio of means; its delta-method standard error is
    ``sqrt(Σ (e_i − r q_i)² / ((n − 1) n)) / mean(q)`` (the linearised jackknife of a ratio,
    Efron & Tibshirani 1993, §10.5), and the interval is ``1 − r ± t_{n−1} se`` (Student
    quantile, ``n`` held-out samples).  Its centre ``1 − r`` is the R² with the unbiased
    variance in the denominator, above :func:`variance_weighted_r2` by
    ``(1 − R²) / (n − 1)``; the lower end is extended down to :func:`variance_weighted_r2`
    where that lies below it, so the interval always contains the reported estimate.

    On planted latents (``benchmarks/calibration.py``) it covers the fitted map's population
    R² at the nominal rate already at 16 held-out samples, where a percentile bootstrap of
    the held-out R² covers about 70%.  It does *not* cover the population R² of the best
    linear map when the fit's error is large (small ``n_train``, many units); see the module
    docstring and ``docs/calibration.md``.

    Parameters
    ----------
    Y, Y_hat : Tensor of shape (n_elements, n_samples, n_units)
        Held-out targets and predictions.
    confidence : float in (0, 1)

    Returns
    -------
    Tensor of shape (n_elements, 2)
        Lower and upper ends; NaN with fewer than 3 held-out samples.  A constant target
        gives the degenerate interval at :func:`r2_from_sums`'s value (1 or 0).
    """
    return r2_and_interval(Y, Y_hat, confidence)[1]


def r2_and_interval(
    Y: torch.Tensor, Y_hat: torch.Tensor, confidence: float | None, overwrite: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`variance_weighted_r2` and :func:`r2_interval` from one pass over the residuals.

    ``confidence=None`` skips the interval (NaN).  ``overwrite=True`` lets it use ``Y`` and
    ``Y_hat`` as scratch space (no (n_elements, n_samples, n_units) temporaries: on large
    orbits their allocation costs as much as the arithmetic).  Returns tensors of shapes
    (n_elements,) and (n_elements, 2).
    """
    G, n, _ = Y.shape
    diff = Y_hat.sub_(Y) if overwrite else Y - Y_hat
    e = torch.linalg.vector_norm(diff, dim=2) ** 2  # (G, n) per-sample squared error
    del diff
    mean = Y.mean(dim=1, keepdim=True)
    q = torch.linalg.vector_norm(Y.sub_(mean) if overwrite else Y - mean, dim=2) ** 2
    r2 = r2_from_sums(e.sum(dim=1), q.sum(dim=1))
    nan = torch.full((G, 2), float("nan"), dtype=Y.dtype, device=Y.device)
    if confidence is None or n < 3:
        return r2, nan
    q = q * (n / (n - 1))
    r, lo, hi = delta_ratio_interval(e, q, confidence)
    # The held-out R² (n-denominator variance) sits below the centre 1 − r by (1 − R²)/(n − 1);
    # where that puts it below the interval, the interval is extended down to it, so the
    # reported interval always contains the reported estimate (coverage only grows).
    out = torch.stack([torch.minimum(1.0 - hi, r2), 1.0 - lo], dim=1)
    ok = torch.isfinite(r)
    return r2, torch.where(ok[:, None], out, r2[:, None].expand(G, 2))
