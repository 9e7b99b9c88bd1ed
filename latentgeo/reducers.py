"""Reducers for :class:`latentgeo.LatentRecorder`: map a layer's output ``(batch, *feature)``
to ``(batch, n_units)`` on the model's device before the copy to the host.

``Flatten()`` keeps every unit, ``SpatialMeanPool()`` averages conv maps over space,
``BlockMeanPool(size)`` averages aligned spatial blocks (commutes with rot90/flips),
``RandomProjection(k, seed)`` applies a fixed, reproducible Gaussian projection; any callable
works too.

Your own reducer: subclass :class:`Reducer` (``__call__`` and ``to_spec`` returning
``{"name": <its registered name>, **parameters}``) and decorate it with
``@latentgeo.reducers.register("name")``; :func:`from_spec` and ``as_reducer("name")`` then
build it, and :func:`from_run` rebuilds the reducer a run store's layer was recorded with.
Installed packages may use the ``latentgeo.reducers`` entry-point group.
"""

from __future__ import annotations

from latentgeo.record._reducers import (
    BlockMeanPool,
    Flatten,
    FunctionReducer,
    RandomProjection,
    Reducer,
    SpatialMeanPool,
    as_reducer,
    from_run,
    from_spec,
    register,
)

__all__ = [
    "BlockMeanPool",
    "Flatten",
    "FunctionReducer",
    "RandomProjection",
    "Reducer",
    "SpatialMeanPool",
    "as_reducer",
    "from_run",
    "from_spec",
    "register",
]
