"""Errors of the pipeline, sorted by what the command line makes of them.

A busy store and a corrupt store are the store's own errors (one class each for the whole
package, :class:`latentgeo.store.StoreBusyError` and :class:`latentgeo.store.CorruptStoreError`),
re-exported here under the names the pipeline has always raised.
"""

from __future__ import annotations

from latentgeo._errors import LatentgeoError
from latentgeo.store._schema import CorruptStoreError, StoreBusyError

__all__ = ["CorruptStoreError", "PipelineError", "StoreBusyError", "UsageError"]


class PipelineError(LatentgeoError, RuntimeError):
    """A runtime failure the user should read as one line (CLI exit code 1)."""


class UsageError(LatentgeoError, ValueError):
    """Bad input from the user: a missing store, an unknown layer (CLI exit code 2)."""
