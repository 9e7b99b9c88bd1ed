"""Intervals over probe samples: the one percentile bootstrap (resampling counts, ratio
intervals) and the delta-method interval of a ratio of means.

Every interval latentgeo reports over probe samples resamples the samples with replacement
(Efron & Tibshirani, *An introduction to the bootstrap*, 1993, ch. 13): resample ``b`` draws
``n`` sample indices uniformly, summarised as a counts matrix ``C[b, i]`` (how often sample
``i`` was drawn), so that any statistic that is a sum over samples is ``C @ per_sample`` for
all resamples at once, without materialising resampled copies of the data.

Where a statistic also depends on a second random sample held fixed by that bootstrap (the
Haar-random group elements of a continuous group's orbit), :func:`add_jackknife_variance`
adds that sample's variance from a delete-one jackknife.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import torch

__all__ = [
    "add_jackknife_variance",
    "bootstrap_counts",
    "delta_ratio_interval",
    "percentile_interval",
    "ratio_interval",
]


def bootstrap_counts(n_bootstrap: int, n: int, rng: np.random.Generator) -> np.ndarray:
    """How often each of ``n`` samples is drawn in each of ``n_bootstrap`` resamples.

    Parameters
    ----------
    n_bootstrap : int
        Number of resamples (>= 0).
    n : int
        Number of samples (>= 1).
    rng : numpy.random.Generator
        Consumed as ``rng.integers(0, n, size=(n_bootstrap, n))``.

    Returns
    -------
    float64 array of shape (n_bootstrap, n)
        Row sums equal ``n``.
    """
    draws = rng.integers(0, n, size=(n_bootstrap, n))
    # One bincount over (resample, sample) cells: tens of times faster than numpy.add.at.
    flat = (draws + n * np.arange(n_bootstrap)[:, None]).ravel()
    return np.bincount(flat, minlength=n_bootstrap * n).reshape(n_bootstrap, n).astype(float)


def percentile_interval(values: Any, confidence: float) -> np.ndarray:
    """Equal-tailed percentile interval over the first (resample) axis.

    Parameters
    ----------
    values : array-like or Tensor of shape (n_bootstrap, ...)
    confidence : float in (0, 1)

    Returns
    -------
    float64 array of shape (..., 2)
        Lower and upper ends.
    """
    arr = values.detach().cpu().numpy() if hasattr(values, "detach") else np.asarray(values)
    tail = (1.0 - float(confidence)) / 2.0
    q = np.quantile(np.asarray(arr, dtype=np.float64), [tail, 1.0 - tail], axis=0)
    return np.moveaxis(q, 0, -1)


def ratio_interval(
    numerator: Any,
    denominator: Any,
    n_bootstrap: int,
    confidence: float,
    rng: np.random.Generator | None,
    *,
    clamp: bool = True,
    counts: np.ndarray | None = None,
) -> np.ndarray:
    """Percentile interval of ``sum_i num_i / sum_i den_i`` over resampled samples.

    Parameters
    ----------
    numerator : Tensor of shape (n_samples, k)
        Per-sample contributions to ``k`` numerators (e.g. energies per irrep).
    denominator : Tensor of shape (n_samples,)
        Per-sample contributions to the common denominator (e.g. total energy).
    n_bootstrap : int
        0 gives NaN ends.
    confidence : float in (0, 1)
    rng : numpy.random.Generator or None
        Draws the resamples (None only with ``counts``).
    clamp : bool
        Clamp each resample's numerators at 0 and renormalise them to sum to the denominator
        (shares of a whole), as the point estimate does.

    Returns
    -------
    float64 array of shape (k, 2)
    """
    import torch

    k = numerator.shape[1]
    if n_bootstrap == 0:
        return np.full((k, 2), np.nan)
    if counts is None:
        if rng is None:
            raise TypeError("ratio_interval needs rng= or counts=")
        counts = bootstrap_counts(n_bootstrap, numerator.shape[0], rng)
    C = torch.as_tensor(counts, dtype=numerator.dtype, device=numerator.device)
    num = C @ numerator  # (b, k)
    den = C @ denominator  # (b,)
    if clamp:
        num = num.clamp_min(0.0)
        den = num.sum(dim=1)
    tiny = torch.finfo(numerator.dtype).tiny
    boot = num / den.clamp_min(tiny)[:, None]
    # A resample with no variance at all is (trivially) all-invariant, as the estimate is.
    if clamp:
        empty = den <= 0
        if bool(empty.any()):
            boot[empty] = 0.0
            boot[empty, 0] = 1.0
    return percentile_interval(boot, confidence)


def delta_ratio_interval(
    num: torch.Tensor, den: torch.Tensor, confidence: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Ratio of means ``Σ num_i / Σ den_i`` over samples with a delta-method Student interval.

    The analytic alternative to the percentile bootstrap of :func:`ratio_interval`, for the
    intervals whose calibration (``benchmarks/calibration.py``) showed the bootstrap
    under-covers at small ``n``: the held-out R² and the subgroup scan's invariance.

    ``se = sqrt(Σ (num_i − r den_i)² / ((n − 1) n)) / mean(den)`` (the linearised jackknife
    of a ratio, Efron & Tibshirani 1993, §10.5) and ``r ± t_{n−1} se``: for estimands that
    are ratios of expectations of per-sample terms (an R², an invariant share, an irrep's
    share), computed from the per-sample terms alone.

    Parameters
    ----------
    num, den : Tensor of shape (..., n_samples)
    confidence : float in (0, 1)

    Returns
    -------
    ratio, low, high : Tensors of shape (...)
        NaN where ``Σ den == 0`` or with fewer than 2 samples.
    """
    import torch
    from scipy.stats import t as student_t

    n = num.shape[-1]
    den_mean = den.mean(dim=-1)
    ok = den_mean > 0
    safe = torch.where(ok, den_mean, torch.ones_like(den_mean))
    r = num.mean(dim=-1) / safe
    resid = num - r[..., None] * den
    dof = max(n - 1, 1)
    se = torch.sqrt((resid**2).sum(dim=-1) / (dof * n)) / safe
    half = float(student_t.ppf(0.5 + confidence / 2.0, dof)) * se if n > 1 else se * torch.nan
    nan = torch.full_like(r, float("nan"))
    return (
        torch.where(ok, r, nan),
        torch.where(ok, r - half, nan),
        torch.where(ok, r + half, nan),
    )


def add_jackknife_variance(
    estimate: np.ndarray, interval: np.ndarray, replicates: np.ndarray, confidence: float
) -> np.ndarray:
    """Widen a bootstrap interval by the variance over a second, jackknifed random sample.

    For a statistic of two independent random samples (probe samples, and the group elements
    the orbit was recorded at), a bootstrap over the first with the second held fixed
    estimates ``Var(θ̂ | elements)`` only.  The delete-one jackknife over the second,
    ``v_J = (m − 1)/m Σ_k (θ̂_(k) − θ̂_(·))²`` (Efron & Tibshirani 1993, §11.2), estimates
    its variance over the draw of elements; the two are added (the two-way random-effects
    variance ``σ²_samples/n + σ²_elements/m + σ²_interaction/(nm)``, with the interaction
    counted in both: conservative by that term, as the naive two-way bootstrap is — Owen 2007,
    "The pigeonhole bootstrap", *Ann. Appl. Stat.* 1(2)).  Each side of the percentile
    interval keeps its own half-width ``a`` as a standard deviation ``a / z``, and the ends are

        ``θ̂ ∓ t_ν sqrt((a / z)² + v_J)``,

    with ``ν = (m − 1)(1 + v_B / v_J)²`` the Welch–Satterthwaite degrees of freedom (the
    bootstrap variance ``v_B`` counted as known, the jackknife's on ``m − 1``): a few elements
    give a Student quantile on few degrees of freedom, ``v_J = 0`` the bootstrap interval
    unchanged.  Ends are clipped to [0, 1] (shares).

    Parameters
    ----------
    estimate : float64 array of shape (k,)
        The statistic on the full data (e.g. shares).
    interval : float64 array of shape (k, 2)
        Its bootstrap interval over the first sample.
    replicates : float64 array of shape (m, k)
        The statistic with each of the ``m >= 2`` units of the second sample left out.
    confidence : float in (0, 1)

    Returns
    -------
    float64 array of shape (k, 2)
    """
    from scipy.stats import norm
    from scipy.stats import t as student_t

    est = np.asarray(estimate, dtype=np.float64)
    boot = np.asarray(interval, dtype=np.float64)
    reps = np.asarray(replicates, dtype=np.float64)
    m = reps.shape[0]
    v_j = (m - 1) / m * ((reps - reps.mean(axis=0)) ** 2).sum(axis=0)
    z = float(norm.ppf(0.5 + confidence / 2.0))
    below = np.clip(est - boot[:, 0], 0.0, None) / z  # each side's bootstrap sd
    above = np.clip(boot[:, 1] - est, 0.0, None) / z
    v_b = ((below + above) / 2.0) ** 2
    with np.errstate(divide="ignore", invalid="ignore"):
        dof = np.where(v_j > 0, (m - 1) * (1.0 + v_b / v_j) ** 2, np.inf)
    q = student_t.ppf(0.5 + confidence / 2.0, dof)
    low = est - q * np.sqrt(below**2 + v_j)
    high = est + q * np.sqrt(above**2 + v_j)
    return np.clip(np.stack([low, high], axis=1), 0.0, 1.0)
