"""Figures of latent geometry: trajectory embeddings, distance matrices, orbits, rho(g)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from latentgeo.plot._style import (
    DIVERGING_CMAP,
    SEQUENTIAL_CMAP,
    as_numpy,
    colors,
    figure_and_axes,
    is_log_spaced,
    new_figure,
)

if TYPE_CHECKING:
    from latentgeo.groups import FiniteGroup, Group

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure


def _steps_of(obj: Any, steps: Any, n: int) -> np.ndarray:
    """Steps given explicitly, else taken from a DataArray's ``step`` coordinate."""
    if steps is None and hasattr(obj, "coords") and "step" in obj.coords:
        steps = obj.coords["step"].values
    if steps is None:
        return np.arange(n, dtype=np.float64)
    s = as_numpy(steps, "steps").reshape(-1)
    if s.size != n:
        raise ValueError(f"steps has {s.size} entries but there are {n} checkpoints")
    return s


def _step_norm(steps: np.ndarray) -> Any:
    from matplotlib.colors import LogNorm, Normalize, SymLogNorm

    if is_log_spaced(steps):
        if np.all(steps > 0):
            return LogNorm(vmin=steps.min(), vmax=steps.max())
        # Step 0 present: linear below 1, logarithmic above, like the symlog step axes.
        return SymLogNorm(linthresh=1.0, linscale=0.3, vmin=steps.min(), vmax=steps.max())
    return Normalize(vmin=steps.min(), vmax=max(steps.max(), steps.min() + 1e-12))


def trajectory_embedding(
    emb: Any,
    steps: Any = None,
    ax: Axes | None = None,
    label: str | None = None,
    title: str | None = None,
    colorbar: bool = True,
) -> Figure:
    """A training trajectory embedded in 2-D, points coloured by training step.

    Parameters
    ----------
    emb : array of shape (n_steps, 2)
        2-D coordinates of the checkpoints (e.g. ``Trajectory.embed()``); a DataArray with a
        ``step`` coordinate supplies ``steps``.
    steps : array of shape (n_steps,), optional
        Training steps (colour); default the ``step`` coordinate of ``emb`` or 0..n-1.
    ax : matplotlib Axes, optional
    label : str, optional
        Name of the run, written next to its last checkpoint (useful to overlay runs).
    title : str, optional
    colorbar : bool, default True

    Returns
    -------
    matplotlib.figure.Figure
    """
    xy = as_numpy(emb, "emb")
    if xy.ndim != 2 or xy.shape[1] < 2:
        raise ValueError(f"emb must have shape (n_steps, 2), got shape {xy.shape!r}")
    xy = xy[:, :2]
    s = _steps_of(emb, steps, xy.shape[0])
    fig, ax = figure_and_axes(ax, (5.2, 4.4))
    norm = _step_norm(s)
    ax.plot(xy[:, 0], xy[:, 1], color="0.6", linewidth=1, zorder=1)
    sc = ax.scatter(
        xy[:, 0], xy[:, 1], c=s, cmap=SEQUENTIAL_CMAP, norm=norm, s=28, zorder=2, edgecolor="k"
    )
    ax.scatter(xy[0, 0], xy[0, 1], marker="^", s=90, facecolor="none", edgecolor="k", zorder=3)
    ax.scatter(xy[-1, 0], xy[-1, 1], marker="s", s=90, facecolor="none", edgecolor="k", zorder=3)
    ax.annotate("start", xy[0], textcoords="offset points", xytext=(6, 6), fontsize="small")
    ax.annotate(
        label or "end", xy[-1], textcoords="offset points", xytext=(6, -10), fontsize="small"
    )
    if colorbar:
        fig.colorbar(sc, ax=ax, label="training step")
    ax.set_xlabel("component 1")
    ax.set_ylabel("component 2")
    ax.set_aspect("equal", adjustable="datalim")
    ax.set_title(title or "Trajectory over training (2-D embedding)")
    return fig


def distance_matrix(
    D: Any,
    steps: Any = None,
    ax: Axes | None = None,
    title: str | None = None,
    label: str = "distance",
) -> Figure:
    """Pairwise distances between checkpoints as a heat map.

    Parameters
    ----------
    D : array of shape (n_steps, n_steps)
        Symmetric distance matrix (e.g. ``Trajectory.distance_matrix()``, whose ``step``
        coordinate labels the axes).
    steps : array of shape (n_steps,), optional
    ax : matplotlib Axes, optional
    title : str, optional
    label : str, default "distance"
        Colour-bar label (name the metric, e.g. "Grassmann distance (rad)").

    Returns
    -------
    matplotlib.figure.Figure
    """
    M = as_numpy(D, "D")
    if M.ndim != 2 or M.shape[0] != M.shape[1]:
        raise ValueError(f"D must be a square matrix, got shape {M.shape!r}")
    s = _steps_of(D, steps, M.shape[0])
    fig, ax = figure_and_axes(ax, (5.0, 4.4))
    im = ax.imshow(M, cmap=SEQUENTIAL_CMAP, origin="upper", interpolation="nearest")
    fig.colorbar(im, ax=ax, label=label)
    n = M.shape[0]
    ticks = np.unique(np.linspace(0, n - 1, min(n, 6)).round().astype(int))
    tick_labels = [f"{s[i]:g}" for i in ticks]
    ax.set_xticks(ticks, tick_labels, rotation=45, ha="right")
    ax.set_yticks(ticks, tick_labels)
    ax.set_xlabel("training step")
    ax.set_ylabel("training step")
    ax.set_title(title or "Distances between checkpoints")
    return fig


def _finite(group: Group, who: str) -> FiniteGroup:
    """``group`` if it is a finite group with a Cayley table (what the figure draws)."""
    from latentgeo.groups import FiniteGroup

    if not isinstance(group, FiniteGroup):
        raise TypeError(f"{who} draws a finite group's whole orbit; got {group!r}")
    return group


def _element_index(group: Group, g: Any) -> int:
    if isinstance(g, str):
        return list(group.elements).index(g)
    return int(g)


def orbits(
    Z: Any,
    group: Group,
    samples: int | Sequence[int] = 4,
    ax: Axes | None = None,
    title: str | None = None,
    annotate: bool = True,
) -> Figure:
    """Orbits ``g ↦ z(g·x)`` of a few samples in a 2-D PCA projection of the latents.

    Points of one sample share a colour; edges join ``z(g·x)`` to ``z(r∘g·x)`` for the first
    generator ``r`` of the group (for C_n each orbit is drawn as an n-gon, an exactly
    equivariant layer with a rotation-like rho shows regular polygons), and a star marks the
    untransformed sample.

    Parameters
    ----------
    Z : array of shape (n_elements, n_samples, n_units)
        Latents of the orbit, element axis in the group's element order (identity first).
    group : FiniteGroup
        The group (``order``, ``elements``, ``cayley_table``, ``generators``).
    samples : int or sequence of int, default 4
        How many samples (the first ones), or which sample indices.
    ax : matplotlib Axes, optional
    title : str, optional
    annotate : bool, default True
        Write element names next to the first sample's orbit.

    Returns
    -------
    matplotlib.figure.Figure
    """
    A = as_numpy(Z, "Z")
    if A.ndim == 2:
        A = A[..., None]
    if A.ndim != 3:
        raise ValueError(f"Z must have shape (n_elements, n_samples, n_units), got {A.shape!r}")
    group = _finite(group, "orbits")
    order = group.order
    if A.shape[0] != order:
        raise ValueError(
            f"Z has {A.shape[0]} elements along axis 0 but the group {group!r} has order {order}"
        )
    n = A.shape[1]
    idx = list(range(min(samples, n))) if isinstance(samples, int | np.integer) else list(samples)
    bad = [i for i in idx if not 0 <= int(i) < n]
    if bad or not idx:
        raise ValueError(f"samples {samples!r} must select indices in [0, {n}) (got {bad!r})")
    pts = A[:, idx, :]  # (order, k, d)
    flat = pts.reshape(-1, pts.shape[-1])
    flat = flat - flat.mean(0)
    if flat.shape[1] >= 2:
        _, _, vt = np.linalg.svd(flat, full_matrices=False)
        proj = flat @ vt[:2].T
    else:
        proj = np.concatenate([flat, np.zeros_like(flat)], axis=1)
    proj = proj.reshape(order, len(idx), 2)
    table = np.asarray(group.cayley_table)
    gens = list(getattr(group, "generators", ()) or ())
    r = _element_index(group, gens[0]) if gens else None
    fig, ax = figure_and_axes(ax, (5.0, 4.6))
    for color, j in zip(colors(len(idx)), range(len(idx))):
        p = proj[:, j]
        if r is not None:
            for g in range(order):
                h = int(table[r, g])
                ax.plot(*np.stack([p[g], p[h]]).T, color=color, linewidth=1, alpha=0.7)
        ax.scatter(p[:, 0], p[:, 1], color=color, s=22, zorder=2, label=f"sample {idx[j]}")
        ax.scatter(p[0, 0], p[0, 1], marker="*", s=160, color=color, edgecolor="k", zorder=3)
        if annotate and j == 0:
            for g, name in enumerate(group.elements):
                ax.annotate(
                    str(name), p[g], textcoords="offset points", xytext=(4, 4), fontsize="x-small"
                )
    ax.set_xlabel("PC 1")
    ax.set_ylabel("PC 2")
    ax.set_aspect("equal", adjustable="datalim")
    ax.legend(fontsize="x-small", loc="best")
    ax.set_title(title or f"Orbits under {getattr(group, 'spec', group)} (★ = identity)")
    return fig


def rho_heatmaps(
    rho: Any,
    group: Group,
    elements: Sequence[int | str] | None = None,
    max_units: int | None = 32,
    title: str | None = None,
) -> Figure:
    """Heat maps of the fitted linear maps ``rho(g)``, one panel per group element.

    Parameters
    ----------
    rho : array of shape (n_elements, n_units, n_units)
        Fitted maps (``probes.LinearProbe().fit(Z).rho_`` or the ``rho`` variable of the
        probe results at one layer and step).
    group : FiniteGroup
    elements : sequence of int or str, optional
        Which elements to show (default: all, up to 12).
    max_units : int or None, default 32
        Show only the top-left ``max_units × max_units`` block (None: all units).
    title : str, optional

    Returns
    -------
    matplotlib.figure.Figure
    """
    R = as_numpy(rho, "rho")
    group = _finite(group, "rho_heatmaps")
    order = group.order
    if R.ndim != 3 or R.shape[0] != order or R.shape[1] != R.shape[2]:
        raise ValueError(
            f"rho must have shape (order={order}, n_units, n_units), got shape {R.shape!r}"
        )
    if elements is None:
        chosen = list(range(min(order, 12)))
    else:
        chosen = [_element_index(group, g) for g in elements]
        bad = [g for g in chosen if not 0 <= g < order]
        if bad:
            raise ValueError(f"elements {elements!r} out of range for a group of order {order}")
    if max_units is not None:
        R = R[:, :max_units, :max_units]
    ncol = min(len(chosen), 4)
    nrow = int(np.ceil(len(chosen) / ncol))
    fig = new_figure((2.3 * ncol + 0.8, 2.3 * nrow + 0.4))
    axes = fig.subplots(nrow, ncol, squeeze=False)
    vmax = float(np.nanmax(np.abs(R[chosen]))) or 1.0
    im = None
    for k, ax in enumerate(axes.ravel()):
        if k >= len(chosen):
            ax.set_axis_off()
            continue
        g = chosen[k]
        im = ax.imshow(R[g], cmap=DIVERGING_CMAP, vmin=-vmax, vmax=vmax, interpolation="nearest")
        ax.set_title(f"rho({group.elements[g]})", fontsize="small")
        ax.set_xticks([])
        ax.set_yticks([])
    if im is not None:
        fig.colorbar(im, ax=axes, shrink=0.8, label="coefficient")
    fig.suptitle(title or "Fitted linear maps rho(g)")
    return fig
