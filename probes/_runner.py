"""Store-level runner: every probe for every (layer, step) of a run, streamed and cached.

The work is split by concern: :mod:`probes._settings` (settings and the cache key),
:mod:`probes._kinds` (the registry of probe kinds, one (layer, step) at a time),
:mod:`probes._executors` (where the tasks run), :mod:`probes._merge` (results into one
Dataset, merged with the cache).  This module only sequences them.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from latentgeo.groups import harmonic_names, resolve_max_degree
from probes._executors import run_tasks
from probes._harmonic import run_element_values
from probes._kinds import DIM_COORDS, DIMS, PROBE_KINDS
from probes._merge import assemble, cached_blocks, merge_cached, warn_degenerate, warn_nonfinite
from probes._settings import CACHE_NAME, cache_key, make_settings
from probes._subsets import plan_subset, records_subset
from probes._validation import as_index_list, check_group_order

if TYPE_CHECKING:
    import xarray as xr

    from latentgeo.store import Run

__all__ = ["run"]


def run(
    run_or_path: Any,
    layers: str | Sequence[str] | None = None,
    steps: int | Iterable[int] | None = None,
    probes: str | Sequence[str] = ("linear", "spectrum", "invariance", "homomorphism"),
    device: Any = None,
    client: Any = None,
    cache: bool = True,
    progress: bool = True,
    *,
    linear: dict[str, Any] | None = None,
    dtype: torch.dtype = torch.float64,
    group: Any = None,
    subgroup: Sequence[Any] | None = None,
    max_degree: int | None = None,
) -> xr.Dataset:
    """Probe every (layer, step) of a run store, one at a time, with a results cache.

    Each task loads one ``(element, sample, unit)`` block of latents from the store, runs the
    requested probes on ``device`` and keeps only their small results, so peak memory is one
    block plus the results, whatever the number of steps.  Results are cached in the store
    (``run.save_analysis("probes", ds)``) under a key of everything that changes a result
    (probe kinds and settings, dtype, group, the run's action, package version); a later call
    with the same key computes only the (layer, step)s not yet cached, any other call
    recomputes (and overwrites the cache).

    Parameters
    ----------
    run_or_path : latentgeo.store.Run or str or os.PathLike
        An opened run or the path/URL of its store.
    layers : str or sequence of str, optional
        Default: all layers.
    steps : int or iterable of int, optional
        Training steps (values of ``run.steps``).  Default: all committed steps.
    probes : sequence of str
        Any of ``"linear"`` (r2, null_r2, r2_low, r2_high, alpha, and rank: the dimension
        of the latents' numerical span the maps were fitted on, :mod:`probes._span`),
        ``"spectrum"`` (spectrum, spectrum_low, spectrum_high), ``"invariance"`` (invariance,
        invariance_low, invariance_high; intervals: percentile bootstrap over probe samples,
        ``n_bootstrap``/``confidence``/``random_state`` as for the linear probe, widened on a
        continuous group by the spread over the draw of its sampled elements,
        :meth:`latentgeo.groups.OrbitEnergies.intervals`),
        ``"homomorphism"`` (homomorphism_error, homomorphism_error_max),
        ``"characters"`` (multiplicity), ``"consistent"`` (consistent_r2, consistent_r2_low,
        consistent_r2_high: the group-consistent fit from the generators, its interval as
        r2_low/r2_high's) and ``"rho"`` (the fitted maps, padded with NaN to the
        widest layer); more kinds can be registered (:func:`probes._kinds.register_probe`).
    device : torch.device or str, optional
        Where the probes compute (e.g. ``"cuda"``).
    client : dask.distributed.Client or str or concurrent.futures.Executor, optional
        Map the (layer, step) tasks over it (threads, processes or dask workers).  Each task
        carries the run's open-spec (path or URL *with* its ``storage_options``), the group
        (the override, or the stored one, with the module that registers its class) and the
        settings, so workers open the store as the caller did.  An address string connects a
        new ``distributed.Client``.
    cache : bool
        Read and write the results cache in the store.
    progress : bool
        Show a tqdm progress bar.
    linear : dict, optional
        Parameters of :class:`LinearProbe` (``alphas``, ``test_size``, ``random_state``,
        ``n_null``, ``null``, ``n_bootstrap``, ``criterion``, ``confidence``); part of the cache
        key.
    dtype : torch.dtype
        Computation dtype; part of the cache key.
    group : FiniteGroup or SO2, optional
        Overrides the run's stored group (needed when the store records none); part of the
        cache key.
    subgroup : sequence of elements, optional
        Names (as in ``run.elements``) or values (rows of ``run.element_values``) of a finite
        subgroup: the spectrum is computed on its elements' latents, irreps named as
        ``FiniteGroup.from_cayley_table``'s.  A run that records a subset of its group's
        elements (``ElementSubset``, ``RandomPermutations``) gets r2 per recorded element
        and invariance over them; its spectrum needs ``subgroup`` (skipped with a warning
        without it, or when an element of the subgroup was not recorded), and the probes
        that need every element (homomorphism, characters, consistent, subgroups) are
        skipped with a warning.
    max_degree : int, optional
        Continuous groups: the largest irrep degree of the harmonic spectrum (default: the
        largest the sampled elements support, see :func:`probes.orbit_spectrum`); part of the
        cache key.  The ``irrep`` coordinate then ends with ``"residual"``.

    Returns
    -------
    xarray.Dataset
        Dims ``layer``, ``step``, ``element``, ``irrep`` (and ``unit_out``, ``unit_in`` for
        ``rho``); variables as listed under ``probes``; ``attrs["cache_key"]``.

    Raises
    ------
    ValueError
        For unknown layers, steps or probes (listing the valid ones), or a probe that needs a
        finite group on a continuous one.

    Notes
    -----
    Non-finite latents (a diverged checkpoint) do not stop the run: that (layer, step) gets
    NaN results, its count of non-finite values is in the ``nonfinite`` variable, and a
    ``RuntimeWarning`` names the (layer, step)s affected.  A degenerate block (a dead layer,
    constant latents, one unit) gets the values its probes define (invariance 1 for
    constant latents) and NaN for those it cannot compute (the homomorphism error of a zero
    map), with one ``RuntimeWarning`` naming the layer and step; every other block is
    computed.  The array-level probes,
    by contrast, raise ``ValueError`` on non-finite input.
    """
    settings = make_settings(probes, linear, dtype)
    if max_degree is not None:  # only then, so other runs keep their cache keys
        settings = settings.replace(max_degree=int(max_degree))
    r = _open(run_or_path)
    group = r.group if group is None else group
    if group is None:
        raise ValueError(f"run {r!r} records no group; pass group=...")
    key = cache_key(settings, group, _action_spec(r))
    layer_list = as_index_list(layers, list(r.layers), "layer")
    run_steps = np.asarray(r.steps, dtype=np.int64)
    step_req: int | np.integer | list[int] | None
    if steps is None or isinstance(steps, (int, np.integer)):
        step_req = steps
    else:
        step_req = [int(s) for s in steps]
    step_list = np.asarray(
        as_index_list(step_req, [int(s) for s in run_steps], "step"), dtype=np.int64
    )
    elements = list(r.elements)
    if not group.is_finite:
        finite_only = [k for k in settings.probes if PROBE_KINDS[k].finite_only]
        if finite_only:
            raise ValueError(
                f"probes {finite_only!r} need a finite group; this run's group is {group!r}"
            )
    # A run over a subset of the group's elements, or a spectrum on a named subgroup: some
    # kinds are dropped and the irreps are the subgroup's (part of the cache key).
    plan = plan_subset(group, elements, r.element_values, subgroup, settings, records_subset(r))
    irrep_labels = None
    task_settings = settings
    if not group.is_finite:
        # The harmonic fit needs the sampled element values and one degree for every block.
        values = run_element_values(r, group, len(elements))
        degree = resolve_max_degree(group, values, settings.max_degree)
        irrep_labels = harmonic_names(group, degree)
        settings = settings.replace(harmonic_degree=degree)
        task_settings = settings.replace(element_values=values)  # arrays: for the blocks only
    elif plan is not None:
        settings, irrep_labels = plan
        task_settings = settings
        key = cache_key(settings, group, _action_spec(r))
    else:
        check_group_order(len(elements), group, name=f"run {r!r}")
    # Only the dims the requested kinds use: some labels cost work (a group's subgroups).
    used = {d for k in settings.probes for dims in PROBE_KINDS[k].variables.values() for d in dims}
    given = {"irrep": irrep_labels} if irrep_labels is not None else {}
    labels = {
        dim: given[dim] if dim in given else make(group, elements)
        for dim, make in DIMS.items()
        if dim in used
    }
    extra = {dim: make(group, elements) for dim, make in DIM_COORDS.items() if dim in used}

    cached = r.load_analysis(CACHE_NAME) if cache else None
    if cached is not None and cached.attrs.get("cache_key") != key:
        cached = None  # computed under another key: recompute (the cache is overwritten below)
    done = cached_blocks(cached)
    index_of_step = {int(s): i for i, s in enumerate(run_steps)}
    tasks = [
        (li, si, layer, index_of_step[int(step)])
        for li, layer in enumerate(layer_list)
        for si, step in enumerate(step_list)
        if (layer, int(step)) not in done
    ]

    from latentgeo._progress import progress_bar

    results: dict[tuple[int, int], dict[str, Any]] = {}
    with progress_bar(total=len(tasks), desc="probes", unit="task", disable=not progress) as bar:
        for li, si, result in run_tasks(r, tasks, group, task_settings, device, client):
            results[(li, si)] = result
            bar.update()

    fresh = assemble(results, settings, layer_list, step_list, labels, extra)
    fresh.attrs = {"cache_key": key, "settings": json.dumps(settings.as_dict(), sort_keys=True)}
    out = merge_cached(fresh, cached)
    warn_degenerate(results, layer_list, step_list)
    warn_nonfinite(out)
    if cache and tasks:
        r.save_analysis(CACHE_NAME, out)
    return out.sel(layer=layer_list, step=step_list).drop_vars("computed")


def _open(run_or_path: Any) -> Run:
    from latentgeo.store import Run, open_run

    if isinstance(run_or_path, (str, os.PathLike)):
        return open_run(run_or_path)
    if not isinstance(run_or_path, Run):
        raise TypeError(
            f"run_or_path must be a run store path or a latentgeo Run, got {run_or_path!r}"
        )
    return run_or_path


def _action_spec(r: Run) -> Any:
    """The run's stored action spec (a JSON-able dict), None when it records none."""
    return r.attrs.get("action")
