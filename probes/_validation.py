"""Input checks shared by the probes: array conversion, shapes, finiteness, splits."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

__all__ = [
    "as_orbit_tensor",
    "check_group_order",
    "element_index",
    "irrep_type_dim",
    "train_test_indices",
]

_FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def _resolve_dtype(dtype: Any) -> torch.dtype:
    if isinstance(dtype, torch.dtype):
        if dtype not in (torch.float32, torch.float64):
            raise ValueError(f"dtype must be torch.float32 or torch.float64, got {dtype!r}")
        return dtype
    if dtype in ("float32", np.float32):
        return torch.float32
    if dtype in ("float64", np.float64, float):
        return torch.float64
    raise TypeError(f"dtype must be torch.float32 or torch.float64, got {dtype!r}")


def as_orbit_tensor(
    Z: Any,
    *,
    dtype: Any = torch.float64,
    device: Any = None,
    name: str = "Z",
    min_samples: int = 1,
) -> torch.Tensor:
    """Convert orbit latents to a float tensor of shape ``(n_elements, n_samples, n_units)``.

    Parameters
    ----------
    Z : array-like or torch.Tensor of shape (n_elements, n_samples, n_units)
        Latents of every group element applied to every probe input; ``Z[identity]`` holds the
        untransformed inputs.  numpy arrays, torch tensors and xarray DataArrays are accepted
        (a DataArray with dims named ``element`` and ``sample`` in any order).
    dtype : torch.dtype
        Computation dtype (float64 by default: the probes are analysis, not training).
    device : torch.device or str, optional
        Where to compute; defaults to the tensor's own device (CPU for numpy input).
    name : str
        Name of the argument, used in error messages.
    min_samples : int
        Smallest number of samples accepted.

    Returns
    -------
    torch.Tensor of shape (n_elements, n_samples, n_units)

    Raises
    ------
    TypeError
        If ``Z`` is not numeric.
    ValueError
        If ``Z`` is not 3-D, is empty, or holds NaN or Inf (the count and the first offending
        element are reported; non-finite latents are rejected, not masked).
    """
    dtype = _resolve_dtype(dtype)
    if hasattr(Z, "data") and hasattr(Z, "dims") and not isinstance(Z, torch.Tensor):
        # xarray.DataArray (possibly dask-backed).  Named element and sample dims are put in
        # element-major order, so a sample-major array (what scikit-learn's cross-validation
        # splits along axis 0) reads the same as the store's layout.
        if "element" in Z.dims and "sample" in Z.dims:
            Z = Z.transpose("element", "sample", ...)
        Z = np.asarray(Z.data)
    if isinstance(Z, torch.Tensor):
        if Z.is_complex() or Z.dtype == torch.bool:
            raise TypeError(f"{name} must hold real numbers, got a tensor of dtype {Z.dtype}")
        t = Z.detach().to(device=device if device is not None else Z.device, dtype=dtype)
    else:
        arr = np.asarray(Z)
        if arr.dtype.kind not in "fiu":
            raise TypeError(f"{name} must hold real numbers, got an array of dtype {arr.dtype!r}")
        if not arr.flags.writeable:  # torch refuses to wrap read-only memory silently
            arr = arr.copy()
        t = torch.as_tensor(arr).to(device=device, dtype=dtype)
    if t.ndim != 3:
        raise ValueError(
            f"{name} must have shape (n_elements, n_samples, n_units), got shape {tuple(t.shape)}"
        )
    if t.shape[0] < 1 or t.shape[2] < 1:
        raise ValueError(f"{name} must be non-empty, got shape {tuple(t.shape)}")
    if t.shape[1] < min_samples:
        raise ValueError(f"{name} has {t.shape[1]} samples; at least {min_samples} are needed here")
    # One reduction first (NaN and Inf propagate through a sum); the element-wise scan that
    # locates the culprits runs only when it fails (or the sum overflows).
    if bool(torch.isfinite(t.sum())):
        return t
    finite = torch.isfinite(t)
    if not bool(finite.all()):
        bad = (~finite).sum().item()
        first = int((~finite).reshape(t.shape[0], -1).any(dim=1).nonzero()[0, 0])
        raise ValueError(
            f"{name} holds {bad} non-finite values (NaN or Inf), the first in element "
            f"{first}; probes need finite latents (drop or impute those samples first)"
        )
    return t


def check_group_order(n_elements: int, group: Any, name: str = "Z") -> None:
    """Raise if the element axis does not match the group's order."""
    if not group.is_finite:
        raise TypeError(f"group must be a finite group with an `order`, got {group!r}")
    order = group.order
    if n_elements != order:
        raise ValueError(
            f"{name} has {n_elements} elements along axis 0 but group {group!r} has order "
            f"{order}; the element axis must list every group element in the group's order"
        )


def element_index(group: Any, element: Any) -> int:
    """Index of an element given as an index or a name."""
    if isinstance(element, (int, np.integer)) and not isinstance(element, bool):
        if not 0 <= int(element) < group.order:
            raise ValueError(f"element index {element!r} out of range for {group!r}")
        return int(element)
    names = list(getattr(group, "elements", ()))
    if element in names:
        return names.index(element)
    raise ValueError(f"unknown element {element!r} of {group!r}; valid names are {names!r}")


def irrep_type_dim(irrep: Any) -> int:
    """Dimension of the commutant of a real irrep: 1 (real), 2 (complex), 4 (quaternionic)."""
    kind = getattr(irrep, "type", "real")
    try:
        return {"real": 1, "complex": 2, "quaternionic": 4}[kind]
    except KeyError:
        raise ValueError(
            f"irrep {getattr(irrep, 'name', irrep)!r} has type {kind!r}; expected one of "
            "'real', 'complex', 'quaternionic'"
        ) from None


def train_test_indices(
    n_samples: int, test_size: float | int, random_state: int | None
) -> tuple[np.ndarray, np.ndarray]:
    """Random split of sample indices into train and held-out parts.

    Both parts need at least two samples: one to centre and one to score.
    """
    if isinstance(test_size, bool) or not isinstance(test_size, (int, float, np.number)):
        raise TypeError(f"test_size must be a float in (0, 1) or an int, got {test_size!r}")
    if isinstance(test_size, (float, np.floating)):
        if not 0.0 < float(test_size) < 1.0:
            raise ValueError(f"test_size must be in (0, 1) when a float, got {test_size!r}")
        n_test = int(np.ceil(float(test_size) * n_samples))
    else:
        n_test = int(test_size)
    n_train = n_samples - n_test
    if n_test < 2 or n_train < 2:
        raise ValueError(
            f"cannot split {n_samples} samples with test_size={test_size!r} into a training "
            f"part and a held-out part of at least 2 samples each (got {n_train} and {n_test})"
        )
    perm = np.random.default_rng(random_state).permutation(n_samples)
    return np.sort(perm[n_test:]), np.sort(perm[:n_test])


def as_index_list(
    values: Sequence[Any] | str | int | np.integer | None, valid: Sequence[Any], what: str
) -> list[Any]:
    """Check requested names against the valid ones, listing the valid ones on error."""
    if values is None:
        return list(valid)
    if isinstance(values, (str, int, np.integer)):
        values = [values]
    out = list(values)
    valid_list = list(valid)
    missing = [v for v in out if v not in valid_list]
    if missing:
        shown = valid_list if len(valid_list) <= 20 else [*valid_list[:20], "..."]
        raise ValueError(f"unknown {what} {missing!r}; valid {what}s are {shown!r}")
    return out


def float_dtype_of(t: torch.Tensor) -> torch.dtype:
    return t.dtype if t.dtype in _FLOAT_DTYPES else torch.float64
