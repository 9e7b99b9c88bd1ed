"""Record the latents of chosen layers on a probe set and its group orbit into a run store.

:class:`LatentRecorder` hooks the layers, runs the probe orbit in eval mode on the training
device, reduces and casts there, and a background thread appends the checkpoints to the
store.  ``record_checkpoints`` (offline, from saved checkpoints) lives in
``latentgeo.record._checkpoints`` and is loaded on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from latentgeo.record._layers import resolve_layers, unwrap_model
from latentgeo.record._lockstep import LockstepError
from latentgeo.record._observer import LiveObserver, LoggedObserver
from latentgeo.record._recorder import (
    LatentRecorder,
    NonFiniteLatentsWarning,
    StorageOverflowWarning,
    WriterError,
)
from latentgeo.record._reducers import (
    BlockMeanPool,
    Flatten,
    FunctionReducer,
    RandomProjection,
    Reducer,
    SpatialMeanPool,
    as_reducer,
)

if TYPE_CHECKING:  # pragma: no cover
    from latentgeo.record._checkpoints import record_checkpoints

__all__ = [
    "BlockMeanPool",
    "Flatten",
    "FunctionReducer",
    "LatentRecorder",
    "LiveObserver",
    "LockstepError",
    "LoggedObserver",
    "NonFiniteLatentsWarning",
    "RandomProjection",
    "Reducer",
    "SpatialMeanPool",
    "StorageOverflowWarning",
    "WriterError",
    "as_reducer",
    "record_checkpoints",
    "resolve_layers",
    "unwrap_model",
]


def __getattr__(name: str) -> Any:
    # PEP 562: the offline checkpoint walker is another module (and may not exist yet);
    # importing latentgeo.record must not depend on it.
    if name == "record_checkpoints":
        return importlib.import_module("latentgeo.record._checkpoints").record_checkpoints
    raise AttributeError(f"module 'latentgeo.record' has no attribute {name!r}")
