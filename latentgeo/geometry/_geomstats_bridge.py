"""The bridge to geomstats: its import, its backend's global state, and array conversions.

This is the only module of latentgeo that imports geomstats, and it does so lazily (on the first
manifold built), so ``import latentgeo.geometry`` stays light. Two hazards are handled here:

* geomstats 2.8.0 (the newest release) imports ``numpy.trapz``, which numpy 2.4 removed. Right
  before importing geomstats we alias ``numpy.trapz = numpy.trapezoid`` -- only when the name is
  missing, so an older numpy is left as it is.
* geomstats picks its array backend from the ``GEOMSTATS_BACKEND`` environment variable at
  import, and its pytorch backend calls ``torch.set_default_dtype(torch.float64)`` process-wide,
  which would silently change the dtype of the user's model. We never set that variable (the
  default backend is numpy); if the user set it, we leave it alone, but we restore torch's
  default dtype after importing and after every geomstats call (:func:`geomstats_call`).

Points are exchanged as torch tensors in latentgeo's representation; geomstats sees float64
arrays of its active backend (:func:`to_gs`, :func:`from_gs`).  The manifolds built on this
are in :mod:`latentgeo.geometry._manifold` (the shared machinery) and
:mod:`latentgeo.geometry._manifolds` (Grassmann, SPD, SO, Sphere).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

__all__ = ["from_gs", "geomstats_backend", "geomstats_call", "to_gs"]


@contextlib.contextmanager
def _torch_default_dtype_kept() -> Iterator[None]:
    # Undo, never cause: geomstats' pytorch backend sets torch's default dtype to float64.
    saved = torch.get_default_dtype()
    try:
        yield
    finally:
        if torch.get_default_dtype() != saved:
            torch.set_default_dtype(saved)


@contextlib.contextmanager
def geomstats_call() -> Iterator[None]:
    """Run geomstats code, leaving torch's default dtype as it was found.

    geomstats' pytorch backend (only when the user chose it through ``GEOMSTATS_BACKEND``)
    creates tensors with torch's default dtype and expects float64; for the duration of the
    call we give it float64 and restore the caller's default afterwards (not thread-safe with
    respect to other threads creating tensors meanwhile; the numpy backend touches nothing).
    """
    with _torch_default_dtype_kept():
        if _backend_name() == "pytorch":
            torch.set_default_dtype(torch.float64)
        yield


def geomstats_backend() -> Any:
    """Import geomstats (once; Python caches the module) and return its backend module."""
    if not hasattr(np, "trapz"):
        # geomstats 2.8.0 imports numpy.trapz, removed in numpy 2.4; same function, new name.
        # setattr: numpy's stubs (>= 2.4) have no trapz, older ones do; no ignore fits both.
        setattr(np, "trapz", np.trapezoid)  # noqa: B010
    with _torch_default_dtype_kept():
        import geomstats.backend as gs
    return gs


def _backend_name() -> str:
    from geomstats._backend import BACKEND_NAME

    return BACKEND_NAME


def to_gs(t: torch.Tensor) -> Any:
    """``t`` as a float64 array of geomstats' active backend (numpy, or a CPU torch tensor)."""
    arr = t.detach().to("cpu", torch.float64).numpy()
    if _backend_name() == "pytorch":
        return torch.from_numpy(arr.copy())
    return arr


def from_gs(y: Any, device: torch.device) -> torch.Tensor:
    """A geomstats result (numpy array or torch tensor) as a float64 tensor on ``device``."""
    if isinstance(y, torch.Tensor):
        y = y.detach().cpu().numpy()
    return torch.from_numpy(np.array(y, dtype=np.float64)).to(device)
