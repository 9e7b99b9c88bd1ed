"""Attribution, irrep ablation and symmetry discovery over training, from saved checkpoints.

Checkpoints are found, ordered and loaded by :func:`latentgeo.checkpoints.iter_checkpoints`,
the walk :func:`latentgeo.record_checkpoints` records by (steps from content or names,
``torch.load(weights_only=True)``, Lightning / Hugging Face layouts, a common key prefix
stripped).  Each step's weights are loaded into the
model, the analysis runs through the protected model-call path, and the model's own weights
are put back at the end (also on error).  The results, one ``step`` coordinate more, go to a
run store's analysis cache (:meth:`latentgeo.store.Run.save_analysis`) when ``run`` is given.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from latentgeo.checkpoints import iter_checkpoints

__all__ = [
    "ablation_over_training",
    "attribution_over_training",
    "discovery_over_training",
    "stack_steps",
]

logger = logging.getLogger("latentgeo.probes")


def _over(
    model: torch.nn.Module,
    checkpoints: Any,
    steps: Any,
    map_location: Any,
    one: Callable[[], Any],
    run: Any,
    name: str,
) -> Any:
    results, seen = [], []
    walk = iter_checkpoints(model, checkpoints, steps, map_location)
    with contextlib.closing(walk):  # the model's own weights back at once, also on error
        for ckpt in walk:
            logger.info("analysing step %d from checkpoint %s", ckpt.step, ckpt.source)
            results.append(one())
            seen.append(ckpt.step)
    if not results:
        raise ValueError(f"no checkpoint found in {checkpoints!r}")
    ds = stack_steps(results, seen)
    if run is not None:
        _save(run, name, ds)
    return ds


def stack_steps(results: Sequence[Any], steps: Sequence[int], previous: Any = None) -> Any:
    """Results of one analysis at successive training steps, stacked along ``step``.

    The layout the ``*_over_training`` functions return and cache in a run store, and the
    training callbacks' ``analyses=`` write (:class:`latentgeo.callbacks.LightningRecorder`).

    Parameters
    ----------
    results : sequence of xarray.Dataset
        One result per step, of one analysis (same variables and coordinates).
    steps : sequence of int
        Their training steps, strictly increasing.
    previous : xarray.Dataset, optional
        An earlier stacked result (the store's cached one when a run resumes): its steps
        before the first of ``steps`` are kept in front; later ones are replaced.

    Returns
    -------
    xarray.Dataset
        The results' variables with a leading ``step`` dimension (int64 coordinate).

    Raises
    ------
    TypeError
        A result that is not an ``xarray.Dataset``, a step that is not an integer.
    ValueError
        No result, lengths that differ, steps not strictly increasing.
    """
    import xarray as xr

    from latentgeo._validate import check_int

    results = list(results)
    if not results:
        raise ValueError("results is empty: there is no step to stack")
    for r in results:
        if not isinstance(r, xr.Dataset):
            raise TypeError(f"each result must be an xarray.Dataset, got {type(r).__name__}")
    seen = [check_int(s, "step", minimum=0) for s in steps]
    if len(seen) != len(results):
        raise ValueError(f"{len(results)} results but {len(seen)} steps")
    if any(b <= a for a, b in itertools.pairwise(seen)):
        raise ValueError(f"steps must be strictly increasing, got {seen}")
    ds = xr.concat(results, dim="step", data_vars="all", coords="minimal", compat="override")
    ds = ds.assign_coords(step=np.asarray(seen, dtype=np.int64))
    if previous is not None:
        if not isinstance(previous, xr.Dataset) or "step" not in previous.dims:
            raise TypeError("previous must be an xarray.Dataset with a 'step' dimension")
        kept = previous.sel(step=previous["step"].values < seen[0])
        if kept.sizes["step"]:
            ds = xr.concat(
                [kept, ds], dim="step", data_vars="all", coords="minimal", compat="override"
            )
    return ds


def _save(run: Any, name: str, ds: Any) -> None:
    from latentgeo.store import Run, open_run

    if not isinstance(run, Run):
        run = open_run(run)
    run.save_analysis(name, ds)


def attribution_over_training(
    model: torch.nn.Module,
    checkpoints: Any,
    action: Any,
    inputs: torch.Tensor,
    layers: Any,
    *,
    steps: Sequence[int] | None = None,
    map_location: Any = "cpu",
    run: Any = None,
    name: str = "attribution",
    **kwargs: Any,
) -> Any:
    """:func:`probes.equivariance_attribution` at every checkpoint.

    Parameters
    ----------
    model : torch.nn.Module
        The architecture the checkpoints were saved from; its weights are restored at the end.
    checkpoints, steps, map_location :
        As :func:`latentgeo.record_checkpoints` (a folder, files, state dicts, ``{step: …}``).
    action, inputs, layers, **kwargs :
        As :func:`probes.equivariance_attribution`.
    run : latentgeo.store.Run or str, optional
        A run store: the result is cached as ``analysis/<name>``.
    name : str

    Returns
    -------
    xarray.Dataset
        The attribution's variables with a leading ``step`` dimension.
    """
    from probes._attribution import equivariance_attribution

    def one() -> Any:
        return equivariance_attribution(model, action, inputs, layers, **kwargs)

    return _over(model, checkpoints, steps, map_location, one, run, name)


def ablation_over_training(
    model: torch.nn.Module,
    checkpoints: Any,
    layer: str,
    action: Any,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], Any],
    *,
    steps: Sequence[int] | None = None,
    map_location: Any = "cpu",
    run: Any = None,
    name: str = "irrep_ablation",
    **kwargs: Any,
) -> Any:
    """:func:`probes.irrep_ablation` at every checkpoint (see
    :func:`attribution_over_training` for the checkpoint arguments).

    Returns
    -------
    xarray.Dataset
        ``restricted_loss``, ``excluded_loss``, ``energy`` (step, irrep), the set losses
        (step, set), ``loss`` and ``trivial_loss`` (step).
    """
    from probes._ablation import irrep_ablation

    def one() -> Any:
        return irrep_ablation(model, layer, action, inputs, targets, loss_fn, **kwargs)

    return _over(model, checkpoints, steps, map_location, one, run, name)


def discovery_over_training(
    model: torch.nn.Module,
    checkpoints: Any,
    layer: str,
    algebra: Any,
    inputs: torch.Tensor,
    *,
    steps: Sequence[int] | None = None,
    map_location: Any = "cpu",
    run: Any = None,
    name: str = "symmetry_discovery",
    **kwargs: Any,
) -> Any:
    """:func:`probes.discover_symmetry` at every checkpoint: the dimension, name, basis and
    spectrum of the discovered invariant and equivariant symmetry per step (each step's
    :meth:`probes.SymmetryDiscovery.to_dataset`).

    Returns
    -------
    xarray.Dataset
        ``invariant_dimension``, ``invariant_name`` (step) and the same for
        ``equivariant``; for a Lie algebra also ``*_basis`` (step, basis_index, generator;
        rows past the dimension NaN), ``*_singular_values`` (step, basis_index) and
        ``*_closure_error`` (step).
    """
    from probes._discovery import discover_symmetry

    def one() -> Any:
        return discover_symmetry(model, layer, algebra, inputs, **kwargs).to_dataset()

    return _over(model, checkpoints, steps, map_location, one, run, name)
