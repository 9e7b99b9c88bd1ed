"""Store-level runner: every probe for every (layer, step) of a run, streamed and cached."""

from __future__ import annotations

import concurrent.futures
import hashlib
import json
import os
import warnings
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import torch

from probes._characters import character_multiplicities
from probes._harmonic import (  # D1 (issue 11)
    continuous_block,
    harmonic_names,
    resolve_max_degree,
    run_element_values,
)
from probes._homomorphism import GroupConsistentProbe, homomorphism_error
from probes._linear import LinearProbe
from probes._spectrum import invariance_of_centred, spectrum_of_centred
from probes._validation import as_index_list, check_group_order

__all__ = ["PROBES", "run"]

#: Probes :func:`run` knows, with the variables each adds to the result.
PROBES: dict[str, tuple[str, ...]] = {
    "linear": ("r2", "null_r2", "r2_low", "r2_high", "alpha"),
    "spectrum": ("spectrum",),
    "invariance": ("invariance",),
    "homomorphism": ("homomorphism_error", "homomorphism_error_max"),
    "characters": ("multiplicity",),
    "consistent": ("consistent_r2",),
    "rho": ("rho",),
}
_NEEDS_LINEAR = {"homomorphism", "characters", "rho"}
_NEEDS_FINITE = {"homomorphism", "characters", "consistent"}
_LINEAR_KEYS = {"alphas", "test_size", "random_state", "n_null", "n_bootstrap", "criterion"}
CACHE_NAME = "probes"


def _settings(
    probes: Sequence[str], linear: dict[str, Any] | None, dtype: torch.dtype
) -> dict[str, Any]:
    if isinstance(probes, str):
        probes = (probes,)
    unknown = [p for p in probes if p not in PROBES]
    if unknown:
        raise ValueError(f"unknown probes {unknown!r}; valid probes are {sorted(PROBES)!r}")
    linear = dict(linear or {})
    bad = sorted(set(linear) - _LINEAR_KEYS)
    if bad:
        raise ValueError(
            f"unknown LinearProbe settings {bad!r}; valid ones are {sorted(_LINEAR_KEYS)!r}"
        )
    if "alphas" in linear and linear["alphas"] is not None:
        linear["alphas"] = [float(a) for a in np.asarray(linear["alphas"]).ravel()]
    if dtype not in (torch.float32, torch.float64):
        raise ValueError(f"dtype must be torch.float32 or torch.float64, got {dtype!r}")
    return {
        "probes": sorted(set(probes)),
        "linear": linear,
        "dtype": str(dtype).removeprefix("torch."),
        "version": 1,
    }


def _cache_key(settings: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]


def private_tensor(Z: Any, dtype: torch.dtype, device: Any = None) -> torch.Tensor:
    """A fresh tensor copy of ``Z`` in ``dtype`` on ``device``, converted without temporaries."""
    src = torch.as_tensor(np.asarray(Z))  # shares memory with the loaded block
    Zt = torch.empty(src.shape, dtype=dtype, device=device)
    Zt.copy_(src)
    return Zt


def probe_orbit(Z: Any, group: Any, settings: dict[str, Any], device: Any = None) -> dict:
    """All requested probes for one (layer, step).

    Parameters
    ----------
    Z : array of shape (n_elements, n_samples, n_units)
        Copied; see :func:`probe_private` to hand over a tensor without a copy.
    group : FiniteGroup or SO2
    settings : dict
        From :func:`_settings`.
    device : torch.device or str, optional

    Returns
    -------
    dict of str to ndarray
        One entry per result variable (without the layer and step axes).
    """
    dtype = getattr(torch, settings["dtype"])
    return probe_private(private_tensor(Z, dtype, device), group, settings, device)


def probe_private(Zt: torch.Tensor, group: Any, settings: dict[str, Any], device: Any) -> dict:
    """:func:`probe_orbit` on a tensor the caller hands over: it is centred in place."""
    dtype = getattr(torch, settings["dtype"])
    wanted = set(settings["probes"])
    # Centred in place by its grand mean: the fit-free probes centre anyway and the ridge
    # fits are affine, so no result changes, and no second copy is made.
    # A diverged checkpoint (NaN/Inf latents) must not stop the analysis of the others: its
    # results stay NaN and the count of non-finite values is reported instead.  (A finite
    # sum proves every value finite without an element-wise mask.)
    bad = 0 if bool(torch.isfinite(Zt.sum())) else int((~torch.isfinite(Zt)).sum())
    out: dict[str, np.ndarray] = {"nonfinite": np.asarray(bad)}
    if bad:
        return out
    Zt -= Zt.mean(dim=(0, 1))
    if not group.is_finite:  # D1 (issue 11): harmonic spectrum over the sampled elements
        out.update(continuous_block(Zt, group, settings))
    elif "invariance" in wanted:
        out["invariance"] = np.asarray(invariance_of_centred(Zt))
    if "spectrum" in wanted and group.is_finite:
        out["spectrum"] = spectrum_of_centred(Zt, group)[1].cpu().numpy()
    lin = None
    if "linear" in wanted or wanted & _NEEDS_LINEAR:
        lin = LinearProbe(device=device, dtype=dtype, **settings["linear"]).fit(Zt)
        out.update(
            r2=lin.r2_,
            null_r2=lin.null_r2_,
            r2_low=lin.r2_ci_[:, 0],
            r2_high=lin.r2_ci_[:, 1],
            alpha=lin.alpha_,
        )
    if "homomorphism" in wanted:
        err = homomorphism_error(lin.rho_, group, dtype=dtype)
        out["homomorphism_error"] = np.asarray(err.mean)
        out["homomorphism_error_max"] = np.asarray(err.max)
    if "characters" in wanted:
        out["multiplicity"] = character_multiplicities(lin.rho_, group).values
    if "consistent" in wanted:
        keys = {"alphas", "test_size", "random_state", "criterion"}
        kwargs = {k: v for k, v in settings["linear"].items() if k in keys}
        gc = GroupConsistentProbe(group, device=device, dtype=dtype, n_bootstrap=0, **kwargs)
        out["consistent_r2"] = gc.fit(Zt).r2_
    if "rho" in wanted:
        out["rho"] = lin.rho_
    return out


def load_block(r: Any, layer: str, index: int) -> np.ndarray:
    """Latents of ``layer`` at step index ``index``: array of shape (elements, samples, units).

    Read straight from the zarr array named ``layer`` (the store schema) when the run has a
    path: one chunk, one copy.  Going through the lazy dask-backed ``run.latents`` costs about
    three copies of the block at peak, which is most of the runner's memory on wide layers.
    Runs without a path (or other layouts) are read through ``run.latents``.
    """
    path = getattr(r, "path", None)
    if path is not None:
        import zarr

        try:
            arr = zarr.open_array(str(path), path=layer, mode="r")
        except (OSError, KeyError, ValueError):
            arr = None
        if arr is not None and arr.ndim == 4 and index < len(r.steps):
            return np.asarray(arr[index])
    return r.latents(layer).isel(step=index).values


def _trim_memory() -> None:
    """Give freed heap pages back to the OS between tasks (glibc only; no-op elsewhere).

    Blocks of a few MB freed by one task land in glibc's heap and fragment it, so without this
    the resident size creeps up task after task; dask.distributed trims its workers the same way.
    """
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _task(path: str, layer: str, index: int, settings: dict, device: Any) -> tuple:
    """Worker-side task for a distributed client: open the store, probe one (layer, step)."""
    from latentgeo.store import open_run

    r = open_run(path)
    return layer, index, probe_orbit(load_block(r, layer, index), r.group, settings, device)


def _executor(client: Any) -> tuple[Any, Any]:
    """The object to submit tasks to and the matching ``as_completed``."""
    if isinstance(client, str):
        try:
            import distributed
        except ImportError:
            raise ImportError(
                "client given as an address needs dask.distributed, which is not installed; "
                "install it with `pip install 'latentgeo[distributed]'`"
            ) from None
        client = distributed.Client(client)
        return client, distributed.as_completed
    if type(client).__module__.split(".")[0] == "distributed":
        try:
            import distributed
        except ImportError:  # pragma: no cover - a Client object implies the package
            raise ImportError(
                "dask.distributed is not installed; install it with "
                "`pip install 'latentgeo[distributed]'`"
            ) from None
        return client, distributed.as_completed
    if isinstance(client, concurrent.futures.Executor):
        return client, concurrent.futures.as_completed
    raise TypeError(
        f"client must be a dask.distributed.Client, its address, or a "
        f"concurrent.futures.Executor, got {client!r}"
    )


def _open(run_or_path: Any) -> Any:
    if isinstance(run_or_path, (str, os.PathLike)):
        from latentgeo.store import open_run

        return open_run(run_or_path)
    needed = ("layers", "steps", "group", "latents")
    missing = [a for a in needed if not hasattr(run_or_path, a)]
    if missing:
        raise TypeError(
            f"run_or_path must be a run store path or a latentgeo Run, got {run_or_path!r} "
            f"(missing {missing!r})"
        )
    return run_or_path


def _empty(
    settings: dict, layers: list[str], steps: np.ndarray, elements: Sequence[str], irreps: list
) -> dict[str, tuple[tuple[str, ...], np.ndarray]]:
    L, S, G, Ir = len(layers), len(steps), len(elements), len(irreps)
    shapes: dict[str, tuple[tuple[str, ...], tuple[int, ...]]] = {}
    wanted = set(settings["probes"])
    for name in PROBES["linear"]:
        if "linear" in wanted or wanted & _NEEDS_LINEAR:
            shapes[name] = (("layer", "step", "element"), (L, S, G))
    if "spectrum" in wanted:
        shapes["spectrum"] = (("layer", "step", "irrep"), (L, S, Ir))
    if "invariance" in wanted:
        shapes["invariance"] = (("layer", "step"), (L, S))
    if "homomorphism" in wanted:
        shapes["homomorphism_error"] = (("layer", "step"), (L, S))
        shapes["homomorphism_error_max"] = (("layer", "step"), (L, S))
    if "characters" in wanted:
        shapes["multiplicity"] = (("layer", "step", "irrep"), (L, S, Ir))
    if "consistent" in wanted:
        shapes["consistent_r2"] = (("layer", "step", "element"), (L, S, G))
    out = {k: (dims, np.full(shape, np.nan)) for k, (dims, shape) in shapes.items()}
    out["nonfinite"] = (("layer", "step"), np.zeros((L, S), dtype=np.int64))
    return out


def run(
    run_or_path: Any,
    layers: str | Sequence[str] | None = None,
    steps: int | Iterable[int] | None = None,
    probes: Sequence[str] = ("linear", "spectrum", "invariance", "homomorphism"),
    device: Any = None,
    client: Any = None,
    cache: bool = True,
    progress: bool = True,
    *,
    linear: dict[str, Any] | None = None,
    dtype: torch.dtype = torch.float64,
    group: Any = None,
    max_degree: int | None = None,
) -> Any:
    """Probe every (layer, step) of a run store, one at a time, with a results cache.

    Each task loads one ``(element, sample, unit)`` block of latents from the store, runs the
    requested probes on ``device`` and keeps only their small results, so peak memory is one
    block plus the results, whatever the number of steps.  Results are cached in the store
    (``run.save_analysis("probes", ds)``) under a key of the probe settings; a later call with
    the same settings computes only the (layer, step)s not yet cached.

    Parameters
    ----------
    run_or_path : latentgeo.store.Run or str or os.PathLike
        An opened run or the path/URL of its store.
    layers : str or sequence of str, optional
        Default: all layers.
    steps : int or iterable of int, optional
        Training steps (values of ``run.steps``).  Default: all committed steps.
    probes : sequence of str
        Any of ``"linear"`` (r2, null_r2, r2_low, r2_high, alpha), ``"spectrum"``,
        ``"invariance"``, ``"homomorphism"`` (homomorphism_error, homomorphism_error_max),
        ``"characters"`` (multiplicity), ``"consistent"`` (consistent_r2: the group-consistent
        fit from the generators) and ``"rho"`` (the fitted maps, padded with NaN to the
        widest layer).
    device : torch.device or str, optional
        Where the probes compute (e.g. ``"cuda"``).
    client : dask.distributed.Client or str or concurrent.futures.Executor, optional
        Map the (layer, step) tasks over it (workers open the store by path).  An address
        string connects a new ``distributed.Client``.
    cache : bool
        Read and write the results cache in the store.
    progress : bool
        Show a tqdm progress bar.
    linear : dict, optional
        Settings of :class:`LinearProbe` (``alphas``, ``test_size``, ``random_state``,
        ``n_null``, ``n_bootstrap``, ``criterion``); part of the cache key.

    Notes
    -----
    Non-finite latents (a diverged checkpoint) do not stop the run: that (layer, step) gets
    NaN results, its count of non-finite values is in the ``nonfinite`` variable, and a
    ``RuntimeWarning`` says how many (layer, step)s were affected.  The array-level probes,
    by contrast, raise ``ValueError`` on non-finite input.
    dtype : torch.dtype
        Computation dtype; part of the cache key.
    group : FiniteGroup, optional
        Overrides the run's stored group (needed when the store records none).
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
    """
    import xarray as xr

    settings = _settings(probes, linear, dtype)
    if max_degree is not None:  # D1 (issue 11): only then, so other runs keep their keys
        settings["max_degree"] = int(max_degree)
    key = _cache_key(settings)
    r = _open(run_or_path)
    group = r.group if group is None else group
    if group is None:
        raise ValueError(f"run {r!r} records no group; pass group=...")
    all_layers = list(r.layers)
    layer_list = as_index_list(layers, all_layers, "layer")
    run_steps = np.asarray(r.steps, dtype=np.int64)
    if steps is None or isinstance(steps, (int, np.integer)):
        step_req = steps
    else:
        step_req = [int(s) for s in steps]
    step_list = as_index_list(step_req, [int(s) for s in run_steps], "step")
    circle = not group.is_finite
    if circle:
        finite_only = sorted(set(settings["probes"]) & _NEEDS_FINITE)
        if finite_only:
            raise ValueError(
                f"probes {finite_only!r} need a finite group; this run's group is {group!r}"
            )
    elements = list(getattr(r, "elements", None) or r.latents(layer_list[0]).element.values)
    block_settings = settings
    if circle:  # D1 (issue 11): element values and the resolved degree for each block
        values = run_element_values(r, group, len(elements))
        degree = resolve_max_degree(group, values, settings.get("max_degree"))
        irreps = harmonic_names(group, degree)
        block_settings = dict(settings, element_values=values, harmonic_degree=degree)
    else:
        check_group_order(len(elements), group, name=f"run {r!r}")
        irreps = [irrep.name for irrep in group.irreps()]

    cached = r.load_analysis(CACHE_NAME) if cache else None
    if cached is not None and cached.attrs.get("cache_key") != key:
        cached = None  # other settings: recompute (the cache is overwritten below)
    done: set[tuple[str, int]] = set()
    if cached is not None and "computed" in cached:
        comp = cached["computed"]
        for layer in comp.layer.values:
            for step in comp.step.values:
                if bool(comp.sel(layer=layer, step=step)):
                    done.add((str(layer), int(step)))

    steps_arr = np.asarray(step_list, dtype=np.int64)
    data = _empty(settings, layer_list, steps_arr, elements, irreps)
    rho_blocks: dict[tuple[int, int], np.ndarray] = {}
    computed = np.zeros((len(layer_list), len(steps_arr)), dtype=bool)
    index_of_step = {int(s): i for i, s in enumerate(run_steps)}
    todo = [
        (li, si)
        for li, layer in enumerate(layer_list)
        for si, step in enumerate(steps_arr)
        if (layer, int(step)) not in done
    ]

    def store(li: int, si: int, result: dict) -> None:
        for name, value in result.items():
            if name == "rho":
                rho_blocks[(li, si)] = value
            else:
                data[name][1][li, si] = value
        computed[li, si] = True

    from tqdm.auto import tqdm

    bar = tqdm(total=len(todo), desc="probes", unit="task", disable=not progress)
    try:
        if client is None:
            for li, si in todo:
                block = load_block(r, layer_list[li], index_of_step[int(steps_arr[si])])
                Zt = private_tensor(block, dtype, device)
                del block  # the float64 copy is all the probes need from here on
                store(li, si, probe_private(Zt, group, block_settings, device))
                del Zt
                _trim_memory()
                bar.update()
        else:
            path = getattr(r, "path", None)
            if path is None:
                raise ValueError("a client needs a run opened from a path the workers can open")
            pool, as_completed = _executor(client)
            futures = {
                pool.submit(
                    _task,
                    str(path),
                    layer_list[li],
                    index_of_step[int(steps_arr[si])],
                    block_settings,
                    device,
                ): (li, si)
                for li, si in todo
            }
            for fut in as_completed(futures):
                li, si = futures[fut]
                store(li, si, fut.result()[2])
                bar.update()
    finally:
        bar.close()

    coords = {
        "layer": np.asarray(layer_list, dtype=object),
        "step": steps_arr,
        "element": np.asarray(elements, dtype=object),
        "irrep": np.asarray(irreps, dtype=object),
    }
    variables = {name: (dims, arr) for name, (dims, arr) in data.items()}
    if "rho" in settings["probes"]:
        variables["rho"] = _rho_variable(rho_blocks, len(layer_list), len(steps_arr), len(elements))
    variables["computed"] = (("layer", "step"), computed)
    if "rho" in variables:
        width = variables["rho"][1].shape[-1]
        coords["unit_out"] = coords["unit_in"] = np.arange(width)
    fresh = xr.Dataset(variables, coords=coords)
    fresh.attrs = {"cache_key": key, "settings": json.dumps(settings, sort_keys=True)}
    if cached is not None:
        # Cached values fill the (layer, step)s that were not recomputed.
        fresh = fresh.where(fresh["computed"]).combine_first(cached)
        fresh["computed"] = fresh["computed"].fillna(False).astype(bool)
        fresh["nonfinite"] = fresh["nonfinite"].fillna(0).astype(np.int64)
        fresh.attrs = {"cache_key": key, "settings": json.dumps(settings, sort_keys=True)}
    n_bad = int((fresh["nonfinite"] > 0).sum())
    if n_bad:
        warnings.warn(
            f"{n_bad} (layer, step)s hold non-finite latents; their results are NaN and the "
            "counts are in the 'nonfinite' variable",
            RuntimeWarning,
            stacklevel=2,
        )
    if cache and todo:
        r.save_analysis(CACHE_NAME, fresh)
    out = fresh.sel(layer=layer_list, step=steps_arr)
    return out.drop_vars("computed")


def _rho_variable(blocks: dict[tuple[int, int], np.ndarray], L: int, S: int, G: int) -> tuple:
    width = max((b.shape[1] for b in blocks.values()), default=0)
    arr = np.full((L, S, G, width, width), np.nan)
    for (li, si), b in blocks.items():
        arr[li, si, :, : b.shape[1], : b.shape[2]] = b
    return (("layer", "step", "element", "unit_out", "unit_in"), arr)
