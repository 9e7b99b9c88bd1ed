"""Probing runs that record a subset of a group's elements, and the subgroup a run names.

A run recorded with :class:`latentgeo.actions.ElementSubset` or
:class:`latentgeo.actions.RandomPermutations` holds latents for some elements of a group
only.  The linear probe (one map per recorded element) and invariance (over the recorded
elements) need nothing more; the homomorphism, character and group-consistent probes need
every element and are skipped; the irrep spectrum is computed on a finite subgroup the user
names (``probes.run(run, subgroup=[...])``) when every one of its elements was recorded, and
skipped otherwise, with a warning that says why.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from probes._kinds import PROBE_KINDS
from probes._validation import check_group_order

if TYPE_CHECKING:
    from latentgeo.groups import Group
    from latentgeo.store import Run
    from probes._settings import RunSettings

__all__ = ["plan_subset", "records_subset", "subgroup_of"]


def records_subset(run: Run) -> bool:
    """Whether ``run`` was recorded over a subset of its group's elements: its action's orbit
    is shorter than the group (``action.order != action.group.order``).

    A run that records no action counts as a whole-orbit run (its element axis is then
    checked against the group's order).

    Raises
    ------
    MissingExtensionError
        If the stored action's class (or its group's) is not registered in this process.
    """
    action = run.action
    if action is None:
        return False
    group = action.group
    return bool(group.is_finite and action.order != group.order)


def _position(element: Any, names: Sequence[str], values: np.ndarray) -> int | None:
    """Position along the element axis of ``element`` (a name or an element value)."""
    if isinstance(element, str):
        return list(names).index(element) if element in names else None
    v = np.asarray(element)
    if v.shape != values.shape[1:]:
        raise ValueError(
            f"subgroup element {element!r} has shape {v.shape}, but the run's element values "
            f"have shape {values.shape[1:]} (give names or values like run.element_values)"
        )
    hits = np.flatnonzero((values.reshape(len(values), -1) == v.reshape(1, -1)).all(axis=1))
    return int(hits[0]) if len(hits) else None


def resolve_subgroup(
    group: Group, names: Sequence[str], values: np.ndarray, subgroup: Sequence[Any]
) -> dict[str, Any] | str:
    """The subgroup's positions along the element axis and its Cayley table.

    Returns
    -------
    dict or str
        ``{"positions", "table", "names"}`` (JSON-serialisable; the identity first), or a
        message saying which elements were not recorded.

    Raises
    ------
    ValueError
        If the named elements are not closed under composition or lack the identity (not a
        subgroup), repeat, or are given in a form that matches no element value.
    """
    if isinstance(subgroup, (str, bytes)) or not isinstance(subgroup, (Sequence, np.ndarray)):
        raise TypeError(
            f"subgroup must be a sequence of elements (names or element values), got {subgroup!r}"
        )
    if len(subgroup) == 0:
        raise ValueError("subgroup must name at least one element")
    positions = [_position(e, names, values) for e in subgroup]
    missing = [e for e, p in zip(subgroup, positions) if p is None]
    if missing:
        shown = [str(m) for m in missing[:5]]
        return (
            f"{len(missing)} of the {len(subgroup)} subgroup elements were not recorded "
            f"(e.g. {shown}); record them (RandomPermutations(include=...)) to get its spectrum"
        )
    pos = [int(p) for p in positions if p is not None]
    if len(set(pos)) != len(pos):
        raise ValueError("subgroup elements must be distinct")
    sub_values = values[pos]
    key = {tuple(np.ravel(v).tolist()): i for i, v in enumerate(sub_values)}
    identity = tuple(np.ravel(np.asarray(group.identity)).tolist())
    if identity not in key:
        raise ValueError(f"the named elements {list(subgroup)!r} do not contain the identity")
    n = len(pos)
    table = np.empty((n, n), dtype=np.int64)
    for i in range(n):
        for j in range(n):
            ij = tuple(np.ravel(np.asarray(group.compose(sub_values[i], sub_values[j]))).tolist())
            if ij not in key:
                raise ValueError(
                    f"the named elements are not a subgroup: {names[pos[i]]}∘{names[pos[j]]} "
                    "is not among them"
                )
            table[i, j] = key[ij]
    # Identity first, as a FiniteGroup's table requires.
    e = key[identity]
    order = [e] + [i for i in range(n) if i != e]
    inv = np.argsort(order)
    table = inv[table[np.ix_(order, order)]]
    return {
        "positions": [pos[i] for i in order],
        "table": table.tolist(),
        "names": [str(names[pos[i]]) for i in order],
    }


def plan_subset(
    group: Group,
    names: Sequence[str],
    values: Any,
    subgroup: Sequence[Any] | None,
    settings: RunSettings,
    subset: bool,
) -> tuple[RunSettings, list[str]] | None:
    """Settings and irrep names for a subset run or a named subgroup; None for a plain run.

    Parameters
    ----------
    group : Group
        The run's group.
    names, values
        ``run.elements`` and ``run.element_values``.
    subgroup : sequence, optional
        Elements (names or values) of a finite subgroup to compute the spectrum on.
    settings : RunSettings
        The runner's settings; a copy is returned with the probes that cannot run dropped
        and, when the spectrum runs on a subgroup, ``settings.subgroup`` (part of the cache
        key).
    subset : bool
        Whether the run records a subset of the group's elements (:func:`records_subset`);
        otherwise the element axis must list the whole group.

    Returns
    -------
    (settings, irrep names) or None
        None for a whole-orbit run without ``subgroup`` and for a continuous group.

    Raises
    ------
    ValueError
        If ``subgroup`` is given for a continuous group or is not a subgroup; if a whole-orbit
        run's element axis does not match the group's order.
    """
    if not group.is_finite:
        if subgroup is not None:
            raise ValueError(
                f"subgroup= names elements of a finite subgroup; {getattr(group, 'spec', group)} "
                "is continuous (its spectra are over sampled elements)"
            )
        return None
    values = np.asarray(values)
    whole = not subset
    if whole:
        check_group_order(len(names), group, name="the run")
        if subgroup is None:
            return None
    wanted = list(settings.probes)
    if not whole:
        # The kinds that need every element of a finite group along the element axis.
        dropped = [p for p in wanted if PROBE_KINDS[p].finite_only]
        if dropped:
            warnings.warn(
                f"the run records {len(names)} elements of {getattr(group, 'spec', group)}, not "
                f"the whole group: probes {dropped} need every element and are skipped",
                UserWarning,
                stacklevel=3,
            )
        wanted = [p for p in wanted if p not in dropped]
    irreps: list[str] = []
    if "spectrum" in wanted:
        why = None
        if subgroup is None:
            why = (
                f"the run records {len(names)} elements of {getattr(group, 'spec', group)}, not "
                "the whole group; name a finite subgroup they contain with subgroup=[...]"
            )
        else:
            resolved = resolve_subgroup(group, names, values, subgroup)
            if isinstance(resolved, str):
                why = resolved
            else:
                settings = settings.replace(subgroup=resolved)
                irreps = [ir.name for ir in subgroup_of(resolved).irreps()]
        if why is not None:
            warnings.warn(f"spectrum skipped: {why}", UserWarning, stacklevel=3)
            wanted.remove("spectrum")
    return settings.replace(probes=tuple(wanted)), irreps


def subgroup_of(resolved: dict[str, Any]) -> Any:
    """The named subgroup as a finite group (its Cayley table from :func:`resolve_subgroup`).

    Built per call (no module-level cache): the subgroup is small, its table already checked.
    """
    from latentgeo.groups import FiniteGroup

    d = resolved
    return FiniteGroup.from_cayley_table(np.asarray(d["table"]), names=d["names"])
