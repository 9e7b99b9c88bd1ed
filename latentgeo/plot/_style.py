"""Shared plotting machinery: palette, step axes, onset detection, saving.

Everything here uses matplotlib's object API (``matplotlib.figure.Figure``), never
``pyplot``: library code must not touch pyplot's global figure registry or the user's
rcParams.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    import xarray as xr
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

#: Okabe & Ito (2008) colour-blind-safe qualitative palette, black moved last so it can
#: mark references (null levels, onsets) without clashing with a series.
OKABE_ITO: tuple[str, ...] = (
    "#0072B2",  # blue
    "#E69F00",  # orange
    "#009E73",  # bluish green
    "#CC79A7",  # reddish purple
    "#56B4E9",  # sky blue
    "#D55E00",  # vermillion
    "#F0E442",  # yellow
    "#000000",  # black
)

#: Sequential colour map used where a palette would run out (many irreps, colour by step):
#: viridis is perceptually uniform and readable with the common colour-vision deficiencies.
SEQUENTIAL_CMAP = "viridis"
#: Diverging map for signed matrices (rho(g)); ColorBrewer's RdBu is colour-blind safe.
DIVERGING_CMAP = "RdBu_r"

_SAVE_FORMATS = {".png": "png", ".pdf": "pdf", ".svg": "svg"}


def colors(n: int) -> list[Any]:
    """``n`` colour-blind-safe colours: Okabe–Ito up to 7, viridis samples beyond.

    Beyond seven, the viridis samples are interleaved (dark, light, dark, ...) so that
    neighbouring series (adjacent bands of a stacked plot) differ strongly in lightness.

    Parameters
    ----------
    n : int
        Number of distinct colours needed.

    Returns
    -------
    list
        ``n`` matplotlib colour specifications.
    """
    if n <= len(OKABE_ITO) - 1:
        return list(OKABE_ITO[:n])
    from matplotlib import colormaps

    cmap = colormaps[SEQUENTIAL_CMAP]
    ramp = [cmap(v) for v in np.linspace(0.0, 0.95, n)]
    half = (n + 1) // 2
    order = [i // 2 if i % 2 == 0 else half + i // 2 for i in range(n)]
    return [ramp[j] for j in order]


def new_figure(figsize: tuple[float, float] = (6.0, 4.0), **kwargs: Any) -> Figure:
    """A figure created with the object API (no pyplot state), constrained layout."""
    from matplotlib.figure import Figure

    return Figure(figsize=figsize, layout="constrained", **kwargs)


def figure_and_axes(ax: Axes | None, figsize: tuple[float, float]) -> tuple[Figure, Axes]:
    """Return ``(fig, ax)``: the given axes and its figure, or a fresh one-panel figure."""
    if ax is None:
        fig = new_figure(figsize)
        return fig, fig.add_subplot()
    from matplotlib.axes import Axes

    if not isinstance(ax, Axes):
        raise TypeError(f"ax must be a matplotlib Axes or None, got {type(ax).__name__}: {ax!r}")
    owner = ax.get_figure(root=True)
    if owner is None:
        raise ValueError("ax must belong to a figure (it has none)")
    return owner, ax


def save(fig: Figure, path: str | Path, dpi: int = 150, **kwargs: Any) -> Path:
    """Save a figure, choosing PNG, PDF or SVG from the suffix of ``path``.

    Parameters
    ----------
    fig : matplotlib.figure.Figure
        The figure to write.
    path : str or pathlib.Path
        Destination; its suffix (``.png``, ``.pdf``, ``.svg``) picks the format. Missing
        parent folders are created.
    dpi : int, default 150
        Resolution of raster output.

    Returns
    -------
    pathlib.Path
        The path written.

    Examples
    --------
    >>> from latentgeo.plot import save
    >>> # Not run here: needs a figure, and writes a file.
    >>> save(fig, "figures/equivariance.pdf")  # doctest: +SKIP
    """
    from matplotlib.figure import Figure

    if not isinstance(fig, Figure):
        raise TypeError(f"fig must be a matplotlib Figure, got {type(fig).__name__}: {fig!r}")
    path = Path(path)
    fmt = _SAVE_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise ValueError(
            f"cannot tell the image format of {str(path)!r}: expected a suffix in "
            f"{sorted(_SAVE_FORMATS)}"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format=fmt, dpi=dpi, **kwargs)
    return path


def is_log_spaced(steps: Sequence[float] | np.ndarray) -> bool:
    """Whether checkpoint steps are (roughly) geometrically spaced.

    A schedule is taken as log-spaced when its positive steps span more than a decade and
    the gaps between consecutive checkpoints grow by at least a factor 8 from the first
    quarter of the run to the last: an evenly spaced schedule keeps constant gaps, a
    log-spaced one has gaps proportional to the step.

    Parameters
    ----------
    steps : array of shape (n_steps,)
        Training steps of the checkpoints.

    Returns
    -------
    bool
    """
    s = np.unique(np.asarray(steps, dtype=np.float64))
    s = s[s > 0]
    if s.size < 4 or s[-1] / s[0] < 10.0:
        return False
    gaps = np.diff(s)
    q = max(1, gaps.size // 4)
    return bool(np.median(gaps[-q:]) >= 8.0 * np.median(gaps[:q]))


_XSCALES = ("auto", "linear", "log")


def step_axis(
    ax: Axes,
    steps: Sequence[float] | np.ndarray,
    label: str = "training step",
    xscale: str = "auto",
) -> None:
    """Label the x axis as training steps, log-scaled when the schedule is log-spaced.

    Parameters
    ----------
    ax : matplotlib Axes
    steps : array of shape (n_steps,)
    label : str
    xscale : {"auto", "linear", "log"}
        "auto" picks "log" for log-spaced schedules (:func:`is_log_spaced`). A log axis
        with step 0 present is ``symlog`` (linear below 1), which can show step 0.
    """
    if xscale not in _XSCALES:
        raise ValueError(f"xscale must be one of {_XSCALES!r}, got {xscale!r}")
    s = np.asarray(steps, dtype=np.float64)
    log = is_log_spaced(s) if xscale == "auto" else xscale == "log"
    if log:
        if np.any(s <= 0):
            ax.set_xscale("symlog", linthresh=1.0, linscale=0.3)
            # Autoscale margins would open a meaningless negative-step region on symlog.
            ax.set_xlim(left=float(s.min()), right=float(s.max()) * 1.15)
        else:
            ax.set_xscale("log")
        label = f"{label} (log scale)"
    ax.set_xlabel(label)


def onset_step(
    steps: np.ndarray, values: np.ndarray, threshold: float, direction: str = "above"
) -> float | None:
    """First step from which ``values`` is past ``threshold`` and stays there.

    Parameters
    ----------
    steps : array of shape (n_steps,)
    values : array of shape (n_steps,)
        NaNs count as "not past".
    threshold : float
    direction : {"above", "below"}

    Returns
    -------
    float or None
        The onset step, or None when the series does not end past the threshold.
    """
    v = np.asarray(values, dtype=np.float64)
    past = v >= threshold if direction == "above" else v <= threshold
    past &= np.isfinite(v)
    if past.size == 0 or not past[-1]:
        return None
    # Index of the last "not past" checkpoint; the onset is the one after it.
    not_past = np.flatnonzero(~past)
    first = 0 if not_past.size == 0 else int(not_past[-1]) + 1
    return float(np.asarray(steps)[first])


def as_numpy(x: Any, name: str) -> np.ndarray:
    """Convert an array-like (numpy, torch, xarray) to a float64 numpy array."""
    if hasattr(x, "detach"):  # torch tensor, without importing torch
        x = x.detach().cpu().numpy()
    if hasattr(x, "values") and not isinstance(x, np.ndarray) and not callable(x.values):
        x = x.values
    try:
        return np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise TypeError(f"{name} must be array-like of numbers, got {type(x).__name__}") from err


def check_results(results: Any, needs: Sequence[str]) -> xr.Dataset:
    """Check that ``results`` is a probe-results Dataset holding the variables ``needs``."""
    import xarray as xr

    if not isinstance(results, xr.Dataset):
        raise TypeError(
            "results must be the xarray.Dataset returned by probes.run, got "
            f"{type(results).__name__}"
        )
    missing = [v for v in needs if v not in results.data_vars]
    if missing:
        raise ValueError(
            f"results lack the variable(s) {missing!r}; they hold "
            f"{sorted(str(v) for v in results.data_vars)!r}"
        )
    return results


def select_layers(results: xr.Dataset, layers: Sequence[str] | str | None) -> list[str]:
    """Validate a layer selection against ``results.layer``; None selects all."""
    available = [str(v) for v in results["layer"].values]
    if layers is None:
        return available
    if isinstance(layers, str):
        layers = [layers]
    unknown = [layer for layer in layers if layer not in available]
    if unknown:
        raise ValueError(f"unknown layer(s) {unknown!r}; the results hold {available!r}")
    return list(layers)
