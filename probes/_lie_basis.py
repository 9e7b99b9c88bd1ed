"""Lie-algebra bases: matrices and names, structure constants, one-parameter elements and
the coordinates of group elements (principal logarithms projected on the basis)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

__all__ = [
    "coordinates",
    "lie_algebra_basis",
    "one_parameter_elements",
    "structure_constants",
]

_COORD_ATOL = 1e-12


def lie_algebra_basis(basis: Any) -> tuple[np.ndarray, tuple[str, ...]]:
    """Resolve a Lie algebra basis to matrices and generator names.

    Parameters
    ----------
    basis : {"so3", "so2"} or array-like of shape (k, m, m)
        ``"so3"``: the standard so(3) basis ``(X_i)_{jk} = −ε_{ijk}`` (names ``L_x, L_y,
        L_z``, see :func:`latentgeo.actions.so3_basis`); ``"so2"``: ``[[0, −1], [1, 0]]``
        (name ``L``); otherwise ``k`` linearly independent square matrices (names ``L_0``...).

    Returns
    -------
    matrices : float64 ndarray of shape (k, m, m)
    names : tuple of str

    Raises
    ------
    ValueError
        Unknown name, wrong shape, non-finite or linearly dependent matrices.
    """
    if isinstance(basis, str):
        if basis == "so3":
            from latentgeo.actions import so3_basis

            return so3_basis(), ("L_x", "L_y", "L_z")
        if basis == "so2":
            return np.array([[[0.0, -1.0], [1.0, 0.0]]]), ("L",)
        raise ValueError(
            f"basis must be 'so3', 'so2' or an array of shape (k, m, m), got {basis!r}"
        )
    try:
        B = np.asarray(basis, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise TypeError(f"basis must be numeric of shape (k, m, m), got {basis!r}") from err
    if B.ndim != 3 or B.shape[1] != B.shape[2] or B.shape[0] < 1:
        raise ValueError(f"basis must have shape (k, m, m) with k >= 1, got {B.shape}")
    if not np.all(np.isfinite(B)):
        raise ValueError("basis must be finite")
    flat = B.reshape(B.shape[0], -1)
    if np.linalg.matrix_rank(flat) < B.shape[0]:
        raise ValueError(f"the {B.shape[0]} basis matrices are linearly dependent")
    return B, tuple(f"L_{i}" for i in range(B.shape[0]))


def structure_constants(basis: Any) -> np.ndarray:
    """Structure constants ``c[i, j, k]`` with ``[X_i, X_j] = Σ_k c[i, j, k] X_k``.

    Parameters
    ----------
    basis : {"so3", "so2"} or array-like of shape (k, m, m)

    Returns
    -------
    float64 ndarray of shape (k, k, k)

    Raises
    ------
    ValueError
        If the span of the basis is not closed under the commutator (not a Lie algebra).
    """
    B, _ = lie_algebra_basis(basis)
    k = B.shape[0]
    flat = B.reshape(k, -1).T  # (m², k)
    brackets = np.einsum("iab,jbc->ijac", B, B) - np.einsum("jab,ibc->ijac", B, B)
    target = brackets.reshape(k * k, -1).T  # (m², k²)
    coef, *_ = np.linalg.lstsq(flat, target, rcond=None)
    resid = float(np.linalg.norm(flat @ coef - target)) / max(float(np.linalg.norm(target)), 1.0)
    if resid > 1e-9:
        raise ValueError(
            f"the basis is not closed under the commutator (relative residual {resid:.2e}): "
            "its span is not a Lie algebra"
        )
    return coef.T.reshape(k, k, k)


def one_parameter_elements(basis: Any, ts: Any) -> tuple[np.ndarray, np.ndarray]:
    """Group elements ``exp(t X_i)`` for every basis element and parameter, identity first.

    Use them as the elements of an orbit (e.g. an action over chosen rotations) to record the
    latents :class:`LieAlgebraProbe` fits.

    Parameters
    ----------
    basis : {"so3", "so2"} or array-like of shape (k, m, m)
    ts : array-like of shape (n_t,)
        Non-zero parameters (radians for rotations).

    Returns
    -------
    elements : float64 ndarray of shape (1 + k * n_t, m, m)
        ``elements[0]`` is the identity, then ``exp(t X_0)`` for every ``t``, then ``X_1``...
    coordinates : float64 ndarray of shape (1 + k * n_t, k)
        The matching Lie-algebra coordinates (row 0 zero).
    """
    B, _ = lie_algebra_basis(basis)
    t = np.asarray(ts, dtype=np.float64).ravel()
    if t.size == 0 or not np.all(np.isfinite(t)) or np.any(t == 0):
        raise ValueError(f"ts must be finite and non-zero (0 is added as the identity), got {ts!r}")
    k = B.shape[0]
    coords = np.zeros((1 + k * t.size, k))
    for i in range(k):
        coords[1 + i * t.size : 1 + (i + 1) * t.size, i] = t
    A = torch.as_tensor(np.einsum("ni,iab->nab", coords, B))
    return torch.linalg.matrix_exp(A).numpy(), coords


def coordinates(elements: Any, B: np.ndarray) -> np.ndarray:
    """Lie-algebra coordinates of each element: given directly (n, k) or by the principal
    logarithm of group matrices (n, m, m), projected on the basis."""
    k, m = B.shape[0], B.shape[1]
    arr = np.asarray(elements, dtype=np.float64)
    if not np.all(np.isfinite(arr)):
        raise ValueError("elements must be finite")
    if arr.ndim == 2:
        if arr.shape[1] != k:
            raise ValueError(
                f"coordinates must have shape (n_elements, {k}) for a basis of {k} elements, "
                f"got {arr.shape}"
            )
        return arr
    if arr.ndim != 3 or arr.shape[1:] != (m, m):
        raise ValueError(
            f"elements must be group matrices of shape (n_elements, {m}, {m}) or Lie-algebra "
            f"coordinates of shape (n_elements, {k}), got {arr.shape}"
        )
    from scipy.linalg import logm

    logs_c = np.stack([logm(g) for g in arr])
    bad_log = np.flatnonzero(
        ~np.all(np.isfinite(logs_c), axis=(1, 2))
        | (np.abs(np.imag(logs_c)).max(axis=(1, 2)) > 1e-8)
    )
    if bad_log.size:
        raise ValueError(
            f"elements {bad_log[:5].tolist()} have no real principal logarithm (e.g. a "
            "reflection, det < 0): they are not exponentials of a real Lie algebra"
        )
    logs = np.real(logs_c)
    flat = B.reshape(k, -1).T
    coef, *_ = np.linalg.lstsq(flat, logs.reshape(len(arr), -1).T, rcond=None)
    resid = np.linalg.norm(flat @ coef - logs.reshape(len(arr), -1).T, axis=0)
    bad = np.flatnonzero(resid > 1e-8 * np.maximum(1.0, np.linalg.norm(logs, axis=(1, 2))))
    if bad.size:
        raise ValueError(
            f"elements {bad[:5].tolist()} are not exponentials of the span of the basis "
            f"(log residual {resid[bad[0]]:.2e}); pass elements of the group the basis spans"
        )
    coef[np.abs(coef) < _COORD_ATOL] = 0.0
    return coef.T
