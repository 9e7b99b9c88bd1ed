"""Input conversion and validation shared by the geometry closed forms."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

# Floating dtypes kept as given; anything else (half precision, integers, lists) is promoted to
# float64, the analysis default: distances between nearby checkpoints are small differences of
# large numbers, so float16/bfloat16 latents must not be compared in their storage precision.
_KEPT_DTYPES = (torch.float32, torch.float64)


def as_tensor(
    x: Any,
    name: str,
    *,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
    min_ndim: int = 0,
) -> torch.Tensor:
    """Convert ``x`` to a floating torch tensor, with a clear error when it cannot be.

    Parameters
    ----------
    x : array-like
        Tensor, numpy array, xarray object or nested sequence.
    name : str
        Argument name used in error messages.
    dtype : torch.dtype, optional
        Target dtype. By default float32/float64 inputs keep their dtype and everything else
        becomes float64.
    device : torch.device or str, optional
        Target device; by default the input's device (CPU for non-tensors).
    min_ndim : int
        Minimum number of dimensions required.
    """
    if hasattr(x, "values") and hasattr(x, "dims"):  # xarray.DataArray
        x = x.values
    if isinstance(x, torch.Tensor):
        t = x
    else:
        try:
            arr = np.asarray(x)
        except Exception as err:  # pragma: no cover - numpy's own message is kept
            raise TypeError(f"{name} must be array-like, got {type(x).__name__}") from err
        if arr.dtype == object or not (
            np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_
        ):
            raise TypeError(f"{name} must be a numeric array, got dtype {arr.dtype!r}")
        t = torch.from_numpy(np.ascontiguousarray(arr))
    if t.is_complex():
        raise TypeError(f"{name} must be real, got complex dtype {t.dtype!r}")
    if dtype is None:
        dtype = t.dtype if t.dtype in _KEPT_DTYPES else torch.float64
    t = t.to(dtype=dtype, device=device)
    if t.ndim < min_ndim:
        raise ValueError(
            f"{name} must have at least {min_ndim} dimensions, got shape {tuple(t.shape)!r}"
        )
    return t


def as_pair(
    a: Any, b: Any, names: tuple[str, str], *, min_ndim: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Convert two inputs to tensors of a common floating dtype on the first one's device."""
    ta = as_tensor(a, names[0], min_ndim=min_ndim)
    tb = as_tensor(b, names[1], min_ndim=min_ndim, device=ta.device)
    dtype = torch.promote_types(ta.dtype, tb.dtype)
    return ta.to(dtype), tb.to(dtype)


def check_finite(t: torch.Tensor, name: str) -> None:
    """Raise ValueError when ``t`` holds NaN or infinity."""
    if not bool(torch.isfinite(t).all()):
        raise ValueError(f"{name} contains NaN or infinite values")


def default_tol(dtype: torch.dtype) -> float:
    """Tolerance for structural checks (orthonormality, symmetry): sqrt of the dtype's eps."""
    return float(torch.finfo(dtype).eps) ** 0.5


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


def check_choice(value: Any, name: str, allowed: tuple[str, ...]) -> str:
    """Return ``value`` if it is one of ``allowed``, else raise a ValueError naming both."""
    if not isinstance(value, str) or value not in allowed:
        raise ValueError(f"{name} must be one of {allowed!r}, got {value!r}")
    return value


def check_positive_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)
