"""The run store: a zarr v3 group of latents along training steps, readable by plain xarray.

``open_run(path)`` reads the committed checkpoints of a store as a :class:`Run`;
:class:`RunWriter` creates, resumes and appends to one with a crash-safe commit protocol
(see ``latentgeo.store._writer``); one writer per store, by ``flock`` on local folders and by a
lease object beside stores at fsspec URLs (``latentgeo.store._lease``).  The layout is fixed
in ``docs/interfaces.md``.
"""

from __future__ import annotations

from latentgeo.store._run import Run, RunSpec, open_run
from latentgeo.store._schema import (
    ROOT_KEY,
    SCHEMA_VERSION,
    CorruptStoreError,
    StoreBusyError,
    StoreLockedError,
    nonfinite_name,
    overflow_name,
    unit_dim,
)
from latentgeo.store._writer import LATENT_DTYPES, ResumeMismatchError, RunWriter

__all__ = [
    "LATENT_DTYPES",
    "ROOT_KEY",
    "SCHEMA_VERSION",
    "CorruptStoreError",
    "ResumeMismatchError",
    "Run",
    "RunSpec",
    "RunWriter",
    "StoreBusyError",
    "StoreLockedError",
    "nonfinite_name",
    "open_run",
    "overflow_name",
    "unit_dim",
]
