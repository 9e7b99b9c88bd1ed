"""Figures of probe results over training: equivariance, invariance, irrep spectra."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from latentgeo.plot._style import (
    check_results,
    colors,
    figure_and_axes,
    onset_step,
    select_layers,
    step_axis,
)

if TYPE_CHECKING:  # pragma: no cover
    import xarray as xr
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure


def _non_identity(da: xr.DataArray) -> xr.DataArray:
    # R² of the identity element is trivially ~1 (rho(e) = I); averaging it in would inflate
    # every layer's score, so equivariance is summarised over the other elements.
    if "element" in da.dims and da.sizes["element"] > 1:
        return da.isel(element=slice(1, None))
    return da


def mean_r2(results: xr.Dataset, var: str = "r2") -> xr.DataArray:
    """Mean over non-identity elements of a ``(layer, step, element)`` probe variable.

    Parameters
    ----------
    results : xarray.Dataset
        Probe results (``probes.run``) with ``var`` of dims ``(layer, step, element)``.
    var : str, default "r2"

    Returns
    -------
    xarray.DataArray of dims (layer, step)
    """
    check_results(results, [var])
    return _non_identity(results[var]).mean("element")


def equivariance_onsets(results: xr.Dataset, threshold: float = 0.9) -> dict[str, float | None]:
    """Onset step of equivariance per layer: first step the mean held-out R² reaches
    ``threshold`` and stays there (None when it never does)."""
    r2 = mean_r2(results)
    steps = results["step"].values
    return {
        str(layer): onset_step(steps, r2.sel(layer=layer).values, threshold)
        for layer in r2["layer"].values
    }


def _mark_onset(ax: Axes, step: float | None, color: str, label: str | None = None) -> None:
    if step is not None:
        ax.axvline(step, color=color, linestyle=":", linewidth=1.2, label=label)


def equivariance(
    results: xr.Dataset,
    layers: Sequence[str] | str | None = None,
    ax: Axes | None = None,
    onset_threshold: float | None = 0.9,
    title: str | None = None,
    xscale: str = "auto",
) -> Figure:
    """Held-out equivariance R² over training, one line per layer.

    Each line is the mean over non-identity group elements of the held-out R² of the linear
    probe ``z(g·x) ≈ rho(g) z(x)``; the band is the mean bootstrap interval (``r2_low`` to
    ``r2_high``), the dashed line of the same colour the null level (the same fit on
    re-paired samples), and a dotted vertical line marks the onset: the first step from
    which the R² stays above ``onset_threshold``.

    Parameters
    ----------
    results : xarray.Dataset
        Probe results with ``r2``, and optionally ``null_r2``, ``r2_low``, ``r2_high``, of
        dims ``(layer, step, element)``.
    layers : str or sequence of str, optional
        Layers to draw (default: all, in the results' order).
    ax : matplotlib Axes, optional
        Draw into this panel instead of a new figure.
    onset_threshold : float or None, default 0.9
        R² level defining the onset; None draws no onset markers.
    title : str, optional
    xscale : {"auto", "linear", "log"}, default "auto"
        Step axis scale; "auto" is log for log-spaced checkpoint schedules.

    Returns
    -------
    matplotlib.figure.Figure
    """
    check_results(results, ["r2"])
    chosen = select_layers(results, layers)
    fig, ax = figure_and_axes(ax, (6.4, 4.0))
    steps = results["step"].values
    r2 = mean_r2(results)
    has_ci = "r2_low" in results and "r2_high" in results
    has_null = "null_r2" in results
    for color, layer in zip(colors(len(chosen)), chosen):
        ax.plot(steps, r2.sel(layer=layer).values, color=color, marker="o", ms=3, label=layer)
        if has_ci:
            low = mean_r2(results, "r2_low").sel(layer=layer).values
            high = mean_r2(results, "r2_high").sel(layer=layer).values
            ax.fill_between(steps, low, high, color=color, alpha=0.2, linewidth=0)
        if has_null:
            null = mean_r2(results, "null_r2").sel(layer=layer).values
            ax.plot(steps, null, color=color, linestyle="--", linewidth=1, alpha=0.8)
        if onset_threshold is not None:
            _mark_onset(ax, onset_step(steps, r2.sel(layer=layer).values, onset_threshold), color)
    step_axis(ax, steps, xscale=xscale)
    ax.set_ylabel("held-out equivariance R²")
    shown = [r2.sel(layer=chosen).values]
    if has_null:
        shown.append(mean_r2(results, "null_r2").sel(layer=chosen).values)
    lo = min(0.0, *(float(np.nanmin(v)) for v in shown if np.isfinite(v).any()))
    # Held-out R² is unbounded below; a very poor fit should not squash the informative range.
    ax.set_ylim(max(lo, -1.0) - 0.05, 1.03)
    ax.grid(alpha=0.3)
    handles, labels = ax.get_legend_handles_labels()
    if has_null:
        from matplotlib.lines import Line2D

        handles.append(Line2D([], [], color="0.3", linestyle="--", linewidth=1))
        labels.append("null (re-paired)")
    if onset_threshold is not None:
        from matplotlib.lines import Line2D

        handles.append(Line2D([], [], color="0.3", linestyle=":", linewidth=1.2))
        labels.append(f"onset (R² ≥ {onset_threshold:g})")
    ax.legend(handles, labels, fontsize="small", loc="lower right")
    ax.set_title(title or "Equivariance over training")
    return fig


def _layer_lines(
    results: xr.Dataset,
    var: str,
    layers: Sequence[str] | str | None,
    ax: Axes | None,
    xscale: str,
) -> tuple[Figure, Axes, np.ndarray]:
    """One line per layer of a ``(layer, step)`` variable on a step axis, with grid and
    legend; returns the figure, the panel and the drawn values ``(layer, step)``."""
    check_results(results, [var])
    chosen = select_layers(results, layers)
    fig, ax = figure_and_axes(ax, (6.4, 4.0))
    steps = results["step"].values
    values = results[var].sel(layer=chosen).transpose("layer", "step").values
    for color, layer, series in zip(colors(len(chosen)), chosen, values):
        ax.plot(steps, series, color=color, marker="o", ms=3, label=layer)
    step_axis(ax, steps, xscale=xscale)
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    return fig, ax, values


def invariance(
    results: xr.Dataset,
    layers: Sequence[str] | str | None = None,
    ax: Axes | None = None,
    title: str | None = None,
    xscale: str = "auto",
) -> Figure:
    """Fraction of centred orbit variance that is invariant, over training, per layer.

    Parameters
    ----------
    results : xarray.Dataset
        Probe results with ``invariance`` of dims ``(layer, step)``.
    layers : str or sequence of str, optional
    ax : matplotlib Axes, optional
    title : str, optional
    xscale : {"auto", "linear", "log"}, default "auto"
        Step axis scale; "auto" is log for log-spaced checkpoint schedules.

    Returns
    -------
    matplotlib.figure.Figure
    """
    fig, ax, _ = _layer_lines(results, "invariance", layers, ax, xscale)
    ax.set_ylabel("invariant fraction of variance")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title(title or "Invariance over training")
    return fig


def homomorphism_error(
    results: xr.Dataset,
    layers: Sequence[str] | str | None = None,
    ax: Axes | None = None,
    title: str | None = None,
    xscale: str = "auto",
) -> Figure:
    """Mean homomorphism error ``‖rho(g)rho(h) − rho(gh)‖ / ‖rho(gh)‖`` over training.

    Parameters
    ----------
    results : xarray.Dataset
        Probe results with ``homomorphism_error`` of dims ``(layer, step)``.
    layers : str or sequence of str, optional
    ax : matplotlib Axes, optional
    title : str, optional
    xscale : {"auto", "linear", "log"}, default "auto"
        Step axis scale; "auto" is log for log-spaced checkpoint schedules.

    Returns
    -------
    matplotlib.figure.Figure
    """
    fig, ax, values = _layer_lines(results, "homomorphism_error", layers, ax, xscale)
    if np.all(np.isfinite(values)) and np.all(values > 0):
        ax.set_yscale("log")
    ax.set_ylabel("relative homomorphism error")
    ax.set_title(title or "Homomorphism error of the fitted rho")
    return fig


def irrep_spectrum(
    results: xr.Dataset,
    layer: str,
    ax: Axes | None = None,
    onset_threshold: float | None = 0.9,
    title: str | None = None,
    xscale: str = "auto",
) -> Figure:
    """Stacked fractions of orbit variance per irrep of the group, over training.

    The bottom band is the trivial irrep (the invariant share); the others are the
    isotypic components of the non-trivial irreps. A dotted vertical line marks the onset of
    equivariance of the layer (held-out R² reaching ``onset_threshold``) when the results
    hold ``r2``.

    Parameters
    ----------
    results : xarray.Dataset
        Probe results with ``spectrum`` of dims ``(layer, step, irrep)``.
    layer : str
        The layer to draw.
    ax : matplotlib Axes, optional
    onset_threshold : float or None, default 0.9
    title : str, optional
    xscale : {"auto", "linear", "log"}, default "auto"
        Step axis scale; "auto" is log for log-spaced checkpoint schedules.

    Returns
    -------
    matplotlib.figure.Figure
    """
    check_results(results, ["spectrum"])
    if not isinstance(layer, str):
        raise TypeError(f"layer must be one layer name (str), got {layer!r}")
    (layer,) = select_layers(results, [layer])
    fig, ax = figure_and_axes(ax, (6.4, 4.0))
    steps = results["step"].values
    spec = results["spectrum"].sel(layer=layer).transpose("step", "irrep").values
    names = [str(v) for v in results["irrep"].values]
    # NaNs (a step whose orbit variance vanished) would break the stack: draw them as gaps.
    spec = np.where(np.isfinite(spec), spec, 0.0)
    ax.stackplot(steps, spec.T, labels=names, colors=colors(len(names)), alpha=0.9)
    if onset_threshold is not None and "r2" in results:
        r2 = mean_r2(results).sel(layer=layer).values
        _mark_onset(
            ax,
            onset_step(steps, r2, onset_threshold),
            "black",
            label=f"onset (R² ≥ {onset_threshold:g})",
        )
    step_axis(ax, steps, xscale=xscale)
    if steps.size > 1:  # a stack fills the panel edge to edge
        ax.set_xlim(steps.min(), steps.max())
    ax.set_ylim(0.0, 1.0)
    ax.set_ylabel("fraction of orbit variance")
    # Many irreps (C_p for modular arithmetic) make a long legend: put it outside in columns.
    ncol = 1 if len(names) <= 8 else 2
    ax.legend(
        fontsize="x-small", loc="upper left", bbox_to_anchor=(1.01, 1.0), ncol=ncol, title="irrep"
    )
    ax.set_title(title or f"Irrep spectrum of {layer}")
    return fig
