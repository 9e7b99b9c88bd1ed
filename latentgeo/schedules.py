"""When to record: schedules are immutable value objects answering ``schedule(step) -> bool``.

Representations change fastest early in training, so the default schedule is dense early
(log-spaced) and sparse later (every N steps).

Examples
--------
>>> from latentgeo.schedules import EveryN, Explicit, LogSpaced
>>> s = LogSpaced(horizon=1000, num=20) | EveryN(500)
>>> [t for t in range(0, 3001) if t in s][:8]
[0, 1, 2, 3, 4, 6, 9, 13]
>>> 2500 in s
True
"""

from __future__ import annotations

import abc
import dataclasses
import numbers
from collections.abc import Iterable
from typing import Any

import numpy as np

from latentgeo._validate import check_int

__all__ = [
    "EveryN",
    "Explicit",
    "LogSpaced",
    "Schedule",
    "Union",
    "as_schedule",
    "default_schedule",
]


def _check_step(step: Any) -> int:
    return check_int(step, "step")


class Schedule(abc.ABC):
    """Base of all schedules: ``schedule(step)`` and ``step in schedule`` say whether to record.

    Schedules combine with ``|`` (:class:`Union`).
    """

    @abc.abstractmethod
    def _contains(self, step: int) -> bool: ...

    def __call__(self, step: int) -> bool:
        """Whether ``step`` (a non-negative int) is scheduled."""
        return self._contains(_check_step(step))

    def __contains__(self, step: object) -> bool:
        return self(step)  # type: ignore[arg-type]

    def __or__(self, other: Schedule) -> Schedule:
        if not isinstance(other, Schedule):
            return NotImplemented
        return Union(self, other)

    def steps(self, stop: int) -> list[int]:
        """All scheduled steps in ``range(stop)``."""
        return [t for t in range(check_int(stop, "stop", minimum=0)) if self._contains(t)]


@dataclasses.dataclass(frozen=True)
class EveryN(Schedule):
    """Every ``n``-th step from ``start`` on: ``start, start + n, start + 2n, ...``.

    Parameters
    ----------
    n : int
        Period, >= 1.
    start : int
        First scheduled step, >= 0.
    """

    n: int
    start: int = 0

    def __post_init__(self) -> None:
        check_int(self.n, "n", minimum=1)
        check_int(self.start, "start", minimum=0)

    def _contains(self, step: int) -> bool:
        return step >= self.start and (step - self.start) % self.n == 0


@dataclasses.dataclass(frozen=True)
class Explicit(Schedule):
    """Exactly the given steps.

    Parameters
    ----------
    steps : iterable of int
        Non-negative steps (stored sorted, without duplicates).
    """

    steps_: tuple[int, ...]

    def __init__(self, steps: Iterable[int]) -> None:
        if isinstance(steps, (str, bytes)) or not isinstance(steps, Iterable):
            raise TypeError(f"steps must be an iterable of ints, got {steps!r}")
        values = sorted({check_int(s, "step", minimum=0) for s in steps})
        object.__setattr__(self, "steps_", tuple(values))

    def _contains(self, step: int) -> bool:
        i = int(np.searchsorted(self.steps_, step))
        return i < len(self.steps_) and self.steps_[i] == step

    def __repr__(self) -> str:
        return f"Explicit({list(self.steps_)!r})"


@dataclasses.dataclass(frozen=True)
class LogSpaced(Schedule):
    """Log-spaced steps up to ``horizon``: dense early, where representations move fastest.

    The steps are ``0`` and ``round(geomspace(1, horizon, num))`` (duplicates merged, so the
    first steps are consecutive); past the horizon, every ``then_every`` steps when given.

    Parameters
    ----------
    horizon : int
        Last step of the log-spaced part, >= 1.
    num : int
        Number of log-spaced points in ``[1, horizon]`` (before merging duplicates), >= 1.
    then_every : int or None
        Period after the horizon (multiples of it), or None to stop at the horizon.
    """

    horizon: int = 1000
    num: int = 50
    then_every: int | None = None

    def __post_init__(self) -> None:
        check_int(self.horizon, "horizon", minimum=1)
        check_int(self.num, "num", minimum=1)
        if self.then_every is not None:
            check_int(self.then_every, "then_every", minimum=1)

    @property
    def early_steps(self) -> tuple[int, ...]:
        """The steps of the log-spaced part, increasing."""
        pts = np.rint(np.geomspace(1, self.horizon, self.num)).astype(np.int64)
        return tuple(sorted({0, *(int(p) for p in pts)}))

    def _contains(self, step: int) -> bool:
        if step <= self.horizon:
            early = self.__dict__.get("_early")
            if early is None:
                early = frozenset(self.early_steps)
                object.__setattr__(self, "_early", early)  # per-instance cache, not a field
            return step in early
        return self.then_every is not None and step % self.then_every == 0


@dataclasses.dataclass(frozen=True)
class Union(Schedule):
    """Steps scheduled by any of the given schedules (``a | b``)."""

    parts: tuple[Schedule, ...]

    def __init__(self, *schedules: Schedule) -> None:
        flat: list[Schedule] = []
        for s in schedules:
            if not isinstance(s, Schedule):
                raise TypeError(f"Union takes schedules, got {s!r} ({type(s).__name__})")
            flat.extend(s.parts if isinstance(s, Union) else (s,))
        if not flat:
            raise ValueError("Union needs at least one schedule")
        object.__setattr__(self, "parts", tuple(flat))

    def _contains(self, step: int) -> bool:
        return any(p._contains(step) for p in self.parts)

    def __repr__(self) -> str:
        return " | ".join(repr(p) for p in self.parts)


def default_schedule() -> Schedule:
    """Log-spaced over the first 1000 steps (about 40 checkpoints), then every 1000 steps."""
    return LogSpaced(horizon=1000, num=50, then_every=1000)


def as_schedule(schedule: Any) -> Schedule:
    """Turn ``None`` (default schedule), an int ``n`` (:class:`EveryN`), an iterable of steps
    (:class:`Explicit`) or a :class:`Schedule` into a :class:`Schedule`."""
    if schedule is None:
        return default_schedule()
    if isinstance(schedule, Schedule):
        return schedule
    if isinstance(schedule, numbers.Integral) and not isinstance(schedule, bool):
        return EveryN(int(schedule))
    if isinstance(schedule, Iterable) and not isinstance(schedule, (str, bytes)):
        return Explicit(schedule)
    raise TypeError(
        f"schedule must be a Schedule, an int period, an iterable of steps or None, "
        f"got {schedule!r}"
    )
