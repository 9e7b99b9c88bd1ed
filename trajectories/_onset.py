"""When does something happen: onset of a threshold crossing, change points of a series."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from latentgeo._validate import check_int, check_real

if TYPE_CHECKING:
    import xarray as xr

_DIRECTIONS = ("above", "below")
_METHODS = ("pelt", "binseg")


def _as_series(series: Any, steps: Any, name: str = "series") -> tuple[np.ndarray, np.ndarray]:
    """Values (n,) and steps (n,) of a 1-D series given as a DataArray or an array."""
    if hasattr(series, "dims") and hasattr(series, "values"):
        if series.ndim != 1 or "step" not in series.dims:
            raise ValueError(f"{name} must be 1-D along 'step', got dims {tuple(series.dims)!r}")
        values = np.asarray(series.values, dtype=np.float64)
        if steps is None:
            steps = series["step"].values if "step" in series.coords else np.arange(len(values))
    else:
        values = np.asarray(series, dtype=np.float64)
        if values.ndim != 1:
            raise ValueError(f"{name} must be 1-D, got shape {values.shape!r}")
    steps = np.arange(len(values)) if steps is None else np.asarray(steps)
    if steps.shape != values.shape:
        raise ValueError(
            f"steps must have the same length as {name} ({len(values)}), got shape {steps.shape!r}"
        )
    return values, steps


def _onset_index(values: np.ndarray, threshold: float, direction: str) -> int | None:
    past = values >= threshold if direction == "above" else values <= threshold
    # NaN compares False: a missing value is never "past" the threshold.
    if not past[-1]:
        return None
    failures = np.flatnonzero(~past)
    return 0 if failures.size == 0 else int(failures[-1]) + 1


def onset(
    series: Any, threshold: float, direction: str = "above", *, steps: Any = None
) -> int | float | xr.DataArray | None:
    """First step from which a series is past a threshold and stays there.

    Parameters
    ----------
    series : xarray.DataArray with a ``step`` dim, or array of shape (n_steps,)
        E.g. equivariance R² of a layer over training. Extra dims of a DataArray (``element``,
        ``irrep``, ``layer``...) are kept: the onset is found for every entry.
    threshold : float
    direction : {"above", "below"}
        ``"above"``: ``series >= threshold`` from the onset on; ``"below"``: ``<=``.
    steps : array of shape (n_steps,), optional
        Step of each entry for a plain array (default ``0..n-1``; a DataArray's ``step``
        coordinate otherwise).

    Returns
    -------
    int or None, or xarray.DataArray
        For a 1-D series the onset step, None if the series does not end past the threshold.
        For an N-D DataArray, a float DataArray over the other dims with NaN for "never".

    Examples
    --------
    >>> onset([0.1, 0.6, 0.4, 0.7, 0.9], 0.5, steps=[0, 10, 20, 30, 40])
    30
    """
    if direction not in _DIRECTIONS:
        raise ValueError(f"direction must be one of {_DIRECTIONS!r}, got {direction!r}")
    check_real(threshold, "threshold")
    if hasattr(series, "dims") and series.ndim > 1:
        import xarray as xr

        if "step" not in series.dims:
            raise ValueError(f"series must have a 'step' dim, got dims {tuple(series.dims)!r}")
        step_values = (
            series["step"].values if "step" in series.coords else np.arange(series.sizes["step"])
        )

        def _one(v: np.ndarray) -> float:
            i = _onset_index(np.asarray(v, dtype=np.float64), threshold, direction)
            return math.nan if i is None else float(step_values[i])

        return xr.apply_ufunc(
            _one, series, input_core_dims=[["step"]], vectorize=True, output_dtypes=[float]
        ).rename("onset")
    values, step_values = _as_series(series, steps)
    if values.size == 0:
        return None
    i = _onset_index(values, threshold, direction)
    return None if i is None else step_values[i].item()


# --- change points -------------------------------------------------------------------------


def _noise_variance(x: np.ndarray) -> float:
    # Robust scale of the noise from first differences (MAD), unaffected by a few jumps.
    d = np.diff(x)
    if d.size == 0:
        return 0.0
    sigma = 1.4826 * np.median(np.abs(d - np.median(d))) / math.sqrt(2.0)
    if sigma == 0.0:
        sigma = float(np.std(d)) / math.sqrt(2.0)
    return sigma * sigma


def _default_penalty(x: np.ndarray) -> float:
    """latentgeo's penalty for one change in mean: ``3 sigma^2 log(n)`` (see
    :func:`change_points`), floored so that a noise-free series is not split by rounding."""
    x = np.asarray(x, dtype=np.float64)
    x = x - x.mean()
    penalty = 3.0 * _noise_variance(x) * math.log(len(x))
    return max(penalty, 1e3 * np.finfo(np.float64).eps * float((x * x).sum()))


def change_points(
    series: Any,
    *,
    method: str = "pelt",
    penalty: float | None = None,
    n_change_points: int | None = None,
    min_size: int = 2,
    steps: Any = None,
) -> np.ndarray:
    """Steps where the mean of a series changes (piecewise-constant fit, L2 cost).

    The search is ``ruptures``' (Truong, Oudre & Vayatis 2020), with its ``"l2"`` cost (the
    sum of squared deviations from the segment mean) and every index a candidate
    (``jump=1``): ``"pelt"`` (Killick, Fearnhead & Eckley 2012) minimises
    ``sum of segment costs + penalty * n_changes`` with pruning; ``"binseg"`` (binary
    segmentation) splits greedily, either ``n_change_points`` times or while a split reduces
    the cost by more than the penalty. The penalty rule is latentgeo's (below).

    Parameters
    ----------
    series : xarray.DataArray along ``step`` or array of shape (n_steps,)
        E.g. a trajectory's speed. NaNs are not allowed.
    method : {"pelt", "binseg"}
    penalty : float, optional
        Cost of one extra change. Default ``3 sigma^2 log(n)``, the leading term of the
        modified BIC of Zhang & Siegmund (2007) for changes in mean (the default of R's
        ``changepoint`` package; plain BIC, ``2 sigma^2 log(n)``, lets spurious changes through
        because the location is maximised over), with the noise variance ``sigma^2``
        estimated robustly from the median absolute first difference.
    n_change_points : int, optional
        Exact number of changes (``"binseg"`` only).
    min_size : int
        Minimum segment length.
    steps : array of shape (n_steps,), optional
        Steps of a plain array (default ``0..n-1``).

    Returns
    -------
    change_steps : int array
        The step at which each new segment starts, ascending.

    Raises
    ------
    TypeError
        A ``penalty`` that is not a number.
    ValueError
        For an unknown ``method``, a bad ``min_size``/``n_change_points``/``penalty``, NaN or
        infinite values, or more changes than segments of ``min_size`` fit (also for a
        series too short for any change: the request is checked before the length).

    Notes
    -----
    ``ruptures``' PELT (1.1.10) is exact for ``min_size=1``. For ``min_size > 1`` its pruning
    can drop a candidate start before a segment from it is allowed (ruptures PR #383, open),
    so rarely a segmentation slightly costlier than the optimum is returned; the tests keep an
    exactness check marked as an expected failure until ruptures fixes it.
    """
    if method not in _METHODS:
        raise ValueError(f"method must be one of {_METHODS!r}, got {method!r}")
    min_size = check_int(min_size, "min_size", minimum=1)
    if n_change_points is not None:
        if method != "binseg":
            raise ValueError("n_change_points needs method='binseg'")
        n_change_points = check_int(n_change_points, "n_change_points", minimum=0)
    x, step_values = _as_series(series, steps)
    if not np.all(np.isfinite(x)):
        raise ValueError("series contains NaN or infinite values; drop or fill them first")
    # Every request is checked before the short-series shortcut below: an impossible one
    # (a bad penalty, more changes than fit) raises whatever the length of the series.
    if penalty is not None:
        penalty = check_real(penalty, "penalty", minimum=0)
    if n_change_points is not None and (int(n_change_points) + 1) * int(min_size) > len(x):
        raise ValueError(
            f"n_change_points={n_change_points!r} segments of at least "
            f"min_size={min_size!r} do not fit in {len(x)} values"
        )
    if len(x) < 2 * min_size:  # no two segments of min_size fit: no change to find
        return np.array([], dtype=step_values.dtype)
    if penalty is None:
        penalty = _default_penalty(x)
    import ruptures as rpt

    # jump=1: every index is a candidate (ruptures' default of 5 would round the changes).
    signal = (x - x.mean()).reshape(-1, 1)
    if method == "pelt":
        algo = rpt.Pelt(model="l2", min_size=int(min_size), jump=1).fit(signal)
        ends = algo.predict(pen=float(penalty))
    else:
        algo = rpt.Binseg(model="l2", min_size=int(min_size), jump=1).fit(signal)
        if n_change_points is not None:
            ends = algo.predict(n_bkps=int(n_change_points))
        else:
            ends = algo.predict(pen=float(penalty))
    # ruptures returns the end of every segment, the last one being len(x).
    idx = np.asarray(ends[:-1], dtype=int)
    return step_values[idx]
