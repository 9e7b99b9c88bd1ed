"""Errors of the pipeline, sorted by what the command line makes of them."""

from __future__ import annotations

from latentgeo._errors import LatentgeoError

__all__ = ["CorruptStoreError", "PipelineError", "StoreBusyError", "UsageError"]


class PipelineError(LatentgeoError, RuntimeError):
    """A runtime failure the user should read as one line (CLI exit code 1)."""


class CorruptStoreError(PipelineError):
    """The path exists but is not a readable latentgeo run store."""


class StoreBusyError(PipelineError):
    """A writer is still appending to the store (analyse it when the run is closed)."""


class UsageError(LatentgeoError, ValueError):
    """Bad input from the user: a missing store, an unknown layer (CLI exit code 2)."""
