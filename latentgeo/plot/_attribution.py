"""Figures of where a symmetry breaks (layer × step contributions), of what each irrep
does for the loss (restricted and excluded losses over training) and of which symmetry a layer
learned (discovered dimensions over training)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from latentgeo.plot._style import check_results, colors, figure_and_axes, step_axis

if TYPE_CHECKING:  # pragma: no cover
    import xarray as xr
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["attribution", "discovered_symmetry", "irrep_losses"]


def _contribution(results: xr.Dataset, element: str | None) -> xr.DataArray:
    da = results["contribution"]
    if "element" in da.dims:
        if element is None:
            return da.sum("element")
        known = [str(e) for e in results["element"].values]
        if element not in known:
            raise ValueError(f"unknown element {element!r}; the results hold {known!r}")
        return da.sel(element=element)
    return da


def attribution(
    results: xr.Dataset,
    element: str | None = None,
    ax: Axes | None = None,
    title: str | None = None,
    xscale: str = "auto",
) -> Figure:
    """Each layer's contribution to the end-to-end equivariance error.

    With a ``step`` dimension (:func:`probes.attribution_over_training`): a layer × step
    heat map of the contributions (diverging colours centred on 0: a negative contribution
    is a layer that repairs error made before it), the part after the last layer as its own
    row.  Without one (:func:`probes.equivariance_attribution`): bars per layer, the rest,
    and the total as a line.

    Parameters
    ----------
    results : xarray.Dataset
        ``contribution`` (layer[, element][, step]), ``rest`` and ``total``.
    element : str, optional
        One element (a family of the Lie-derivative estimator, a group element of the
        intervention); default the sum over elements.
    ax : matplotlib Axes, optional
    title : str, optional
    xscale : {"auto", "linear", "log"}
        The step axis of the heat map's column positions (labels only).

    Returns
    -------
    matplotlib.figure.Figure
    """
    check_results(results, ["contribution", "rest", "total"])
    contrib = _contribution(results, element)
    rest = (
        results["rest"]
        if "element" not in results["rest"].dims
        else (
            results["rest"].sum("element")
            if element is None
            else results["rest"].sel(element=element)
        )
    )
    layers = [str(v) for v in results["layer"].values]
    method = results.attrs.get("method", "")
    unit = "mean ⟨term, unit Lie derivative⟩" if method == "lie_derivative" else "error share"
    if "step" in contrib.dims:
        fig, ax = figure_and_axes(ax, (7.0, 0.5 * len(layers) + 2.0))
        grid = np.vstack([contrib.transpose("layer", "step").values, rest.values[None]])
        lim = float(np.nanmax(np.abs(grid))) or 1.0
        steps = results["step"].values
        img = ax.imshow(
            grid, aspect="auto", cmap="RdBu_r", vmin=-lim, vmax=lim, interpolation="nearest"
        )
        ax.set_yticks(range(len(layers) + 1), [*layers, "(after last layer)"])
        ticks = np.unique(np.linspace(0, len(steps) - 1, min(len(steps), 8)).astype(int))
        ax.set_xticks(ticks, [str(int(steps[i])) for i in ticks])
        ax.set_xlabel("training step (checkpoints, in order)" if xscale != "linear" else "step")
        fig.colorbar(img, ax=ax, label=f"contribution ({unit})")
        ax.set_title(title or "Where the equivariance error comes from, over training")
        return fig
    fig, ax = figure_and_axes(ax, (6.0, 4.0))
    values = [*contrib.values.tolist(), float(rest)]
    names = [*layers, "(after last layer)"]
    ax.bar(range(len(values)), values, color=colors(1)[0])
    total = results["total"]
    tot = float(total.sum() if element is None else total.sel(element=element))
    ax.axhline(tot, color="black", lw=1, ls="--", label=f"total {tot:.3g}")
    ax.set_xticks(range(len(values)), names, rotation=30, ha="right")
    ax.set_ylabel(f"contribution ({unit})")
    ax.legend(fontsize="small")
    ax.set_title(title or "Where the equivariance error comes from")
    return fig


def irrep_losses(
    results: xr.Dataset,
    irreps: Sequence[str] | str | None = None,
    ax: Axes | None = None,
    title: str | None = None,
    xscale: str = "auto",
    log_loss: bool = True,
) -> Figure:
    """Restricted (solid) and excluded (dashed) loss per irrep and per chosen set, over
    training, with the model's own loss in black.

    Parameters
    ----------
    results : xarray.Dataset
        :func:`probes.ablation_over_training` output: ``restricted_loss``,
        ``excluded_loss`` (step, irrep), ``loss`` (step), optional set losses (step, set).
    irreps : str or sequence of str, optional
        Irreps to draw (default all; sets are always drawn).
    ax : matplotlib Axes, optional
    title : str, optional
    xscale : {"auto", "linear", "log"}
    log_loss : bool
        Log-scaled loss axis.

    Returns
    -------
    matplotlib.figure.Figure
    """
    check_results(results, ["restricted_loss", "excluded_loss", "loss"])
    if "step" not in results.dims:
        raise ValueError("results need a 'step' dimension (probes.ablation_over_training)")
    known = [str(v) for v in results["irrep"].values]
    chosen = known if irreps is None else ([irreps] if isinstance(irreps, str) else list(irreps))
    unknown = [r for r in chosen if r not in known]
    if unknown:
        raise ValueError(f"unknown irrep(s) {unknown!r}; the results hold {known!r}")
    sets = [str(s) for s in results["set"].values] if "set" in results.dims else []
    fig, ax = figure_and_axes(ax, (7.0, 4.5))
    steps = results["step"].values
    palette = colors(len(chosen) + len(sets))
    series = [("irrep", r, "restricted_loss", "excluded_loss") for r in chosen] + [
        ("set", s, "set_restricted_loss", "set_excluded_loss") for s in sets
    ]
    for color, (dim, key, res_var, exc_var) in zip(palette, series):
        sel = {dim: key}
        ax.plot(steps, results[res_var].sel(sel).values, color=color, label=f"{key} restricted")
        ax.plot(
            steps, results[exc_var].sel(sel).values, color=color, ls="--", label=f"{key} excluded"
        )
    ax.plot(steps, results["loss"].values, color="black", lw=2, label="model")
    if log_loss:
        ax.set_yscale("log")
    step_axis(ax, steps, xscale=xscale)
    ax.set_ylabel("loss")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="x-small", ncol=2)
    ax.set_title(title or "What each irrep does for the loss")
    return fig


def discovered_symmetry(
    results: xr.Dataset,
    ax: Axes | None = None,
    title: str | None = None,
    xscale: str = "auto",
) -> Figure:
    """The discovered invariant and equivariant symmetry of a layer over training.

    Step plots (constant from one stored step to the next) of the dimension of the largest
    invariant and of the largest equivariant subalgebra (for a finite group: the order of the
    largest respected subgroup), with the symmetry's name written where it changes (where a
    known one matches; LieGG, Moskalev et al. 2022, applied to latents).  The invariant
    symmetry is part of the equivariant one, so its line never lies above.

    Parameters
    ----------
    results : xarray.Dataset
        :func:`probes.discovery_over_training` output: ``invariant_dimension``,
        ``invariant_name``, ``equivariant_dimension``, ``equivariant_name`` (step); the
        ``kind`` attribute (``"lie_algebra"`` or ``"finite"``) labels the axis.
    ax : matplotlib Axes, optional
    title : str, optional
    xscale : {"auto", "linear", "log"}

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    TypeError
        ``results`` is not an ``xarray.Dataset``.
    ValueError
        A variable is missing, or ``results`` has no ``step`` dimension.
    """
    needs = ["invariant_dimension", "invariant_name", "equivariant_dimension", "equivariant_name"]
    check_results(results, needs)
    if "step" not in results.dims:
        raise ValueError("results need a 'step' dimension (probes.discovery_over_training)")
    finite = results.attrs.get("kind") == "finite"
    fig, ax = figure_and_axes(ax, (7.0, 4.0))
    steps = np.asarray(results["step"].values)
    top = 0
    palette = colors(2)
    for color, which, ls, dy in zip(palette, ("equivariant", "invariant"), ("-", "--"), (6, -12)):
        dims = np.asarray(results[f"{which}_dimension"].values, dtype=np.float64)
        names = [str(v) for v in results[f"{which}_name"].values]
        ax.step(steps, dims, where="post", color=color, ls=ls, lw=2, label=which)
        ax.plot(steps, dims, "o", color=color, ms=4)
        top = max(top, int(np.nanmax(dims)) if np.isfinite(dims).any() else 0)
        for i, name in enumerate(names):
            if name and (i == 0 or name != names[i - 1]):
                ax.annotate(
                    name,
                    (steps[i], dims[i]),
                    xytext=(3, dy),
                    textcoords="offset points",
                    color=color,
                    fontsize="small",
                )
    step_axis(ax, steps, xscale=xscale)
    from matplotlib.ticker import MaxNLocator

    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylim(-0.5, top + 1.0)
    ax.set_ylabel("order of the largest respected subgroup" if finite else "dimension")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    layer = results.attrs.get("layer")
    ax.set_title(
        title or (f"Which symmetry {layer} learned" if layer else "Which symmetry was learned")
    )
    return fig
