"""What the recorder knows of live probes: an observer of each recorded step's latents.

The recorder computes no probes itself (``latentgeo.record`` never imports ``probes``); it
hands each written step's host latents to an observer (``live=``), e.g.
:class:`probes.LiveProbes`.  An observer that also queues results for the trainer's loggers
(``drain``, ``owns``) is logged by the Lightning and Hugging Face callbacks.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

__all__ = ["LiveObserver", "LoggedObserver", "as_observer"]


@runtime_checkable
class LiveObserver(Protocol):
    """Receives the latents of every recorded step (from the recorder's writer thread)."""

    def bind(self, group: Any, element_values: Any = None, *, n_samples: int | None = None) -> None:
        """Called once at construction with ``action.group``, ``action.element_values`` and
        the probe set's size; raise ``ValueError`` for what the orbit cannot give."""

    def observe(self, step: int, latents: Mapping[str, Any]) -> Any:
        """Called after ``step`` is written, with ``{layer: (n_elements, n_samples, n_units)}``
        host arrays (valid only during the call)."""

    def close(self) -> None:
        """Called once when the recorder closes."""


@runtime_checkable
class LoggedObserver(LiveObserver, Protocol):
    """An observer whose results the training callbacks hand to the trainer's loggers."""

    def drain(self) -> list[tuple[int, dict[str, float]]]:
        """Results not yet logged, oldest first (and forget them)."""

    def owns(self, name: str) -> bool:
        """Whether a metric name is one of this observer's."""


def as_observer(live: Any) -> LiveObserver | None:
    """``None`` / ``False``, or an observer (``bind``, ``observe``, ``close``).

    Raises
    ------
    TypeError
        For anything else, e.g. ``True`` or probe names: build the observer explicitly,
        ``live=probes.LiveProbes(["invariance", "spectrum"])``.
    """
    if live is None or live is False:
        return None
    if isinstance(live, LiveObserver):
        return live
    raise TypeError(
        f"live must be None or an observer with bind/observe/close, got {live!r}; for the "
        "live symmetry metrics pass live=probes.LiveProbes([...]), e.g. "
        "probes.LiveProbes(['invariance', 'spectrum'])"
    )
