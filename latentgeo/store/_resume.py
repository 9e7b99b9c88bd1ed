"""What must agree between a run store and a writer resuming it (``mode="a"``).

A resumed store is checked when the writer is constructed, before anything in it changes:
the group, its elements, the action and the probe set (root metadata), and what is known of
the layers before the first forward (names in order, dtype, reducer, selector).  Each
mismatch is named, key by key.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from latentgeo._errors import LatentgeoError

__all__ = [
    "IDENTITY_KEYS",
    "ResumeMismatchError",
    "check_identity",
    "check_layer_specs",
    "difference",
    "jsonable",
]

#: Metadata that must agree between a resumed store and the writer resuming it.
IDENTITY_KEYS = ("group", "elements", "action", "probe")
_IDENTITY_NAMES = {
    "group": "group",
    "elements": "list of group elements",
    "action": "action",
    "probe": "probe set",
}


class ResumeMismatchError(LatentgeoError, ValueError):
    """A store opened to resume (mode ``"a"``) was recorded with other settings."""


def jsonable(value: Any) -> Any:
    """``value`` as zarr attributes store it (JSON: tuples become lists, numpy scalars
    Python numbers)."""
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def difference(stored: Any, given: Any, path: str = "") -> str:
    """What differs between two JSON-like values, key by key (``probe.sha256: 'ab..' != ..``)."""
    if isinstance(stored, Mapping) and isinstance(given, Mapping):
        parts = []
        for key in [*stored, *(k for k in given if k not in stored)]:
            where = f"{path}.{key}" if path else str(key)
            if key not in given:
                parts.append(f"{where}: stored {stored[key]!r}, not given")
            elif key not in stored:
                parts.append(f"{where}: not stored, given {given[key]!r}")
            elif stored[key] != given[key]:
                parts.append(difference(stored[key], given[key], where))
        return "; ".join(parts)
    return (
        f"{path}: stored {stored!r}, given {given!r}"
        if path
        else f"stored {stored!r}, given {given!r}"
    )


def check_identity(store: str, stored: Mapping[str, Any], meta: Mapping[str, Any]) -> None:
    """Raise :class:`ResumeMismatchError` if group, elements, action or probe set differ."""
    for key in IDENTITY_KEYS:
        if key in meta and key in stored and meta[key] != stored[key]:
            raise ResumeMismatchError(
                f"cannot resume run store {store!r}: it was recorded with another "
                f"{_IDENTITY_NAMES[key]}: {difference(stored[key], meta[key])}"
            )


def check_layer_specs(store: str, stored: Mapping[str, Any], specs: Mapping[str, Any]) -> None:
    """Raise :class:`ResumeMismatchError` if the layers (names in order, or any setting the
    store holds for them) differ from ``specs``."""
    given = {k: jsonable(dict(v)) for k, v in specs.items()}
    if list(given) != list(stored):
        raise ResumeMismatchError(
            f"cannot resume run store {store!r}: it holds the layers {list(stored)!r}, the "
            f"recorder records {list(given)!r}"
        )
    problems = []
    for name, spec in given.items():
        for key, value in spec.items():
            if key in stored[name] and stored[name][key] != value:
                problems.append(
                    f"layer {name!r} {key}: stored {stored[name][key]!r}, given {value!r}"
                )
    if problems:
        raise ResumeMismatchError(
            f"cannot resume run store {store!r} with other layer settings: " + "; ".join(problems)
        )
