"""Record the latents of chosen layers on a probe set and its group orbit into a run store.

:class:`LatentRecorder` hooks the layers, runs the probe orbit in eval mode on the training
device, reduces and casts there, and a background thread appends the checkpoints to the
store.  :func:`record_checkpoints` records the same from saved checkpoints, offline.
"""

from __future__ import annotations

from latentgeo.record._checkpoints import record_checkpoints
from latentgeo.record._layers import resolve_layers, unwrap_model
from latentgeo.record._live import LiveProbes
from latentgeo.record._lockstep import LockstepError
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

__all__ = [
    "BlockMeanPool",
    "Flatten",
    "FunctionReducer",
    "LatentRecorder",
    "LiveProbes",
    "LockstepError",
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
