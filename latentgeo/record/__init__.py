"""Record the latents of chosen layers on a probe set and its group orbit into a run store.

:class:`LatentRecorder` hooks the layers, runs the probe orbit in eval mode on the training
device, reduces and casts there, and a background thread appends the checkpoints to the
store.  :func:`record_checkpoints` records the same from saved checkpoints, offline.
"""

from __future__ import annotations

import warnings
from typing import Any

from latentgeo._layers import layer_modules, resolve_layers, unwrap_model
from latentgeo.record._checkpoints import record_checkpoints
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
    "layer_modules",
    "record_checkpoints",
    "resolve_layers",
    "unwrap_model",
]


def __getattr__(name: str) -> Any:
    # Deprecated alias (0.x): LiveProbes computes probes' metrics, so it lives in ``probes``;
    # the recorder knows only the observer protocol.  The one import of ``probes`` from
    # ``latentgeo.record``, run only when the old name is used (tests/test_import_graph.py).
    if name == "LiveProbes":
        warnings.warn(
            "latentgeo.record.LiveProbes moved to probes.LiveProbes (the recorder takes any "
            "observer with bind/observe/close); import it from probes",
            DeprecationWarning,
            stacklevel=2,
        )
        from probes import LiveProbes

        return LiveProbes
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
