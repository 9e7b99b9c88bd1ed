"""The root of latentgeo's exceptions (light: no dependencies, imported by ``latentgeo``)."""

from __future__ import annotations

__all__ = ["LatentgeoError"]


class LatentgeoError(Exception):
    """Base class of the exceptions latentgeo, ``probes`` and ``trajectories`` define.

    Every error of the package's own sits under it, and also under the builtin it refines
    (``ValueError``, ``RuntimeError``…), so ``except LatentgeoError`` catches all of them and
    ``except ValueError`` keeps working. Plain ``ValueError``/``TypeError`` raised for bad
    arguments are builtins, not subclasses of this one.
    """
