"""Distances by metric name, and T x T distance matrices in one batched call."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import torch

from latentgeo._validate import check_int
from latentgeo.geometry._common import as_tensor, check_choice, check_finite, check_orthonormal
from latentgeo.geometry._rotation import _check_orthogonal, orthogonal_distance, sphere_distance
from latentgeo.geometry._shape import cka_distance, procrustes_distance
from latentgeo.geometry._spd import _check_spd_input, _sym_function, spd_distance
from latentgeo.geometry._subspace import (
    GRASSMANN_CONVENTIONS,
    _angles_unchecked,
    _grassmann_from_angles,
)


def _grassmann(a: torch.Tensor, b: torch.Tensor, convention: str = "arc") -> torch.Tensor:
    return _grassmann_from_angles(_angles_unchecked(a, b), convention)


# Number of trailing dims that make up one point, per metric.
_POINT_NDIM = {
    "grassmann": 2,
    "spd_affine": 2,
    "spd_log_euclidean": 2,
    "bures_wasserstein": 2,
    "orthogonal": 2,
    "sphere": 1,
    "procrustes": 2,
    "cka": 2,
    "euclidean": 1,
}

_ALIASES = {
    "spd_bures_wasserstein": "bures_wasserstein",
    "affine": "spd_affine",
    "log_euclidean": "spd_log_euclidean",
}

METRICS = tuple(_POINT_NDIM)


def resolve_metric(metric: str) -> str:
    """The canonical name of a metric of :data:`METRICS` (aliases such as ``"affine"`` resolved).

    Raises
    ------
    TypeError
        If ``metric`` is not a str.
    ValueError
        If it names no metric.
    """
    if not isinstance(metric, str):
        raise TypeError(f"metric must be a name or a callable, got {type(metric).__name__}")
    name = _ALIASES.get(metric, metric)
    if name not in _POINT_NDIM:
        raise ValueError(
            f"metric must be one of {METRICS + tuple(_ALIASES)!r} or a callable, got {metric!r}"
        )
    return name


def check_points(P: torch.Tensor, metric: str, name: str = "points") -> torch.Tensor:
    """Check points of ``metric``'s space once (so loops over pairs skip per-pair checks).

    Parameters
    ----------
    P : torch.Tensor of shape ``(..., *point_shape)``
        Points: ``(..., d, k)`` orthonormal frames for ``"grassmann"``, ``(..., n, n)``
        orthogonal or SPD matrices, ``(..., n)`` vectors for ``"sphere"``/``"euclidean"``.
    metric : str
        A canonical name (see :func:`resolve_metric`).
    name : str
        The argument's name, for messages.

    Returns
    -------
    torch.Tensor
        ``P`` (symmetrised for the SPD metrics).

    Raises
    ------
    ValueError
        If the points have too few dims, are not finite, or are off the space.
    """
    ndim = _POINT_NDIM[metric]
    if P.ndim < ndim:
        raise ValueError(
            f"{name} must have at least {ndim} dims for metric {metric!r}, got shape "
            f"{tuple(P.shape)!r}"
        )
    check_finite(P, name)
    if metric == "grassmann":
        check_orthonormal(P, name)
    elif metric == "orthogonal":
        _check_orthogonal(P, name)
    elif metric in ("spd_affine", "spd_log_euclidean", "bures_wasserstein"):
        P = _check_spd_input(P, name)
    return P


def _pair_function(metric: str, options: dict[str, Any]) -> Callable:
    if metric == "grassmann":
        unknown = set(options) - {"convention"}
        if unknown:
            raise TypeError(f"unknown options {sorted(unknown)!r} for metric 'grassmann'")
        convention = options.get("convention", "arc")
        check_choice(convention, "convention", GRASSMANN_CONVENTIONS)
        return partial(_grassmann, convention=convention)
    if metric in ("spd_affine", "bures_wasserstein"):
        return partial(spd_distance, metric=metric.removeprefix("spd_"))
    if metric == "orthogonal":
        return partial(orthogonal_distance, check=False)
    if metric == "sphere":
        return sphere_distance
    if metric == "procrustes":
        return partial(procrustes_distance, **options)
    if metric == "cka":
        return cka_distance
    return _euclidean_pairs


def _euclidean_pairs(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.linalg.vector_norm(a - b, dim=-1)


def distance(a: Any, b: Any, metric: str | Callable, **options: Any) -> torch.Tensor:
    """Distance between (batches of) points under a named metric.

    Parameters
    ----------
    a, b : array of shape ``(..., *point_shape)``
        Points; leading dims broadcast.
    metric : str or callable
        One of ``"grassmann"`` (orthonormal bases (d, k); option ``convention``),
        ``"spd_affine"``, ``"spd_log_euclidean"``, ``"bures_wasserstein"`` (SPD (k, k)),
        ``"orthogonal"`` ((k, k)), ``"sphere"`` ((n,)), ``"procrustes"`` and ``"cka"``
        (representations (n_samples, n_units)), ``"euclidean"`` ((n,)); or a callable
        ``f(a, b) -> tensor``.
    **options
        Passed to the metric (e.g. ``convention="geomstats"`` for ``"grassmann"``).

    Returns
    -------
    dist : tensor of shape (...)
    """
    if callable(metric):
        return torch.as_tensor(metric(a, b, **options))
    name = resolve_metric(metric)
    ta = check_points(as_tensor(a, "a"), name, "a")
    tb = check_points(as_tensor(b, "b", device=ta.device), name, "b")
    dtype = torch.promote_types(ta.dtype, tb.dtype)
    ta, tb = ta.to(dtype), tb.to(dtype)
    if name == "spd_log_euclidean":
        return torch.linalg.matrix_norm(
            _sym_function(ta, torch.log, "a") - _sym_function(tb, torch.log, "b")
        )
    return _pair_function(name, options)(ta, tb)


def pairwise_distances(
    points: Any,
    metric: str | Callable,
    other: Any = None,
    *,
    chunk_size: int | None = None,
    **options: Any,
) -> torch.Tensor:
    """All pairwise distances between the points of a trajectory, batched.

    Parameters
    ----------
    points : array of shape ``(T, *point_shape)``
        E.g. (T, d, k) orthonormal bases for ``"grassmann"``, (T, k, k) for SPD metrics.
    metric : str or callable
        A name accepted by :func:`distance`, or ``f(a, b) -> scalar`` called once per pair.
    other : array of shape ``(S, *point_shape)``, optional
        Second set of points: the result is then the ``T x S`` cross-distance matrix.
    chunk_size : int, optional
        Number of pairs evaluated per batched call (bounds memory); by default about 32 MB of
        gathered points per call.
    **options
        Passed to the metric (e.g. ``convention="geomstats"``).

    Returns
    -------
    D : tensor of shape (T, T) or (T, S)
        Symmetric with zero diagonal when ``other`` is None (only ``i < j`` is computed).
        Log-Euclidean distances are Euclidean distances between matrix logarithms, taken once
        per point.

    Raises
    ------
    TypeError, ValueError
        A ``chunk_size`` that is not a positive int (checked for every metric), points of
        the wrong shape or outside the metric's manifold.
    """
    # Checked before any path is taken: a callable metric ignores chunk_size, and a negative
    # one would otherwise skip every pair and return zeros.
    if chunk_size is not None:
        chunk_size = check_int(chunk_size, "chunk_size", minimum=1)
    if callable(metric):
        return _pairwise_callable(points, metric, other, options)
    name = resolve_metric(metric)
    P = check_points(as_tensor(points, "points"), name, "points")
    if P.ndim != _POINT_NDIM[name] + 1:
        raise ValueError(
            f"points must have shape (T, *point_shape) with {_POINT_NDIM[name]}-d points for "
            f"metric {name!r}, got shape {tuple(P.shape)!r}"
        )
    Q = None
    if other is not None:
        Q = check_points(as_tensor(other, "other", device=P.device), name, "other")
        if Q.shape[1:] != P.shape[1:]:
            raise ValueError(
                f"other must hold points of shape {tuple(P.shape[1:])!r}, got {tuple(Q.shape)!r}"
            )
        dtype = torch.promote_types(P.dtype, Q.dtype)
        P, Q = P.to(dtype), Q.to(dtype)
    fn = _pair_function(name, options)
    if name == "spd_log_euclidean":
        # The log-Euclidean metric is Euclidean after one matrix log per point.
        P = _sym_function(P, torch.log, "points").flatten(1)
        Q = None if Q is None else _sym_function(Q, torch.log, "other").flatten(1)
        fn = _euclidean_pairs
    elif name == "euclidean":
        fn = _euclidean_pairs
    T = P.shape[0]
    if chunk_size is None:
        chunk_size = max(1, (1 << 22) // max(1, P[0].numel()))
    if Q is None:
        i, j = torch.triu_indices(T, T, offset=1, device=P.device)
    else:
        S = Q.shape[0]
        i = torch.arange(T, device=P.device).repeat_interleave(S)
        j = torch.arange(S, device=P.device).repeat(T)
    B = P if Q is None else Q
    values = torch.empty(i.numel(), dtype=P.dtype, device=P.device)
    for start in range(0, i.numel(), chunk_size):
        sl = slice(start, start + chunk_size)
        values[sl] = fn(P[i[sl]], B[j[sl]])
    if Q is not None:
        return values.reshape(T, Q.shape[0])
    D = torch.zeros(T, T, dtype=P.dtype, device=P.device)
    D[i, j] = values
    D[j, i] = values
    return D


def _pairwise_callable(points: Any, metric: Callable, other: Any, options: dict) -> torch.Tensor:
    P = points
    B = P if other is None else other
    T, S = len(P), len(B)
    D = torch.zeros(T, S, dtype=torch.float64)
    for a in range(T):
        for b in range(S):
            if other is None and b <= a:
                continue
            D[a, b] = float(metric(P[a], B[b], **options))
    if other is None:
        D = D + D.T
    return D
