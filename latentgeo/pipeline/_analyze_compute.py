"""``analyze``, step 1 of 3 — compute: probes, geometry, onsets and the summary of a run store.

The probes (``probes.run``) and the geometry of each layer's principal subspace over
training (``trajectories.subspace``) are cached in the store (``analysis/probes``,
``analysis/geometry``), so a second ``analyze`` (or a notebook) reuses them.  Nothing here
draws or writes files (see ``_analyze_render`` and ``_analyze_report``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from latentgeo.pipeline._analyze_plan import (
    SUBGROUP_SCAN_MAX_ORDER,
    AnalysisPlan,
    has_proper_subgroups,
    plan_analysis,
)
from latentgeo.pipeline._analyze_stored import load_stored, stored_summary
from latentgeo.pipeline._errors import PipelineError
from latentgeo.pipeline._store import check_device, check_layers

if TYPE_CHECKING:  # pragma: no cover
    import xarray as xr

    from latentgeo.store import Run

__all__ = [
    "GEOMETRY_METRIC",
    "ONSET_THRESHOLD",
    "SUBGROUP_SCAN_MAX_ORDER",
    "SUBSPACE_K",
    "Analysis",
    "analyze_run",
    "compute_geometry",
    "geometry_cache_key",
    "has_proper_subgroups",
    "onsets",
    "summarise",
]

#: Held-out R² level that defines the onset of equivariance.
ONSET_THRESHOLD = 0.9
#: Top-k principal subspace followed over training (capped by the layer width).
SUBSPACE_K = 8
#: What ``analysis/geometry`` measures.
GEOMETRY_METRIC = "grassmann (arc length, radians) between top-k principal subspaces"


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
    stored : dict
        {name: dataset} of the analyses over training the store holds
        (``analysis/attribution``, ``analysis/irrep_ablation``,
        ``analysis/symmetry_discovery``; see ``_analyze_stored``).
    summary : dict
        JSON-serialisable summary (see :func:`analyze`).
    plan : AnalysisPlan
        What applies to the store's kind (probes, figures) and why the rest is omitted.
    """

    run: Run
    layers: list[str]
    results: xr.Dataset
    geometry: xr.Dataset
    onsets: dict[str, int | None]
    stored: dict[str, xr.Dataset] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)
    plan: AnalysisPlan | None = None


def _float(x: Any) -> float | None:
    v = float(np.asarray(x))
    return None if math.isnan(v) else v


def _subspace_k(run: Run, layer: str) -> int:
    da = run.latents(layer)
    d = int(da.sizes["unit"])
    n = int(da.sizes["sample"])
    return max(1, min(SUBSPACE_K, d // 2, n - 1))


def geometry_cache_key() -> str:
    """Hash of everything that changes a geometry result besides the latents themselves.

    The subspace size rule (:data:`SUBSPACE_K`), the metric and the package version; the
    layers and steps are checked against the cached coordinates.
    """
    import hashlib

    import latentgeo

    payload = json.dumps(
        {"k": SUBSPACE_K, "metric": GEOMETRY_METRIC, "version": latentgeo.__version__},
        sort_keys=True,
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def compute_geometry(run: Run, layers: list[str], device: str, progress: bool) -> xr.Dataset:
    """Subspace trajectories per layer (cached in the store as ``analysis/geometry``)."""
    import xarray as xr

    import trajectories

    steps = np.asarray(run.steps)
    key = geometry_cache_key()
    cached = run.load_analysis("geometry")
    if (
        cached is not None
        and cached.attrs.get("cache_key") == key
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
    ds.attrs["metric"] = GEOMETRY_METRIC
    ds.attrs["cache_key"] = key
    try:
        run.save_analysis("geometry", ds)
    except Exception as err:
        import warnings

        warnings.warn(f"could not cache geometry in the store: {err}", stacklevel=2)
    return ds


def onsets(results: xr.Dataset, layers: list[str]) -> dict[str, int | None]:
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

    Raises
    ------
    PipelineError
        For a store without a committed checkpoint or without a group.
    """
    import probes

    device = check_device(device)
    layers = check_layers(run, layers)
    if len(run.steps) == 0:
        raise PipelineError(f"the store {str(run.path)!r} has no committed checkpoint yet")
    plan = plan_analysis(run)
    results = probes.run(
        run,
        layers=layers,
        probes=list(plan.probes),
        device=device,
        progress=progress,
        cache=True,
        subgroup=plan.subgroup,
    )
    results = results.sel(layer=layers).load()
    geometry = compute_geometry(run, layers, device, progress)
    found = onsets(results, layers)
    analysis = Analysis(run, layers, results, geometry, found, stored=load_stored(run), plan=plan)
    analysis.summary = summarise(analysis)
    return analysis


def summarise(a: Analysis) -> dict[str, Any]:
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
        if "subgroup_invariance" in r:
            import probes

            entry["subgroups"] = {
                key: probes.respected_subgroups(r, layer, metric=metric, threshold=ONSET_THRESHOLD)
                for key, metric in (("invariant", "invariance"), ("equivariant", "r2"))
            }
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
    plan = a.plan if a.plan is not None else plan_analysis(a.run)
    return {
        "store": str(a.run.path),
        "group": getattr(a.run.group, "spec", str(a.run.group)),
        "store_kind": plan.store_kind,
        "spectrum_group": plan.subgroup_name,
        "omitted": dict(plan.omitted),
        "steps": [int(s) for s in a.run.steps],
        "layers": layers,
        "final_metrics": metrics,
        "onset_threshold": ONSET_THRESHOLD,
        **stored_summary(a.stored),
    }
