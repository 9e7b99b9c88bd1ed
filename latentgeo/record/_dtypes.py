"""Any torch dtype in: exact host copies of probe sets, and the lossy storage cast watched.

numpy has no bfloat16 and no float8, so ``tensor.numpy()`` fails on them ("Got unsupported
ScalarType BFloat16").  A probe set (inputs or labels) in such a dtype is copied to the host
through a wider dtype that holds every value exactly (``float32`` holds every bfloat16,
float16 and float8 value), and its hash covers that copy and the original dtype's name.

Latents are stored as float16, float32 or float64.  A cast to a narrower range is lossy in a
way that must not pass for the model diverging: float16's largest value is 65504, so a finite
float32 activation of 1e5 becomes ``inf``.  :class:`OverflowCheck` counts, on the device and
before the cast, the finite values the cast will turn into ``±inf`` (those with
``|x| >= max + ulp(max)/2``, the round-to-nearest boundary), and their largest magnitude.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

__all__ = ["OverflowCheck", "dtype_name", "host_array", "overflow_message", "wider_storage"]

#: Storage dtypes of latents, narrowest first.
_STORAGE = ("float16", "float32", "float64")


def dtype_name(dtype: torch.dtype | np.dtype[Any]) -> str:
    """``"bfloat16"`` for ``torch.bfloat16``, ``"float32"`` for ``numpy.float32``."""
    return str(dtype).removeprefix("torch.")


def host_array(value: Any, what: str) -> tuple[np.ndarray, str]:
    """An exact numpy copy of a tensor or array, and the name of its original dtype.

    Parameters
    ----------
    value : torch.Tensor or array-like
        A probe set's inputs or labels.
    what : str
        Named in error messages.

    Returns
    -------
    array : numpy.ndarray
        The values; bfloat16 and float8 tensors are widened to float32, complex32 to
        complex64 (exact), every other dtype is kept.
    dtype : str
        The original dtype's name (``"bfloat16"``, ``"float32"``, ``"int64"``...).

    Raises
    ------
    TypeError
        For a tensor dtype with no exact numpy counterpart (none in torch 2.x).
    """
    if not isinstance(value, torch.Tensor):
        arr = np.asarray(value)
        return arr, dtype_name(arr.dtype)
    t = value.detach()
    name = dtype_name(t.dtype)
    if t.device.type != "cpu":
        t = t.cpu()
    try:
        return t.numpy(), name
    except TypeError:
        pass
    if t.is_floating_point():
        wide = torch.float32 if t.element_size() <= 2 else torch.float64
    elif t.is_complex():
        wide = torch.complex64
    else:
        raise TypeError(f"{what} of dtype {name} have no exact numpy counterpart")
    return t.to(wide).numpy(), name


def wider_storage(dtype: str) -> str | None:
    """The next wider storage dtype (``"float16"`` -> ``"float32"``), or None."""
    i = _STORAGE.index(dtype)
    return _STORAGE[i + 1] if i + 1 < len(_STORAGE) else None


def _max_of(dtype: torch.dtype) -> float:
    if dtype.is_floating_point:
        return float(torch.finfo(dtype).max)
    if dtype == torch.bool:
        return 1.0
    return float(torch.iinfo(dtype).max)


class OverflowCheck:
    """Count the finite values a cast to ``target`` turns into ``±inf``, on the device.

    Parameters
    ----------
    target : torch.dtype
        The floating storage dtype.

    Notes
    -----
    :meth:`needed` says whether a source dtype can overflow ``target`` at all (float32 into
    float16 can, float32 into float32 cannot); only then does :meth:`update` run: one pass
    that zeroes non-finite values of ``|x|`` and two reductions (count past the boundary,
    largest magnitude), accumulated on the device without a host synchronisation.
    """

    def __init__(self, target: torch.dtype) -> None:
        info = torch.finfo(target)
        self.target = target
        self.max = float(info.max)
        # Round to nearest (ties to even) sends |x| >= max + ulp(max) / 2 to inf.
        ulp = 2.0 ** (math.floor(math.log2(info.max)) - round(-math.log2(info.eps)))
        self.boundary = self.max + ulp / 2
        self.count: torch.Tensor | None = None
        self.peak: torch.Tensor | None = None

    def needed(self, source: torch.dtype) -> bool:
        """Whether values of ``source`` can lie beyond the range of the target."""
        return _max_of(source) >= self.boundary

    def update(self, x: torch.Tensor) -> None:
        """Add the values of ``x`` (any shape, a dtype for which :meth:`needed` holds)."""
        a = x.abs() if x.is_floating_point() else x.abs().to(torch.float64)
        a = torch.nan_to_num(a, nan=0.0, posinf=0.0)
        count = (a >= self.boundary).sum()
        peak = a.amax().to(torch.float64)
        if self.count is None or self.peak is None:
            self.count, self.peak = count, peak
        else:
            self.count = self.count + count
            self.peak = torch.maximum(self.peak, peak)


def overflow_message(dtype: str, step: int, layer: str, count: int, peak: Any) -> str:
    """The warning for finite latents the storage cast to ``dtype`` made infinite: the layer,
    step, count, largest magnitude against the dtype's range, and what to choose instead."""
    limit = float(torch.finfo(getattr(torch, dtype)).max)
    wider = wider_storage(dtype)
    instead = f"record with dtype={wider!r}" if wider is not None else "scale the layer's values"
    return (
        f"storage overflow at step {step}, layer {layer!r}: {count} finite latents are "
        f"beyond the range of the storage dtype {dtype} (largest |value| "
        f"{float(peak):.4g} > {limit:.6g}) and were stored as non-finite (inf) by the cast; "
        f"the model itself produced finite values. They are counted in "
        f"'overflow_{layer}', apart from 'nonfinite_{layer}'. To keep them, {instead}"
    )
