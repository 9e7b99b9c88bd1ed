"""The one percentile bootstrap over probe samples: resampling counts and ratio intervals.

Every interval latentgeo reports over probe samples resamples the samples with replacement
(Efron & Tibshirani, *An introduction to the bootstrap*, 1993, ch. 13): resample ``b`` draws
``n`` sample indices uniformly, summarised as a counts matrix ``C[b, i]`` (how often sample
``i`` was drawn), so that any statistic that is a sum over samples is ``C @ per_sample`` for
all resamples at once, without materialising resampled copies of the data.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["bootstrap_counts", "percentile_interval", "ratio_interval"]


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
    counts = np.zeros((n_bootstrap, n))
    np.add.at(counts, (np.arange(n_bootstrap)[:, None], draws), 1.0)
    return counts


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
