"""Several runs (models, seeds) lined up step by step in one Dataset."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from latentgeo.geometry import distance
from trajectories import _builders
from trajectories._trajectory import Trajectory

if TYPE_CHECKING:
    import xarray as xr

_SUMMARIES = ("subspace", "covariance", "shape")


def _name_of(item: Any, i: int) -> str:
    if isinstance(item, Trajectory) and item.name is not None:
        return item.name
    path = item if isinstance(item, (str, os.PathLike)) else getattr(item, "path", None)
    if path is not None:
        return os.path.basename(os.path.normpath(os.fspath(path)))
    return f"run{i}"


def _paired(a: Trajectory, b: Trajectory) -> tuple[np.ndarray, np.ndarray]:
    """Distances between two runs at their common steps."""
    common, ia, ib = np.intersect1d(a.steps, b.steps, return_indices=True)
    if common.size == 0:
        return common, np.empty(0)
    Pa = a.points[ia]
    Pb = b.points[ib].to(Pa.device)
    if callable(a.metric):
        d = np.array([float(a.metric(x, y, **a.metric_options)) for x, y in zip(Pa, Pb)])
    else:
        d = distance(Pa, Pb, a.metric, **a.metric_options).detach().cpu().numpy()
    return common, d


def compare(
    trajs_or_runs: Any,
    names: Any = None,
    *,
    summary: str | None = None,
    layer: str | None = None,
    **builder_kwargs: Any,
) -> xr.Dataset:
    """Line up several trajectories (or runs) step by step.

    Parameters
    ----------
    trajs_or_runs : sequence or mapping of Trajectory, Run or store path
        Trajectories, or runs to summarise with ``summary`` (a mapping gives the names).
    names : sequence of str, optional
        One name per run (default: trajectory names, store folder names, ``run0``...).
    summary : {"subspace", "covariance", "shape"}, optional
        Builder applied to runs: :func:`trajectories.subspace`, :func:`~.covariance` or
        :func:`~.shape`, with ``layer`` and ``builder_kwargs`` (e.g. ``k=8``).
    layer : str, optional
        Layer for the builder.
    **builder_kwargs
        Passed to the builder.

    Returns
    -------
    xarray.Dataset
        dims ``run``, ``step`` (union of all runs' steps; NaN where a run has no checkpoint)
        and ``run_other``:

        - ``speed (run, step)``, ``step_length (run, step)``: by segment start;
        - ``distance_to_final (run, step)``, ``distance_to_first (run, step)``;
        - ``path_length (run)``, ``end_to_end (run)``, ``tortuosity (run)``;
        - ``distance_between (run, run_other, step)``: distance between two runs' summaries
          at the same step (only when all runs share the metric and point shape; NaN at steps
          one of them lacks).
    """
    import xarray as xr

    if isinstance(trajs_or_runs, Mapping):
        if names is not None:
            raise ValueError("pass names either as mapping keys or as names=, not both")
        names = [str(k) for k in trajs_or_runs]
        items = list(trajs_or_runs.values())
    else:
        items = list(trajs_or_runs)
    if not items:
        raise ValueError("trajs_or_runs is empty; pass at least one trajectory or run")
    names = [_name_of(x, i) for i, x in enumerate(items)] if names is None else list(names)
    if len(names) != len(items):
        raise ValueError(f"names must have {len(items)} entries, got {len(names)}")
    if len(set(names)) != len(names):
        raise ValueError(f"run names must be unique, got {names!r}")

    trajs: list[Trajectory] = []
    for item in items:
        if isinstance(item, Trajectory):
            trajs.append(item)
            continue
        if summary not in _SUMMARIES:
            raise ValueError(
                f"to compare runs, summary must be one of {_SUMMARIES!r}, got {summary!r}"
            )
        if layer is None:
            raise ValueError("to compare runs, pass the layer to summarise")
        trajs.append(getattr(_builders, summary)(item, layer, **builder_kwargs))

    def stack(arrays: list[Any], name: str) -> Any:
        arrays = [a.drop_vars([c for c in a.coords if c != "step"]) for a in arrays]
        out = xr.concat(arrays, dim="run", join="outer", coords="minimal", compat="override")
        return out.assign_coords(run=names).rename(name)

    data = {
        "speed": stack([t.speed() for t in trajs], "speed"),
        "step_length": stack([t.step_lengths() for t in trajs], "step_length"),
        "distance_to_final": stack([t.distance_to("final") for t in trajs], "distance_to_final"),
        "distance_to_first": stack([t.distance_to("first") for t in trajs], "distance_to_first"),
        "path_length": xr.DataArray([t.path_length() for t in trajs], dims="run"),
        "end_to_end": xr.DataArray([t.end_to_end() for t in trajs], dims="run"),
        "tortuosity": xr.DataArray([t.tortuosity() for t in trajs], dims="run"),
    }
    all_steps = np.unique(np.concatenate([t.steps for t in trajs]))
    metrics = {t.metric if isinstance(t.metric, str) else id(t.metric) for t in trajs}
    shapes = {tuple(t.points.shape[1:]) for t in trajs}
    options = {tuple(sorted(t.metric_options.items())) for t in trajs}
    comparable = len(metrics) == 1 and len(shapes) == 1 and len(options) == 1
    attrs: dict[str, Any] = {"metric": str(trajs[0].metric) if len(metrics) == 1 else "mixed"}
    if comparable:
        n = len(trajs)
        between = np.full((n, n, all_steps.size), np.nan)
        for i in range(n):
            for j in range(i, n):
                common, d = (
                    (trajs[i].steps, np.zeros(len(trajs[i])))
                    if i == j
                    else _paired(trajs[i], trajs[j])
                )
                pos = np.searchsorted(all_steps, common)
                between[i, j, pos] = d
                between[j, i, pos] = d
        data["distance_between"] = xr.DataArray(
            between, dims=("run", "run_other", "step"), coords={"step": all_steps}
        )
    else:
        attrs["distance_between"] = (
            "omitted: the runs differ in metric, metric options or point shape"
        )
    ds = xr.Dataset(data, coords={"run": names, "run_other": names, "step": all_steps})
    ds.attrs.update(attrs)
    return ds


__all__ = ["compare"]
