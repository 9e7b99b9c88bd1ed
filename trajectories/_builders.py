"""Trajectories built from a run store or from probe results, one checkpoint at a time."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from latentgeo._validate import as_tensor, check_int
from latentgeo.geometry import (
    isotypic_subspace,
    orthogonalize,
    principal_subspace,
    shrinkage_covariance,
)
from trajectories._trajectory import Trajectory

if TYPE_CHECKING:
    import xarray as xr

    from latentgeo.store import Run

_COV_METRICS = {
    "affine": "spd_affine",
    "log_euclidean": "spd_log_euclidean",
    "bures_wasserstein": "bures_wasserstein",
}
_SHAPE_METRICS = ("procrustes", "cka")


def _open(run: Any) -> Run:
    if isinstance(run, (str, os.PathLike)):
        from latentgeo.store import open_run

        return open_run(run)
    if not (hasattr(run, "latents") and hasattr(run, "steps")):
        raise TypeError(
            f"run must be a latentgeo Run (latentgeo.open_run) or a store path, got "
            f"{type(run).__name__}"
        )
    return run


def _layer_latents(run: Run, layer: str) -> Any:
    layers = list(getattr(run, "layers", []))
    if layers and layer not in layers:
        raise ValueError(f"layer must be one of {layers!r}, got {layer!r}")
    return run.latents(layer)


def _iter_steps(
    lat: Any, device: torch.device | str | None, element: Any = None
) -> Iterator[torch.Tensor]:
    """Yield the latents of one checkpoint at a time, (n_elements, n_samples, n_units)."""
    if element is not None:
        lat = (
            lat.sel(element=[element]) if isinstance(element, str) else lat.isel(element=[element])
        )
    for i in range(lat.sizes["step"]):
        # Only this step's chunk is read: the store is chunked by one step along `step`.
        block = np.asarray(lat.isel(step=i).values)
        Z = as_tensor(block, "latents", dtype=torch.float64, device=device)
        if not bool(torch.isfinite(Z).all()):
            step = lat["step"].values[i]
            raise ValueError(
                f"latents at step {step!r} contain NaN or infinite values; drop that step "
                f"(run.nonfinite shows which)"
            )
        yield Z


def _build(
    run: Any,
    layer: str,
    summarize: Callable[[torch.Tensor], torch.Tensor],
    metric: str,
    device: Any,
    element: Any = None,
    **metric_options: Any,
) -> Trajectory:
    lat = _layer_latents(run, layer)
    steps = np.asarray(lat["step"].values)
    if steps.size == 0:
        raise ValueError(f"run has no committed steps for layer {layer!r}")
    points = torch.stack([summarize(Z) for Z in _iter_steps(lat, device, element)])
    return Trajectory(points, steps, metric, name=layer, **metric_options)


def subspace(
    run: Run | str | os.PathLike[str],
    layer: str,
    k: int,
    *,
    irrep: Any = None,
    center: bool = True,
    device: torch.device | str | None = None,
    convention: str = "arc",
) -> Trajectory:
    """Trajectory of a layer's top-``k`` principal (or isotypic) subspace on the Grassmannian.

    Parameters
    ----------
    run : latentgeo.store.Run or path
        A run store (``latentgeo.open_run``); read one checkpoint at a time.
    layer : str
    k : int
        Subspace dimension.
    irrep : str, int or Irrep, optional
        With an irrep of the run's group, the subspace of the part of the latents that
        transforms like it (:func:`latentgeo.geometry.isotypic_subspace`).
    center : bool
        PCA on centred latents.
    device : torch device, optional
        Where the summaries are computed.
    convention : {"arc", "geomstats", "chordal"}
        Grassmann distance convention.

    Returns
    -------
    Trajectory
        Points of shape (T, n_units, k), metric ``"grassmann"``.
    """
    k = check_int(k, "k", minimum=1)
    run = _open(run)
    if irrep is None:

        def summarize(Z: torch.Tensor) -> torch.Tensor:
            return principal_subspace(Z, k, center=center)
    else:
        group = run.group
        if group is None:
            raise ValueError("irrep needs the run's group, but the store records none")

        def summarize(Z: torch.Tensor) -> torch.Tensor:
            return isotypic_subspace(Z, group, irrep, k, center=center)

    return _build(run, layer, summarize, "grassmann", device, convention=convention)


def covariance(
    run: Run | str | os.PathLike[str],
    layer: str,
    k: int,
    metric: str = "affine",
    *,
    basis: Any = "final",
    device: torch.device | str | None = None,
) -> Trajectory:
    """Trajectory of a layer's Ledoit-Wolf covariance in one fixed ``k``-dimensional basis.

    Parameters
    ----------
    run : latentgeo.store.Run or path
    layer : str
    k : int
    metric : {"affine", "log_euclidean", "bures_wasserstein"}
        SPD metric of the trajectory (the trajectory names ``"spd_affine"``,
        ``"spd_log_euclidean"`` are accepted too).
    basis : {"final", "first"}, int or array of shape (n_units, k)
        The fixed basis: the top-``k`` principal subspace of the final or first checkpoint, of
        the checkpoint at a given training step, or an orthonormal basis given directly.
        Covariances at different steps are comparable only in one common basis.
    device : torch device, optional

    Returns
    -------
    Trajectory
        Points of shape (T, k, k); the basis is kept in ``trajectory.basis``.
    """
    k = check_int(k, "k", minimum=1)
    # Accept the trajectory metric names too ("spd_affine", ...), as Trajectory does.
    metric = {v: k_ for k_, v in _COV_METRICS.items()}.get(metric, metric)
    if metric == "spd_bures_wasserstein":
        metric = "bures_wasserstein"
    if metric not in _COV_METRICS:
        raise ValueError(f"metric must be one of {tuple(_COV_METRICS)!r}, got {metric!r}")
    run = _open(run)
    lat = _layer_latents(run, layer)
    steps = np.asarray(lat["step"].values)
    if steps.size == 0:
        raise ValueError(f"run has no committed steps for layer {layer!r}")
    if isinstance(basis, str) or isinstance(basis, (int, np.integer)):
        if isinstance(basis, str):
            if basis not in ("final", "first"):
                raise ValueError(
                    f"basis must be 'final', 'first', a step or an array, got {basis!r}"
                )
            i = -1 if basis == "final" else 0
        else:
            hits = np.flatnonzero(steps == basis)
            if hits.size == 0:
                raise ValueError(f"basis step {basis!r} is not among the steps {steps.tolist()!r}")
            i = int(hits[0])
        Z = next(_iter_steps(lat.isel(step=[i]), device))
        B = principal_subspace(Z, k)
    else:
        B = as_tensor(basis, "basis", dtype=torch.float64, device=device)
    traj = _build(
        run,
        layer,
        lambda Z: shrinkage_covariance(Z, k, basis=B.to(Z.device)),
        _COV_METRICS[metric],
        device,
    )
    traj.basis = B
    return traj


def _reduce_units(X: torch.Tensor) -> torch.Tensor:
    # Procrustes and CKA distances are invariant to orthogonal maps of the units, so the
    # (n, d) representation can be replaced by X V (its coordinates in the right singular
    # basis, n x min(n, d)) without changing any distance: a smaller footprint when d > n.
    n, d = X.shape
    if d <= n:
        return X
    X = X - X.mean(dim=0, keepdim=True)
    U, S, _ = torch.linalg.svd(X, full_matrices=False)
    return U * S


def shape(
    run: Run | str | os.PathLike[str],
    layer: str,
    metric: str = "procrustes",
    *,
    element: Any = None,
    device: torch.device | str | None = None,
) -> Trajectory:
    """Trajectory of a layer's representation of the probe set, compared by shape metrics.

    Parameters
    ----------
    run : latentgeo.store.Run or path
    layer : str
    metric : {"procrustes", "cka"}
        Angular Procrustes distance or angular linear-CKA distance between checkpoints.
    element : str or int, optional
        Use only the probe set transformed by this element (e.g. ``"e"``); by default the whole
        orbit (all elements' latents stacked as samples).
    device : torch device, optional

    Returns
    -------
    Trajectory
        Points of shape (T, n_rows, min(n_rows, n_units)) (units rotated to their principal
        axes when wider than the probe set, which leaves both metrics unchanged).
    """
    if metric not in _SHAPE_METRICS:
        raise ValueError(f"metric must be one of {_SHAPE_METRICS!r}, got {metric!r}")
    run = _open(run)
    return _build(
        run,
        layer,
        lambda Z: _reduce_units(Z.reshape(-1, Z.shape[-1])),
        metric,
        device,
        element=element,
    )


def _select_layer(results: Any, var: str, layer: str) -> Any:
    if not hasattr(results, "data_vars"):
        raise TypeError(
            f"probe_results must be the xarray.Dataset of probes.run, got {type(results).__name__}"
        )
    if var not in results.data_vars:
        raise ValueError(
            f"var must be one of the result variables {sorted(results.data_vars)!r}, got {var!r}"
        )
    da = results[var]
    if "layer" in da.dims:
        layers = [str(x) for x in da["layer"].values]
        if layer not in layers:
            raise ValueError(f"layer must be one of {layers!r}, got {layer!r}")
        da = da.sel(layer=layer)
    if "step" not in da.dims:
        raise ValueError(f"{var!r} has no 'step' dim (dims {tuple(da.dims)!r})")
    return da


def representation(
    probe_results: xr.Dataset, layer: str, element: str | int, *, special: bool = False
) -> Trajectory:
    """Trajectory of a fitted ``rho(g)``, orthogonalised, on the orthogonal group.

    Parameters
    ----------
    probe_results : xarray.Dataset
        Output of ``probes.run`` with ``rho (layer, step, element, unit_out, unit_in)``.
    layer : str
    element : str or int
        Element name (coordinate of ``element``) or index.
    special : bool
        Project onto SO(k) instead of O(k) (see :func:`latentgeo.geometry.orthogonalize`).

    Returns
    -------
    Trajectory
        Points of shape (T, k, k), metric ``"orthogonal"`` (``k`` the layer's width: the NaN
        padding of narrower layers in ``rho`` is removed). Checkpoints whose polar factors
        have different determinants are at infinite distance (O(k) is disconnected).
    """
    rho = _select_layer(probe_results, "rho", layer)
    if "element" not in rho.dims:
        raise ValueError(f"rho has no 'element' dim (dims {tuple(rho.dims)!r})")
    if isinstance(element, str):
        names = [str(x) for x in rho["element"].values]
        if element not in names:
            raise ValueError(f"element must be one of {names!r}, got {element!r}")
        rho = rho.sel(element=element)
    else:
        rho = rho.isel(element=int(element))
    rho = rho.transpose("step", ...)
    if rho.ndim != 3:
        raise ValueError(f"rho for one layer and element must be (step, k, k), got {rho.dims!r}")
    values = np.asarray(rho.values, dtype=np.float64)
    # probes.run pads rho of narrower layers with NaN up to the widest layer: keep the units
    # that hold numbers at some step.
    finite = np.isfinite(values)
    rows, cols = finite.any(axis=(0, 2)), finite.any(axis=(0, 1))
    if rows.sum() != cols.sum():
        raise ValueError(
            f"rho of layer {layer!r}, element {element!r} is not square once its NaN padding "
            f"is removed ({int(rows.sum())} x {int(cols.sum())})"
        )
    values = values[:, rows][:, :, cols]
    if values.shape[-1] == 0 or not np.all(np.isfinite(values)):
        raise ValueError(f"rho of layer {layer!r}, element {element!r} has non-finite entries")
    Q = orthogonalize(values, special=special)
    return Trajectory(Q, np.asarray(rho["step"].values), "orthogonal", name=layer)


def series(probe_results: xr.Dataset, var: str, layer: str, **sel: Any) -> xr.DataArray:
    """A scalar series of the probe results for one layer, along ``step``.

    Parameters
    ----------
    probe_results : xarray.Dataset
        Output of ``probes.run``.
    var : str
        E.g. ``"r2"`` (layer, step, element), ``"invariance"`` (layer, step), ``"spectrum"``
        (layer, step, irrep), ``"homomorphism_error"``.
    layer : str
    **sel
        Further selections, e.g. ``irrep="A1"`` or ``element="r"``.

    Returns
    -------
    xarray.DataArray
        dims ``("step", ...)``; pass it to :func:`trajectories.onset` or
        :func:`trajectories.change_points`.
    """
    da = _select_layer(probe_results, var, layer)
    if sel:
        missing = [d for d in sel if d not in da.dims]
        if missing:
            raise ValueError(f"cannot select {missing!r}: {var!r} has dims {tuple(da.dims)!r}")
        da = da.sel(**sel)
    return da.transpose("step", ...)
