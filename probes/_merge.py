"""Results of :func:`probes.run`: per-block results into one Dataset, merged with the cache."""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from probes._kinds import PROBE_KINDS

if TYPE_CHECKING:
    import xarray as xr

    from probes._settings import RunSettings

__all__ = ["assemble", "cached_blocks", "merge_cached", "warn_degenerate", "warn_nonfinite"]


def cached_blocks(cached: xr.Dataset | None) -> set[tuple[str, int]]:
    """The (layer, step)s a cached Dataset holds results for."""
    if cached is None or "computed" not in cached:
        return set()
    comp = cached["computed"]
    return {
        (str(layer), int(step))
        for layer in comp.layer.values
        for step in comp.step.values
        if bool(comp.sel(layer=layer, step=step))
    }


def assemble(
    results: Mapping[tuple[int, int], Mapping[str, Any]],
    settings: RunSettings,
    layers: Sequence[str],
    steps: np.ndarray,
    labels: Mapping[str, Sequence[Any]],
    extra_coords: Mapping[str, Mapping[str, Any]] | None = None,
) -> xr.Dataset:
    """One Dataset of dims ``(layer, step, ...)`` from the results of single blocks.

    Parameters
    ----------
    results : mapping of (layer position, step position) to dict
        What :func:`probes._kinds.probe_block` returned for each computed block.
    settings : dict
        The call's settings; every variable of its kinds is present (NaN where not computed).
    layers, steps : the coordinates of the ``layer`` and ``step`` dims.
    labels : mapping of dim to its labels
        Coordinates of the labelled dims.  Any other dim is sized by the widest result
        (``rho``'s unit dims) and padded with NaN; its coordinate is ``arange``.
    extra_coords : mapping of dim to {coordinate name: (dims, values)}, optional
        Coordinates describing a labelled dim's labels, added when the dim is used.

    Returns
    -------
    xarray.Dataset
        With a boolean ``computed (layer, step)`` and an int64 ``nonfinite (layer, step)``.
    """
    import xarray as xr

    L, S = len(layers), len(steps)
    dims_of = {
        var: dims for name in settings.probes for var, dims in PROBE_KINDS[name].variables.items()
    }
    sizes = {dim: len(v) for dim, v in labels.items()}
    for var, dims in dims_of.items():
        for axis, dim in enumerate(dims):
            if dim in labels:
                continue
            widths = [np.shape(r[var])[axis] for r in results.values() if var in r]
            sizes[dim] = max([sizes.get(dim, 0), *widths])
    variables: dict[str, Any] = {}
    for var, dims in dims_of.items():
        arr = np.full((L, S, *(sizes[d] for d in dims)), np.nan)
        for (li, si), res in results.items():
            if var in res:
                value = np.asarray(res[var], dtype=np.float64)
                index: tuple[Any, ...] = (li, si, *(slice(0, n) for n in value.shape))
                arr[index] = value
        variables[var] = (("layer", "step", *dims), arr)
    nonfinite = np.zeros((L, S), dtype=np.int64)
    computed = np.zeros((L, S), dtype=bool)
    for (li, si), res in results.items():
        nonfinite[li, si] = int(res["nonfinite"])
        computed[li, si] = True
    variables["nonfinite"] = (("layer", "step"), nonfinite)
    variables["computed"] = (("layer", "step"), computed)
    used = {d for dims in dims_of.values() for d in dims}
    coords: dict[str, Any] = {
        "layer": np.asarray(layers, dtype=object),
        "step": np.asarray(steps, dtype=np.int64),
    }
    for dim in sorted(used):
        if dim in labels:
            coords[dim] = np.asarray(list(labels[dim]), dtype=object)
        else:
            coords[dim] = np.arange(sizes[dim])
    extra = dict(extra_coords or {})
    for dim in sorted(used & set(extra)):
        coords.update(extra[dim])
    return xr.Dataset(variables, coords=coords)


def merge_cached(fresh: xr.Dataset, cached: xr.Dataset | None) -> xr.Dataset:
    """``fresh`` with the (layer, step)s it did not compute filled from ``cached``."""
    if cached is None:
        return fresh
    attrs = dict(fresh.attrs)
    out = fresh.where(fresh["computed"]).combine_first(cached)
    out["computed"] = out["computed"].fillna(False).astype(bool)
    out["nonfinite"] = out["nonfinite"].fillna(0).astype(np.int64)
    out.attrs = attrs
    return out


def warn_degenerate(
    results: Mapping[tuple[int, int], Mapping[str, Any]],
    layers: Sequence[str],
    steps: np.ndarray,
    stacklevel: int = 3,
) -> None:
    """One ``RuntimeWarning`` per degenerate (layer, step) block, naming it and what failed.

    A block is degenerate when a probe kind could not compute on it (``results[...]
    ["failed"]``, see :func:`probes._kinds.probe_block`); its variables are NaN there.
    """
    for (li, si), res in sorted(results.items()):
        if "failed" in res:
            warnings.warn(
                f"layer {layers[li]!r}, step {int(steps[si])}: degenerate latents, these "
                f"probes are NaN there (every other block is computed): {res['failed']}",
                RuntimeWarning,
                stacklevel=stacklevel,
            )


def warn_nonfinite(ds: xr.Dataset, stacklevel: int = 3) -> None:
    """Warn (``RuntimeWarning``) when some (layer, step)s of ``ds`` hold non-finite latents."""
    bad = ds["nonfinite"] > 0
    n_bad = int(bad.sum())
    if n_bad:
        where = [
            f"({layer!r}, {int(step)})"
            for layer in ds["layer"].values
            for step in ds["step"].values
            if bool(bad.sel(layer=layer, step=step))
        ]
        shown = ", ".join(where[:8]) + (", ..." if len(where) > 8 else "")
        warnings.warn(
            f"{n_bad} (layer, step)s hold non-finite latents: {shown}; their results are NaN "
            "and the counts are in the 'nonfinite' variable",
            RuntimeWarning,
            stacklevel=stacklevel,
        )
