"""The root of latentgeo's exceptions, and where its warnings point (light: no dependencies,
imported by ``latentgeo``)."""

from __future__ import annotations

import sys
from types import FrameType

__all__ = ["LatentgeoError", "outside_stacklevel"]


class LatentgeoError(Exception):
    """Base class of the exceptions latentgeo, ``probes`` and ``trajectories`` define.

    Every error of the package's own sits under it, and also under the builtin it refines
    (``ValueError``, ``RuntimeError``…), so ``except LatentgeoError`` catches all of them and
    ``except ValueError`` keeps working. Plain ``ValueError``/``TypeError`` raised for bad
    arguments are builtins, not subclasses of this one.
    """


def outside_stacklevel() -> int:
    """``stacklevel`` of the first frame outside latentgeo, probes and trajectories (the
    user's call, whichever entry point led to a warning)."""
    level = 1
    frame: FrameType | None = sys._getframe(1)
    while frame is not None and str(frame.f_globals.get("__name__", "")).split(".")[0] in (
        "latentgeo",
        "probes",
        "trajectories",
    ):
        level += 1
        frame = frame.f_back
    return level
