"""The recorder's process environment: rank and world size, the model's device, the probe
set's digest, and closing a forgotten recorder at interpreter exit."""

from __future__ import annotations

import atexit
import hashlib
import threading
import weakref
from typing import Any

import numpy as np
import torch

__all__ = ["close_at_exit", "dist_rank_world", "model_device", "probe_digest"]


def dist_rank_world() -> tuple[int, int]:
    """``(rank, world size)`` of the default process group, ``(0, 1)`` without one."""
    dist = torch.distributed
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def model_device(module: torch.nn.Module) -> torch.device:
    """The device of a module's first parameter (or buffer); the CPU for neither."""
    for param in module.parameters():
        return param.device
    for buffer in module.buffers():
        return buffer.device
    return torch.device("cpu")


def probe_digest(x: np.ndarray, dtype: str) -> str:
    """sha256 of the probe inputs: shape, the model-side dtype name and the exact host copy."""
    h = hashlib.sha256()
    h.update(repr((x.shape, dtype)).encode())
    h.update(np.ascontiguousarray(x).data)
    return h.hexdigest()


def close_at_exit(recorder: Any) -> None:
    """Close ``recorder`` at interpreter exit if the script forgot to, so the checkpoints
    still queued are written.

    ``atexit`` runs too late: by then ``concurrent.futures`` refuses new work, and zarr's
    writes need its thread pool.  ``threading._register_atexit`` (what ``concurrent.futures``
    itself uses) runs callbacks in reverse order of registration, so ours runs before the
    thread pools shut down.  A weak reference keeps the model and buffers collectable.
    """
    ref = weakref.ref(recorder)

    def close() -> None:
        rec = ref()
        if rec is not None and not rec._closed:
            rec.close()

    register = getattr(threading, "_register_atexit", None)
    (register or atexit.register)(close)
