"""Input conversion and validation shared by the geometry closed forms."""

from __future__ import annotations

from typing import Any

import torch

# The one validation vocabulary; re-exported here for the geometry modules.
from latentgeo._validate import as_tensor, check_choice, check_finite, default_tolerance

__all__ = [
    "as_pair",
    "as_tensor",
    "check_choice",
    "check_finite",
    "check_orthonormal",
    "check_square",
    "default_tol",
]


def as_pair(
    a: Any, b: Any, names: tuple[str, str], *, min_ndim: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Convert two inputs to tensors of a common floating dtype on the first one's device."""
    ta = as_tensor(a, names[0], min_ndim=min_ndim)
    tb = as_tensor(b, names[1], min_ndim=min_ndim, device=ta.device)
    dtype = torch.promote_types(ta.dtype, tb.dtype)
    return ta.to(dtype), tb.to(dtype)


def default_tol(dtype: torch.dtype) -> float:
    """Tolerance for structural checks of unit-scale properties (orthonormality, symmetry):
    the relative tolerance of the one policy, :func:`latentgeo._validate.default_tolerance`."""
    return default_tolerance(dtype)[0]


def check_orthonormal(U: torch.Tensor, name: str) -> None:
    """Raise ValueError unless the columns of ``U`` (..., d, k) are orthonormal."""
    k = U.shape[-1]
    if k > U.shape[-2]:
        raise ValueError(
            f"{name} must have at most as many columns as rows (..., d, k) with k <= d, "
            f"got shape {tuple(U.shape)!r}"
        )
    gram = U.mT @ U
    err = (gram - torch.eye(k, dtype=U.dtype, device=U.device)).abs()
    worst = float(err.max()) if err.numel() else 0.0
    tol = default_tol(U.dtype) * max(1.0, k**0.5)
    if not worst <= tol:
        raise ValueError(
            f"{name} must have orthonormal columns (U^T U = I); max deviation {worst:.3g} "
            f"exceeds {tol:.3g}. Orthonormalise it first, e.g. with torch.linalg.qr."
        )


def check_square(A: torch.Tensor, name: str) -> None:
    if A.ndim < 2 or A.shape[-1] != A.shape[-2]:
        raise ValueError(f"{name} must be a (..., n, n) matrix stack, got shape {tuple(A.shape)!r}")
