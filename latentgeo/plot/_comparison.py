"""Several trained models side by side: one column per model (the figures of ``latentgeo demo``).

Few figures with several panels each: rendering dominates a small comparison's fixed cost.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from latentgeo.plot._geometry import trajectory_embedding
from latentgeo.plot._style import colors, new_figure
from latentgeo.plot._subgroups import subgroup_lattice
from latentgeo.plot._training import equivariance, invariance, irrep_spectrum

__all__ = ["compare_models", "subgroup_lattices"]


def compare_models(
    analyses: Mapping[str, Any],
    titles: Mapping[str, str] | None = None,
    *,
    onset_threshold: float = 0.9,
    group_label: str = "each model's group",
) -> dict[str, Figure]:
    """Figures comparing the analyses of several run stores, one column per model.

    Parameters
    ----------
    analyses : mapping of str to latentgeo.pipeline.Analysis
        One analysis per model (``latentgeo.pipeline.analyze_run``), all with the same number
        of layers; their ``results``, ``summary``, ``layers``, ``geometry`` and ``run`` are
        read.
    titles : mapping of str to str, optional
        Display name per model (default: the keys).
    onset_threshold : float, default 0.9
        R² drawn as the onset level.
    group_label : str, default "each model's group"
        Names the recorded group(s) in the spectra figure's title.

    Returns
    -------
    dict of str to matplotlib.figure.Figure
        ``"equivariance"`` (held-out R² over training), ``"depth_invariance"`` (final R² by
        depth with the null level, and invariance over training), ``"spectra"`` (irrep
        spectrum per layer over training) and ``"trajectories"`` (MDS embedding of the
        second-deepest layer's principal-subspace trajectory).

    Raises
    ------
    ValueError
        When ``analyses`` is empty.
    """
    names = list(analyses)
    if not names:
        raise ValueError("compare_models needs at least one analysis, got none")
    titles = {name: (titles or {}).get(name, name) for name in names}
    ncol = len(names)
    figs: dict[str, Figure] = {}

    fig = new_figure((5.0 * ncol, 4.0))
    axes = np.atleast_1d(fig.subplots(1, ncol, sharey=True))
    for ax, name in zip(axes, names):
        equivariance(
            analyses[name].results, ax=ax, onset_threshold=onset_threshold, title=titles[name]
        )
    fig.suptitle("Held-out equivariance R² under each model's recorded group (dashed: null)")
    figs["equivariance"] = fig

    fig = new_figure((4.6 * (ncol + 1), 3.8))
    axes = np.atleast_1d(fig.subplots(1, ncol + 1))
    for color, name in zip(colors(ncol), names):
        a = analyses[name]
        r2 = [a.summary["layers"][layer]["r2"] for layer in a.layers]
        null = [a.summary["layers"][layer].get("null_r2") for layer in a.layers]
        depth = np.arange(1, len(r2) + 1)
        axes[0].plot(depth, r2, marker="o", color=color, label=titles[name])
        if all(v is not None for v in null):
            axes[0].plot(depth, null, linestyle="--", color=color, linewidth=1)
    axes[0].set_xticks(np.arange(1, len(analyses[names[0]].layers) + 1))
    axes[0].set_xlabel("recorded layer (depth)")
    axes[0].set_ylabel("final held-out R²")
    axes[0].set_ylim(min(0.0, axes[0].get_ylim()[0]), 1.02)
    axes[0].grid(alpha=0.3)
    axes[0].legend(fontsize="small")
    axes[0].set_title("Final R² by depth (dashed: null)")
    for ax, name in zip(axes[1:], names):
        invariance(analyses[name].results, ax=ax, title=f"Invariance: {titles[name]}")
    fig.suptitle("Equivariance by depth and invariance over training")
    figs["depth_invariance"] = fig

    n_layers = max(len(analyses[name].layers) for name in names)
    fig = new_figure((5.6 * ncol, 3.0 * n_layers))
    axes = fig.subplots(n_layers, ncol, squeeze=False)
    for col, name in enumerate(names):
        for row, layer in enumerate(analyses[name].layers):
            irrep_spectrum(
                analyses[name].results, layer, ax=axes[row, col], title=f"{titles[name]}: {layer}"
            )
    fig.suptitle(f"Share of orbit variance per irrep over training ({group_label})")
    figs["spectra"] = fig

    fig = new_figure((4.8 * ncol, 4.2))
    axes = np.atleast_1d(fig.subplots(1, ncol))
    for ax, name in zip(axes, names):
        a = analyses[name]
        layer = a.layers[-2] if len(a.layers) > 1 else a.layers[-1]
        trajectory_embedding(
            a.geometry.sel(layer=layer)["embedding"],
            steps=a.run.steps,
            ax=ax,
            title=f"{titles[name]}: {layer} subspace (MDS)",
        )
    fig.suptitle("Trajectories of principal subspaces over training")
    figs["trajectories"] = fig
    return figs


def subgroup_lattices(results: Any, layers: Sequence[str], title: str = "") -> Figure:
    """Subgroup lattices of several layers at the last step, side by side.

    Parameters
    ----------
    results : xarray.Dataset
        ``probes.run`` results with the ``"subgroups"`` kind.
    layers : sequence of str
        Layers to draw, one panel each.
    title : str, default ""
        Prefix of each panel's title.

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    ValueError
        When ``layers`` is empty.
    """
    layers = list(layers)
    if not layers:
        raise ValueError("subgroup_lattices needs at least one layer, got none")
    fig = new_figure((7.0 * len(layers), 5.0))
    axes = np.atleast_1d(fig.subplots(1, len(layers)))
    for ax, layer in zip(axes, layers):
        subgroup_lattice(results, layer, ax=ax, title=f"{title}: {layer}" if title else layer)
    return fig
