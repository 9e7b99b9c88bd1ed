"""Spectra of several runs side by side: which irreps each seed or model learned."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from latentgeo.plot._style import colors, new_figure, step_axis

if TYPE_CHECKING:
    import xarray as xr
    from matplotlib.figure import Figure

__all__ = ["spectra_across_runs"]


def spectra_across_runs(
    comparison: xr.Dataset,
    *,
    title: str | None = None,
    xscale: str = "auto",
    max_cols: int = 4,
) -> Figure:
    """One stacked irrep spectrum per run, on a shared irrep colour code.

    Each panel stacks the share of orbit variance of every irrep over training (the same
    colour for an irrep in every panel) and marks with a dotted line the step from which each
    learned irrep is carried (its emergence), so seeds that settle on different irreps stand
    out side by side.

    Parameters
    ----------
    comparison : xarray.Dataset
        The result of :func:`trajectories.compare_spectra` (``share (run, step, irrep)``,
        ``emergence``/``learned (run, irrep)``).
    title : str, optional
    xscale : {"auto", "linear", "log"}
    max_cols : int
        Panels per row.

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    ValueError
        If ``comparison`` lacks the variables of :func:`trajectories.compare_spectra`.
    """
    import xarray as xr

    need = ("share", "emergence", "learned")
    if not isinstance(comparison, xr.Dataset) or any(v not in comparison for v in need):
        raise ValueError(
            f"comparison must be the Dataset of trajectories.compare_spectra (with {need!r})"
        )
    runs = [str(r) for r in comparison.run.values]
    irreps = [str(i) for i in comparison.irrep.values]
    palette = colors(len(irreps))
    ncol = min(len(runs), max_cols)
    nrow = -(-len(runs) // ncol)
    fig = new_figure((4.4 * ncol + 1.2, 3.4 * nrow))
    axes = np.atleast_1d(fig.subplots(nrow, ncol, squeeze=False, sharey=True)).ravel()
    for ax in axes[len(runs) :]:
        ax.set_axis_off()
    for ax, run in zip(axes, runs, strict=False):
        sel = comparison.sel(run=run)
        share = sel["share"].transpose("step", "irrep").values
        keep = np.isfinite(share).all(axis=1)
        steps = comparison.step.values[keep]
        ax.stackplot(steps, share[keep].T, colors=palette, alpha=0.9, labels=irreps)
        learned = [i for i, ok in zip(irreps, sel["learned"].values, strict=True) if ok]
        for i, name in enumerate(irreps):
            t = float(sel["emergence"].sel(irrep=name))
            if name in learned and np.isfinite(t):
                ax.axvline(t, color=palette[i], ls=":", lw=1.5)
        step_axis(ax, steps, xscale=xscale)
        if steps.size > 1:
            ax.set_xlim(steps.min(), steps.max())
        ax.set_ylim(0.0, 1.0)
        ax.set_title(f"{run}: {', '.join(learned) or 'none'}", fontsize="small")
    axes[0].set_ylabel("fraction of orbit variance")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside right upper", fontsize="x-small", title="irrep")
    layer = comparison.attrs.get("layer", "")
    fig.suptitle(title or f"Irreps learned per run ({layer}; dotted: emergence)")
    return fig
