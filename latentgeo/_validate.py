"""The one validation vocabulary of latentgeo, probes and trajectories (private core).

A wrong *type* is a ``TypeError``, a wrong *value* a ``ValueError``, everywhere; every message
names the argument, the value given and what was expected.  One tolerance policy,
:func:`default_tolerance`, returns ``(rtol, atol)`` in that order.  Integers are checked with
:func:`check_int` (``bool`` is not an int), reals with :func:`check_real`, choices with
:func:`check_choice`, arrays with :func:`as_tensor` and orbit latents with
:func:`as_orbit_tensor`.

This module imports nothing from latentgeo, and torch only inside the functions that convert
tensors (``import latentgeo.store`` stays light): every package may use it.
"""

from __future__ import annotations

import numbers
import sys
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import torch

__all__ = [
    "as_orbit_tensor",
    "as_tensor",
    "check_choice",
    "check_finite",
    "check_group_order",
    "check_int",
    "check_real",
    "default_tolerance",
    "resolve_dtype",
]


def check_int(
    value: Any, name: str, *, minimum: int | None = None, maximum: int | None = None
) -> int:
    """``value`` as an ``int``, checked.

    Parameters
    ----------
    value : int or numpy integer
        ``bool`` is refused (``True`` is not a count).
    name : str
        The argument's name, for the message.
    minimum, maximum : int, optional
        Inclusive bounds.

    Raises
    ------
    TypeError
        If ``value`` is not an integer.
    ValueError
        If it is outside ``[minimum, maximum]``.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {value!r} ({type(value).__name__})")
    value = int(value)
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        if maximum is None:
            allowed = f"an int >= {minimum}"
        elif minimum is None:
            allowed = f"an int <= {maximum}"
        else:
            allowed = f"an int in [{minimum}, {maximum}]"
        raise ValueError(f"{name} must be {allowed}, got {value!r}")
    return value


def check_real(
    value: Any,
    name: str,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    open_minimum: bool = False,
    open_maximum: bool = False,
) -> float:
    """``value`` as a finite ``float``, checked.

    Parameters
    ----------
    value : real number
        ``bool`` is refused; NaN and infinity are a ``ValueError``.
    name : str
    minimum, maximum : float, optional
        Bounds, inclusive unless ``open_minimum``/``open_maximum``.

    Raises
    ------
    TypeError
        If ``value`` is not a real number.
    ValueError
        If it is not finite or out of bounds.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r} ({type(value).__name__})")
    value = float(value)
    if not np.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value!r}")
    low = minimum is not None and (value <= minimum if open_minimum else value < minimum)
    high = maximum is not None and (value >= maximum if open_maximum else value > maximum)
    if low or high:
        lo = "" if minimum is None else f"{'(' if open_minimum else '['}{minimum}"
        hi = "" if maximum is None else f"{maximum}{')' if open_maximum else ']'}"
        if minimum is not None and maximum is not None:
            allowed = f"in {lo}, {hi}"
        elif minimum is not None:
            allowed = f"{'>' if open_minimum else '>='} {minimum}"
        else:
            allowed = f"{'<' if open_maximum else '<='} {maximum}"
        raise ValueError(f"{name} must be {allowed}, got {value!r}")
    return value


def check_choice(value: Any, name: str, allowed: Iterable[Any]) -> Any:
    """``value`` if it is one of ``allowed``.

    Raises
    ------
    TypeError
        If ``allowed`` are strings and ``value`` is not a str.
    ValueError
        If ``value`` is not among ``allowed`` (both are named).
    """
    allowed = tuple(allowed)
    if all(isinstance(a, str) for a in allowed) and not isinstance(value, str):
        raise TypeError(
            f"{name} must be one of {allowed!r} (a str), got {value!r} ({type(value).__name__})"
        )
    if value not in allowed:
        raise ValueError(f"{name} must be one of {allowed!r}, got {value!r}")
    return value


#: ``(rtol, atol)`` per floating dtype, after scikit-learn's and torch.testing's conventions.
_TOLERANCES = {
    "float16": (1e-3, 1e-3),
    "bfloat16": (1.6e-2, 1e-2),
    "float32": (1e-4, 1e-5),
    "float64": (1e-7, 1e-10),
}


def default_tolerance(dtype: Any) -> tuple[float, float]:
    """``(rtol, atol)`` for comparing values computed in ``dtype`` — the one policy.

    Parameters
    ----------
    dtype : torch.dtype, numpy dtype or str
        A floating dtype (``float16``, ``bfloat16``, ``float32``, ``float64``); integer and
        bool dtypes compare exactly, ``(0.0, 0.0)``.

    Returns
    -------
    (rtol, atol) : tuple of float

    Raises
    ------
    TypeError
        For any other dtype (e.g. complex).
    """
    torch = sys.modules.get("torch")  # a torch dtype exists only once torch is imported
    if torch is not None and isinstance(dtype, torch.dtype):
        name = str(dtype).removeprefix("torch.")
    else:
        try:
            name = np.dtype(dtype).name
        except TypeError:  # e.g. "bfloat16", which numpy does not know
            name = str(dtype)
    if name in _TOLERANCES:
        return _TOLERANCES[name]
    kind: str
    try:
        kind = np.dtype(name).kind
    except TypeError:
        kind = ""
    if kind in "biu" and kind:
        return 0.0, 0.0
    raise TypeError(
        f"no default tolerance for dtype {dtype!r}; expected a floating dtype "
        f"({sorted(_TOLERANCES)!r}) or an integer one, or pass rtol and atol"
    )


# Floating dtypes kept as given; anything else (half precision, integers, lists) is promoted to
# float64, the analysis default: distances between nearby checkpoints are small differences of
# large numbers, so float16/bfloat16 latents must not be compared in their storage precision.
_KEPT_DTYPES = ("float32", "float64")


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
    import torch

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
        kept = str(t.dtype).removeprefix("torch.") in _KEPT_DTYPES
        dtype = t.dtype if kept else torch.float64
    t = t.to(dtype=dtype, device=device)
    if t.ndim < min_ndim:
        raise ValueError(
            f"{name} must have at least {min_ndim} dimensions, got shape {tuple(t.shape)!r}"
        )
    return t


def check_finite(t: torch.Tensor, name: str) -> None:
    """Raise ValueError when ``t`` holds NaN or infinity."""
    import torch

    if not bool(torch.isfinite(t).all()):
        raise ValueError(f"{name} contains NaN or infinite values")


def resolve_dtype(dtype: Any) -> torch.dtype:
    """The computation dtype: ``torch.float32`` or ``torch.float64`` (or their names).

    Raises
    ------
    ValueError
        For another torch dtype.
    TypeError
        For anything else.
    """
    import torch

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
    dtype: Any = "float64",
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
    import torch

    dtype = resolve_dtype(dtype)
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
