"""Figures of which subgroups a layer respects: the subgroup lattice and its development."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from latentgeo.plot._style import colors, figure_and_axes, step_axis

if TYPE_CHECKING:
    import xarray as xr
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["hasse_covers", "subgroup_lattice", "subgroups_over_training"]

_METRICS = ("invariance", "r2")


def hasse_covers(membership: np.ndarray) -> list[tuple[int, int]]:
    """Covering pairs ``(i, j)`` of the inclusion order of subgroups given by membership.

    Parameters
    ----------
    membership : bool array of shape (n_subgroups, order)
        Row ``i`` marks the elements of subgroup ``i``.

    Returns
    -------
    list of (int, int)
        ``i ⊂ j`` strictly with no subgroup strictly between.
    """
    m = np.asarray(membership, dtype=bool)
    sizes = m.sum(axis=1)
    # below[i, j]: every element of i lies in j, and j is larger
    below = (~m[:, None, :] | m[None, :, :]).all(axis=2) & (sizes[:, None] < sizes[None, :])
    between = (below.astype(np.int64) @ below.astype(np.int64)) > 0
    return [(int(i), int(j)) for i, j in zip(*np.nonzero(below & ~between), strict=True)]


def _scan_values(results: xr.Dataset, metric: str, layer: Any, step: Any) -> Any:
    """(names, membership, values, lows, highs) from a scan or from probes.run results."""
    import xarray as xr

    if not isinstance(results, xr.Dataset):
        raise TypeError(
            "results must be an xarray.Dataset from probes.subgroup_scan or probes.run, got "
            f"{type(results).__name__}"
        )
    if metric not in _METRICS:
        raise ValueError(f"metric must be one of {_METRICS!r}, got {metric!r}")
    prefix = "" if metric in results.data_vars and "membership" in results else "subgroup_"
    var = f"{prefix}{metric}"
    member = "membership" if prefix == "" else "subgroup_membership"
    if var not in results.data_vars or member not in results:
        raise ValueError(
            f"results hold no subgroup scan (variables {var!r} and {member!r}); run "
            "probes.subgroup_scan or probes.run(..., probes including 'subgroups')"
        )
    da = results[var]
    lo, hi = results.get(f"{var}_low"), results.get(f"{var}_high")
    sel: dict[str, Any] = {}
    if "layer" in da.dims:
        if layer is None:
            raise ValueError(f"pass layer=, one of {[str(v) for v in results.layer.values]!r}")
        sel["layer"] = layer
    if "step" in da.dims:
        sel["step"] = results.step.values[-1] if step is None else step
    da = da.sel(sel)
    lo = lo.sel(sel) if lo is not None else None
    hi = hi.sel(sel) if hi is not None else None
    names = [str(v) for v in results.subgroup.values]
    return names, np.asarray(results[member].values, dtype=bool), da, lo, hi, sel


def subgroup_lattice(
    results: xr.Dataset,
    layer: str | None = None,
    step: int | None = None,
    *,
    metric: str = "invariance",
    ax: Axes | None = None,
    title: str | None = None,
) -> Figure:
    """Hasse diagram of the subgroups, each node coloured by invariance (or equivariance).

    Subgroups sit on rows by order (the trivial subgroup at the bottom, the group at the
    top); lines join each subgroup to the subgroups that cover it.  Nodes whose interval lies
    above the scan's threshold are ringed in black.

    Parameters
    ----------
    results : xarray.Dataset
        A :func:`probes.subgroup_scan` result, or :func:`probes.run` results holding the
        ``subgroup_*`` variables (then ``layer`` is required and ``step`` defaults to the
        last checkpoint).
    layer : str, optional
    step : int, optional
    metric : {"invariance", "r2"}
        Node colour: invariant share or pooled held-out R² over the subgroup.
    ax : matplotlib Axes, optional
    title : str, optional

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    ValueError
        If ``results`` hold no subgroup scan, the metric is unknown or ``layer`` is missing.
    """
    names, membership, da, lo, _, sel = _scan_values(results, metric, layer, step)
    values = np.asarray(da.values, dtype=np.float64)
    sizes = membership.sum(axis=1)
    levels = sorted(set(sizes.tolist()))
    widest = max(int((sizes == s).sum()) for s in levels)
    fig, ax = figure_and_axes(ax, (max(7.0, 1.5 * widest), max(4.0, 1.1 * len(levels))))
    covers = hasse_covers(membership)
    pos = np.zeros((len(names), 2))
    for y, size in enumerate(levels):
        idx = np.flatnonzero(sizes == size)
        if y > 0:  # barycentre ordering: fewer crossings with the row below
            below = [[pos[i, 0] for i, j in covers if j == k] for k in idx]
            idx = idx[np.argsort([np.mean(b) if b else 0.0 for b in below], kind="stable")]
        xs = np.linspace(-1, 1, idx.size + 2)[1:-1] if idx.size > 1 else np.zeros(1)
        pos[idx, 0] = xs
        pos[idx, 1] = y
    for i, j in covers:
        ax.plot(pos[[i, j], 0], pos[[i, j], 1], color="0.6", lw=0.8, zorder=1)
    from matplotlib import colormaps
    from matplotlib.colors import Normalize

    norm = Normalize(0.0, 1.0)
    cmap = colormaps["viridis"]
    threshold = results.attrs.get("threshold")
    passed = (
        np.asarray(lo.values) >= threshold
        if lo is not None and threshold is not None
        else np.zeros(len(names), dtype=bool)
    )
    ax.scatter(
        pos[:, 0],
        pos[:, 1],
        c=cmap(norm(np.nan_to_num(values))),
        s=380,
        edgecolors=["black" if ok else "0.7" for ok in passed],
        linewidths=[2.0 if ok else 0.8 for ok in passed],
        zorder=2,
    )
    for (x, y), name, v in zip(pos, names, values, strict=True):
        ax.annotate(
            f"{name}\n{v:.2f}",
            (x, y),
            textcoords="offset points",
            xytext=(0, 13),
            ha="center",
            fontsize="x-small",
        )
    from matplotlib.cm import ScalarMappable

    fig.colorbar(ScalarMappable(norm, cmap), ax=ax, label=metric)
    ax.set_yticks(range(len(levels)), [f"order {s}" for s in levels])
    ax.set_xticks([])
    ax.set_ylim(-0.5, len(levels) - 0.3)
    for spine in ("top", "right", "bottom"):
        ax.spines[spine].set_visible(False)
    where = ", ".join(f"{k} {v}" for k, v in sel.items())
    ax.set_title(title or f"Subgroups respected ({metric}{', ' + where if where else ''})")
    return fig


def subgroups_over_training(
    results: xr.Dataset,
    layer: str,
    *,
    metric: str = "invariance",
    subgroups: Any = None,
    ax: Axes | None = None,
    title: str | None = None,
    xscale: str = "auto",
) -> Figure:
    """Invariance (or equivariance) under each subgroup over training, for one layer.

    Parameters
    ----------
    results : xarray.Dataset
        :func:`probes.run` results with ``subgroup_invariance`` / ``subgroup_r2`` of dims
        ``(layer, step, subgroup)``.
    layer : str
    metric : {"invariance", "r2"}
    subgroups : sequence of str, optional
        Subgroup names to draw (default all but the trivial subgroup).
    ax, title, xscale
        As for :func:`latentgeo.plot.invariance`.

    Returns
    -------
    matplotlib.figure.Figure
    """
    import xarray as xr

    if not isinstance(results, xr.Dataset) or f"subgroup_{metric}" not in results:
        raise ValueError(
            f"results must be probes.run results holding 'subgroup_{metric}' (run the "
            "'subgroups' probe)"
        )
    da = results[f"subgroup_{metric}"].sel(layer=layer).transpose("subgroup", "step")
    names = [str(v) for v in da.subgroup.values]
    if subgroups is None:
        order = results["subgroup_membership"].sum("element").values
        chosen = [n for n, o in zip(names, order, strict=True) if o > 1]
    else:
        unknown = [s for s in subgroups if s not in names]
        if unknown:
            raise ValueError(f"unknown subgroup(s) {unknown!r}; the results hold {names!r}")
        chosen = list(subgroups)
    fig, ax = figure_and_axes(ax, (6.8, 4.2))
    steps = results.step.values
    for color, name in zip(colors(len(chosen)), chosen, strict=True):
        ax.plot(steps, da.sel(subgroup=name).values, color=color, marker="o", ms=3, label=name)
    step_axis(ax, steps, xscale=xscale)
    ax.set_ylabel("invariant fraction" if metric == "invariance" else "held-out R²")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="x-small", ncol=2)
    ax.set_title(title or f"{layer}: {metric} per subgroup over training")
    return fig
