"""``analyze``: probes + geometry + figures + report for any run store.

The probes (``probes.run``) and the geometry of each layer's principal subspace over
training (``trajectories.subspace``) are cached in the store (``analysis/probes``,
``analysis/geometry``), so a second ``analyze`` (or a notebook) reuses them.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from latentgeo.pipeline._errors import PipelineError, UsageError
from latentgeo.pipeline._store import check_device, check_layers, open_store

if TYPE_CHECKING:  # pragma: no cover
    import xarray as xr

    from latentgeo.store import Run

__all__ = ["Analysis", "analyze", "analyze_run", "format_summary", "write_figures"]

#: Held-out R² level that defines the onset of equivariance.
ONSET_THRESHOLD = 0.9
#: Top-k principal subspace followed over training (capped by the layer width).
SUBSPACE_K = 8


@dataclass
class Analysis:
    """Everything computed for one run store.

    Attributes
    ----------
    run : latentgeo.store.Run
    layers : list of str
    results : xarray.Dataset
        Probe results (``probes.run``).
    geometry : xarray.Dataset
        Per layer: ``distance (layer, step, step_other)`` Grassmann distances between the
        top-k principal subspaces, ``speed (layer, step)``, ``embedding (layer, step,
        component)`` (classical MDS), with ``path_length``/``tortuosity (layer)``.
    onsets : dict
        {layer: onset step of equivariance or None}.
    summary : dict
        JSON-serialisable summary (see :func:`analyze`).
    """

    run: Run
    layers: list[str]
    results: xr.Dataset
    geometry: xr.Dataset
    onsets: dict[str, int | None]
    summary: dict[str, Any] = field(default_factory=dict)


def _float(x: Any) -> float | None:
    v = float(np.asarray(x))
    return None if math.isnan(v) else v


def _subspace_k(run: Run, layer: str) -> int:
    da = run.latents(layer)
    d = int(da.sizes["unit"])
    n = int(da.sizes["sample"])
    return max(1, min(SUBSPACE_K, d // 2, n - 1))


def _geometry(run: Run, layers: list[str], device: str, progress: bool) -> xr.Dataset:
    """Subspace trajectories per layer (cached in the store as ``analysis/geometry``)."""
    import xarray as xr

    import trajectories

    steps = np.asarray(run.steps)
    cached = run.load_analysis("geometry")
    if (
        cached is not None
        and set(layers) <= {str(v) for v in cached["layer"].values}
        and np.array_equal(np.asarray(cached["step"].values), steps)
    ):
        return cached.sel(layer=layers).load()
    from latentgeo._progress import progress_bar

    per_layer = []
    for layer in progress_bar(
        layers, desc="geometry", unit="layer", disable=not progress, leave=False
    ):
        k = _subspace_k(run, layer)
        traj = trajectories.subspace(run, layer, k, device=device)
        D = np.asarray(traj.distance_matrix().values, dtype=np.float64)
        speed = np.asarray(traj.speed().values, dtype=np.float64)
        if speed.shape[0] == len(steps) - 1:  # indexed by segment start: none after the last
            speed = np.concatenate([speed, [np.nan]])
        if len(steps) >= 3:
            emb = np.asarray(getattr(traj.embed(), "values", traj.embed()), dtype=np.float64)
        else:  # MDS needs at least 3 points to be informative
            emb = np.zeros((len(steps), 2))
        per_layer.append(
            xr.Dataset(
                {
                    "distance": (("step", "step_other"), D),
                    "speed": (("step",), speed),
                    "embedding": (("step", "component"), emb[:, :2]),
                    "path_length": ((), float(traj.path_length())),
                    "tortuosity": ((), float(traj.tortuosity())),
                    "k": ((), k),
                },
                coords={"step": steps, "step_other": steps, "component": [0, 1]},
            )
        )
    ds = xr.concat(per_layer, dim=xr.DataArray(layers, dims="layer", name="layer"))
    ds.attrs["metric"] = "grassmann (arc length, radians) between top-k principal subspaces"
    try:
        run.save_analysis("geometry", ds)
    except Exception as err:
        import warnings

        warnings.warn(f"could not cache geometry in the store: {err}", stacklevel=2)
    return ds


def _onsets(results: xr.Dataset, layers: list[str]) -> dict[str, int | None]:
    import trajectories
    from latentgeo.plot import mean_r2

    r2 = mean_r2(results)
    out: dict[str, int | None] = {}
    for layer in layers:
        series = r2.sel(layer=layer)
        onset = trajectories.onset(series, ONSET_THRESHOLD, direction="above")
        out[layer] = None if onset is None or _float(onset) is None else int(onset)
    return out


def analyze_run(
    run: Run,
    layers: Sequence[str] | None = None,
    device: str = "cpu",
    progress: bool = True,
) -> Analysis:
    """Probe a run and follow its geometry, without writing figures.

    Parameters
    ----------
    run : latentgeo.store.Run
    layers : sequence of str, optional
    device : str, default "cpu"
    progress : bool, default True

    Returns
    -------
    Analysis
    """
    import probes

    device = check_device(device)
    layers = check_layers(run, layers)
    if len(run.steps) == 0:
        raise PipelineError(f"the store {str(run.path)!r} has no committed checkpoint yet")
    results = probes.run(run, layers=layers, device=device, progress=progress, cache=True)
    results = results.sel(layer=layers).load()
    geometry = _geometry(run, layers, device, progress)
    onsets = _onsets(results, layers)
    analysis = Analysis(run, layers, results, geometry, onsets)
    analysis.summary = _summarise(analysis)
    return analysis


def _summarise(a: Analysis) -> dict[str, Any]:
    from latentgeo.plot import mean_r2

    r = a.results
    final = r.isel(step=-1)
    r2 = mean_r2(r).isel(step=-1)
    layers: dict[str, Any] = {}
    for layer in a.layers:
        entry: dict[str, Any] = {"r2": _float(r2.sel(layer=layer)), "onset_step": a.onsets[layer]}
        if "null_r2" in r:
            entry["null_r2"] = _float(mean_r2(r, "null_r2").isel(step=-1).sel(layer=layer))
        if "r2_low" in r and "r2_high" in r:
            entry["r2_interval"] = [
                _float(mean_r2(r, "r2_low").isel(step=-1).sel(layer=layer)),
                _float(mean_r2(r, "r2_high").isel(step=-1).sel(layer=layer)),
            ]
        if "invariance" in r:
            entry["invariance"] = _float(final["invariance"].sel(layer=layer))
        if "homomorphism_error" in r:
            entry["homomorphism_error"] = _float(final["homomorphism_error"].sel(layer=layer))
        if "spectrum" in r:
            spec = final["spectrum"].sel(layer=layer)
            entry["spectrum"] = {str(k): _float(v) for k, v in zip(r["irrep"].values, spec.values)}
        g = a.geometry.sel(layer=layer)
        entry["path_length"] = _float(g["path_length"])
        entry["tortuosity"] = _float(g["tortuosity"])
        layers[layer] = entry
    metrics: dict[str, Any] = {}
    m = a.run.metrics
    for name in m.data_vars:
        if m[name].dims == ("step",) and m.sizes.get("step", 0) > 0:
            metrics[str(name)] = _float(m[name].isel(step=-1))
    return {
        "store": str(a.run.path),
        "group": getattr(a.run.group, "spec", str(a.run.group)),
        "steps": [int(s) for s in a.run.steps],
        "layers": layers,
        "final_metrics": metrics,
        "onset_threshold": ONSET_THRESHOLD,
    }


def _final_latents(run: Run, layer: str) -> np.ndarray:
    return np.asarray(run.latents(layer).isel(step=-1).values, dtype=np.float64)


def _check_formats(formats: Sequence[str]) -> list[str]:
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
    trajectories, orbits and fitted rho(g) (when at most 64 units) at the last layer, and the
    one-page summary.

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
    formats = _check_formats(formats)
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
    emit(
        "orbits",
        plot.orbits(
            _final_latents(a.run, last),
            a.run.group,
            samples=4,
            title=f"Orbits at {last}, step {int(a.run.steps[-1])}",
        ),
    )
    Z = _final_latents(a.run, last)
    if Z.shape[-1] <= 64:  # a d×d heat map is readable only for narrow layers
        import probes

        rho = probes.LinearProbe(n_null=0, n_bootstrap=0).fit(Z).rho_
        emit(
            "rho",
            plot.rho_heatmaps(
                rho, a.run.group, title=f"Fitted rho(g) at {last}, step {int(a.run.steps[-1])}"
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
    return written


def _report_sections(a: Analysis, figures: dict[str, Path]) -> list[Any]:
    from latentgeo._report import Section

    rows = []
    for layer, e in a.summary["layers"].items():
        rows.append(
            {
                "layer": layer,
                "R² (held-out)": e["r2"],
                "null R²": e.get("null_r2"),
                "invariance": e.get("invariance"),
                "hom. error": e.get("homomorphism_error"),
                "onset step": e["onset_step"],
                "path length (rad)": e["path_length"],
            }
        )

    def figs(*names: str) -> list[tuple[str, Path]]:
        return [(n.replace("_", " "), figures[n]) for n in names if n in figures]

    sections = [
        Section(
            "Final checkpoint",
            text=(
                "Held-out R² of the linear equivariance probe (mean over non-identity group "
                "elements), its null level (re-paired samples), invariance, homomorphism "
                f"error, and the onset step (first step from which R² stays ≥ "
                f"{ONSET_THRESHOLD})."
            ),
            table=rows,
        ),
        Section("One-page summary", figures=figs("summary"), columns=1),
        Section(
            "Equivariance and invariance over training",
            figures=figs("equivariance", "invariance", "homomorphism_error"),
        ),
        Section("Irrep spectra", figures=figs("spectra"), columns=1),
        Section(
            "Geometry: principal subspaces over training",
            text=(
                "Grassmann distances (arc length, radians) between the top-k principal "
                "subspaces of the checkpoints, and the trajectory embedded by classical MDS."
            ),
            figures=figs("distances", "trajectories"),
            columns=1,
        ),
        Section("Orbits and fitted maps", figures=figs("orbits", "rho"), columns=2),
    ]
    return [s for s in sections if s.figures or s.table]


def analyze(
    store: str | os.PathLike[str],
    out: str | os.PathLike[str],
    device: str = "cpu",
    layers: Sequence[str] | None = None,
    progress: bool = True,
    formats: Sequence[str] = ("png",),
) -> dict[str, Any]:
    """Probes, geometry, figures and an HTML report for one run store.

    Parameters
    ----------
    store : str or os.PathLike
        Path or URL of a run store written by :class:`latentgeo.LatentRecorder`.
    out : str or os.PathLike
        Output folder: ``figures/<name>.<format>``, ``summary.json``, ``report.html``.
    device : str, default "cpu"
        Torch device for the probes.
    layers : sequence of str, optional
        Layers to analyse (default: all).
    progress : bool, default True
        Show progress bars.
    formats : sequence of {"png", "pdf", "svg"}, default ("png",)
        Formats of the figure files (PNG always: the report embeds it).

    Returns
    -------
    dict
        The content of ``summary.json``: ``store``, ``group``, ``steps``, per layer
        ``r2`` (final held-out, mean over non-identity elements), ``null_r2``,
        ``r2_interval``, ``invariance``, ``homomorphism_error``, ``spectrum``,
        ``onset_step``, ``path_length``, ``tortuosity``; ``final_metrics``, ``figures``,
        ``report``, ``wall_time``.

    Examples
    --------
    >>> from latentgeo.pipeline import analyze
    >>> summary = analyze("runs/cnn.zarr", "runs/cnn_analysis")  # doctest: +SKIP
    >>> summary["layers"]["fc"]["r2"]  # doctest: +SKIP
    """
    from latentgeo._report import write_report

    t0 = time.perf_counter()
    formats = _check_formats(formats)
    run = open_store(store)
    a = analyze_run(run, layers=layers, device=device, progress=progress)
    out = Path(out)
    figures = write_figures(a, out / "figures", formats=formats)
    report = write_report(
        out / "report.html",
        f"latentgeo analysis of {Path(str(run.path)).name}",
        _report_sections(a, figures),
        subtitle=f"store {run.path} · group {a.summary['group']} · {len(run.steps)} checkpoints",
    )
    summary = dict(a.summary)
    summary["figures"] = {k: str(v) for k, v in figures.items()}
    summary["report"] = str(report)
    summary["wall_time"] = time.perf_counter() - t0
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def format_summary(summary: dict[str, Any]) -> str:
    """Short text of an :func:`analyze` summary: R², invariance, onset per layer."""
    lines = [
        f"analysed {summary['store']} (group {summary['group']}, "
        f"{len(summary['steps'])} checkpoints) in {summary.get('wall_time', 0):.1f} s",
        f"{'layer':<16}{'R²':>8}{'null':>8}{'invar.':>8}{'onset':>8}",
    ]
    for layer, e in summary["layers"].items():
        lines.append(
            f"{layer:<16}{_fmt(e['r2']):>8}{_fmt(e.get('null_r2')):>8}"
            f"{_fmt(e.get('invariance')):>8}{_fmt(e['onset_step'], '{}'):>8}"
        )
    if "report" in summary:
        lines.append(f"report:  {summary['report']}")
        lines.append(f"summary: {Path(summary['report']).with_name('summary.json')}")
    return "\n".join(lines)


def _fmt(v: Any, spec: str = "{:.3f}") -> str:
    return "–" if v is None else spec.format(v)
