"""A one-page summary figure of one run."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from latentgeo.plot._geometry import distance_matrix, trajectory_embedding
from latentgeo.plot._style import check_results, colors, new_figure, select_layers, step_axis
from latentgeo.plot._training import equivariance, homomorphism_error, invariance, irrep_spectrum

if TYPE_CHECKING:  # pragma: no cover
    import xarray as xr
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure


def _metrics_panel(ax: Axes, metrics: xr.Dataset) -> None:
    """Training metrics along step: loss on the left axis, accuracies on the right."""
    steps = metrics["step"].values
    names = [
        str(v)
        for v in metrics.data_vars
        if metrics[v].dims == ("step",) and str(v) not in ("epoch", "wall_time")
    ]
    palette = colors(max(len(names), 1))
    acc_ax = None
    for color, name in zip(palette, names):
        values = np.asarray(metrics[name].values, dtype=np.float64)
        target = ax
        if "acc" in name:
            acc_ax = acc_ax or ax.twinx()
            target = acc_ax
        target.plot(steps, values, color=color, marker=".", label=name)
    step_axis(ax, steps)
    ax.set_ylabel("loss")
    if acc_ax is not None:
        acc_ax.set_ylabel("accuracy")
        acc_ax.set_ylim(0.0, 1.02)
    lines = ax.get_lines() + (acc_ax.get_lines() if acc_ax is not None else [])
    if lines:
        ax.legend(
            lines, [str(ln.get_label()) for ln in lines], fontsize="x-small", loc="center right"
        )
    else:
        ax.text(0.5, 0.5, "no metrics recorded", ha="center", va="center", transform=ax.transAxes)
    ax.set_title("Training metrics")


def summary(
    results: xr.Dataset,
    layer: str | None = None,
    metrics: xr.Dataset | None = None,
    embedding: Any = None,
    distances: Any = None,
    title: str | None = None,
    onset_threshold: float | None = 0.9,
) -> Figure:
    """One page summarising a run: equivariance, invariance, irreps, and their geometry.

    Panels: held-out equivariance R² per layer (with null level, bootstrap band and onset),
    invariance per layer, the irrep spectrum of ``layer``, the homomorphism error, the
    training metrics (when ``metrics`` is given), and the trajectory of ``layer`` as a 2-D
    embedding (``embedding``) or a checkpoint distance matrix (``distances``).

    Parameters
    ----------
    results : xarray.Dataset
        Probe results (``probes.run``).
    layer : str, optional
        Layer for the spectrum and geometry panels (default: the last layer).
    metrics : xarray.Dataset, optional
        Per-step training metrics (``Run.metrics``), e.g. ``loss``, ``accuracy``.
    embedding : array of shape (n_steps, 2), optional
        2-D embedding of the layer's trajectory.
    distances : array of shape (n_steps, n_steps), optional
        Checkpoint distance matrix of the layer (used when no ``embedding`` is given).
    title : str, optional
    onset_threshold : float or None, default 0.9

    Returns
    -------
    matplotlib.figure.Figure
    """
    check_results(results, ["r2"])
    layers = select_layers(results, None)
    layer = layers[-1] if layer is None else select_layers(results, [layer])[0]
    fig = new_figure((16.0, 8.6))
    axes = fig.subplots(2, 3)
    equivariance(results, ax=axes[0, 0], onset_threshold=onset_threshold)
    if "invariance" in results:
        invariance(results, ax=axes[0, 1])
    else:
        axes[0, 1].set_axis_off()
    if "spectrum" in results:
        irrep_spectrum(results, layer, ax=axes[0, 2], onset_threshold=onset_threshold)
    else:
        axes[0, 2].set_axis_off()
    if "homomorphism_error" in results:
        homomorphism_error(results, ax=axes[1, 0])
    else:
        axes[1, 0].set_axis_off()
    if metrics is not None:
        _metrics_panel(axes[1, 1], metrics)
    else:
        axes[1, 1].set_axis_off()
    if embedding is not None:
        trajectory_embedding(embedding, ax=axes[1, 2], title=f"Trajectory of {layer} (2-D)")
    elif distances is not None:
        distance_matrix(distances, ax=axes[1, 2], title=f"Checkpoint distances, {layer}")
    else:
        axes[1, 2].set_axis_off()
    fig.suptitle(title or "latentgeo run summary", fontsize="x-large")
    return fig
