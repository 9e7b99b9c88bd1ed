"""``analyze``, step 2 of 3 — render: the figures of an :class:`Analysis`."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from latentgeo.pipeline._analyze_compute import ONSET_THRESHOLD
from latentgeo.pipeline._analyze_stored import stored_figures
from latentgeo.pipeline._errors import UsageError

if TYPE_CHECKING:  # pragma: no cover
    from latentgeo.groups import Group
    from latentgeo.pipeline._analyze_compute import Analysis
    from latentgeo.store import Run

__all__ = ["check_formats", "write_figures"]


def _group(run: Run) -> Group:
    group = run.group
    if group is None:
        raise UsageError(f"run store {run.path!r} records no group")
    return group


def _final_latents(run: Run, layer: str) -> np.ndarray:
    return np.asarray(run.read_block(layer, -1), dtype=np.float64)


def check_formats(formats: Sequence[str]) -> list[str]:
    """Validated figure formats, PNG first (always written: the report embeds it)."""
    if isinstance(formats, str):
        formats = [formats]
    bad = [f for f in formats if f not in ("png", "pdf", "svg")]
    if bad:
        raise UsageError(f"unknown figure format(s) {bad!r}; choose among 'png', 'pdf', 'svg'")
    return ["png", *(f for f in dict.fromkeys(formats) if f != "png")]


def _panels(n: int, width: float, height: float, max_cols: int = 4) -> tuple[Any, Any]:
    from latentgeo.plot._style import new_figure

    ncol = min(n, max_cols)
    nrow = -(-n // ncol)
    fig = new_figure((width * ncol, height * nrow))
    axes = fig.subplots(nrow, ncol, squeeze=False).ravel()
    for ax in axes[n:]:
        ax.set_axis_off()
    return fig, axes


def write_figures(
    a: Analysis,
    out: str | os.PathLike[str],
    formats: Sequence[str] = ("png",),
    dpi: int = 100,
) -> dict[str, Path]:
    """Write the figures of one analysis into ``out``.

    One figure per question, with one panel per layer where it applies: equivariance,
    invariance, homomorphism error, irrep spectra, checkpoint distances, subspace
    trajectories, orbits and fitted rho(g) (when at most 64 units) at the last layer, the
    one-page summary, and where the store holds them, the attribution over training and the
    losses per irrep (``attribution``, ``irrep_losses``).  Only the figures the store's kind
    supports are drawn (``a.plan``, see ``latentgeo.pipeline._analyze_plan``).

    Parameters
    ----------
    a : Analysis
    out : str or os.PathLike
        Folder for the files ``<name>.<format>``.
    formats : sequence of {"png", "pdf", "svg"}, default ("png",)
        Formats to write; PNG is always written too (the HTML report embeds it).
    dpi : int, default 100

    Returns
    -------
    dict
        {figure name: path of its PNG}.
    """
    from latentgeo import plot

    out = Path(out)
    formats = check_formats(formats)
    written: dict[str, Path] = {}

    def emit(name: str, fig: Any) -> None:
        for fmt in formats:
            p = plot.save(fig, out / f"{name}.{fmt}", dpi=dpi)
            written.setdefault(name, p)

    r, g, layers = a.results, a.geometry, a.layers
    emit("equivariance", plot.equivariance(r, onset_threshold=ONSET_THRESHOLD))
    if "invariance" in r:
        emit("invariance", plot.invariance(r))
    if "homomorphism_error" in r:
        emit("homomorphism_error", plot.homomorphism_error(r))
    if "spectrum" in r:
        fig, axes = _panels(len(layers), 5.4, 3.4)
        for ax, layer in zip(axes, layers):
            plot.irrep_spectrum(r, layer, ax=ax, onset_threshold=ONSET_THRESHOLD)
        emit("spectra", fig)
    if "subgroup_invariance" in r:
        fig, axes = _panels(len(layers), 6.0, 4.6, max_cols=2)
        for ax, layer in zip(axes, layers):
            plot.subgroup_lattice(r, layer, ax=ax, title=f"{layer}: invariance per subgroup")
        emit("subgroup_lattice", fig)
        fig, axes = _panels(len(layers), 5.4, 3.6)
        for ax, layer in zip(axes, layers):
            plot.subgroups_over_training(r, layer, ax=ax, title=layer)
        emit("subgroups_over_training", fig)
    fig, axes = _panels(len(layers), 4.4, 3.8)
    for ax, layer in zip(axes, layers):
        gl = g.sel(layer=layer)
        plot.distance_matrix(
            gl["distance"],
            ax=ax,
            title=f"{layer} (top-{int(gl['k'])} subspace)",
            label="Grassmann distance (rad)",
        )
    emit("distances", fig)
    fig, axes = _panels(len(layers), 4.4, 3.8)
    for ax, layer in zip(axes, layers):
        plot.trajectory_embedding(
            g.sel(layer=layer)["embedding"], steps=a.run.steps, ax=ax, title=f"{layer} (MDS)"
        )
    emit("trajectories", fig)
    last = layers[-1]
    # Figures that need every element of a finite group (the plan says which apply).
    applies = a.plan.figures if a.plan is not None else ("orbits", "rho")
    if "orbits" in applies:
        emit(
            "orbits",
            plot.orbits(
                _final_latents(a.run, last),
                _group(a.run),
                samples=4,
                title=f"Orbits at {last}, step {int(a.run.steps[-1])}",
            ),
        )
    Z = _final_latents(a.run, last)
    if "rho" in applies and Z.shape[-1] <= 64:  # a d×d heat map is readable only if narrow
        import probes

        rho = probes.LinearProbe(n_null=0, n_bootstrap=0).fit(Z).rho_
        emit(
            "rho",
            plot.rho_heatmaps(
                rho, _group(a.run), title=f"Fitted rho(g) at {last}, step {int(a.run.steps[-1])}"
            ),
        )
    emit(
        "summary",
        plot.summary(
            r,
            layer=last,
            metrics=a.run.metrics,
            embedding=g.sel(layer=last)["embedding"],
            title=f"{Path(str(a.run.path)).name}: {a.summary['group']}",
        ),
    )
    stored_figures(a.stored, emit)
    return written
