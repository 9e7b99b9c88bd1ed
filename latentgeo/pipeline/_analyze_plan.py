"""``analyze``, step 0 — plan: which probes, figures and report sections apply to a store.

The recorder writes three kinds of store, and ``analyze`` serves each with what its latents
support, saying in the report why anything else is left out:

* **finite, whole orbit** (every element of a finite group): every probe kind ``analyze``
  uses (equivariance R², irrep spectrum, invariance, homomorphism error, the subgroup scan of
  a group of composite order), the orbit figure and the fitted rho(g) heat maps;
* **finite, element subset** (``ElementSubset``, ``RandomPermutations``): R² per recorded
  element and invariance over them; the irrep spectrum on the largest subgroup of the group
  whose every element was recorded (named in the report), none when no non-trivial subgroup
  was; no homomorphism error, subgroup scan, orbit figure or rho(g) heat maps (they need
  every element of the group);
* **continuous** (SO(2), SO(3), O(3) over sampled elements): R² per sampled element,
  the harmonic spectrum by degree and invariance (its degree-0 share); no homomorphism
  error, subgroup scan, orbit figure or rho(g) heat maps (they need a finite group).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from latentgeo.pipeline._errors import PipelineError

if TYPE_CHECKING:  # pragma: no cover
    from latentgeo.store import Run

__all__ = [
    "CONTINUOUS",
    "ELEMENT_SUBSET",
    "FINITE_ORBIT",
    "SUBGROUP_SCAN_MAX_ORDER",
    "AnalysisPlan",
    "has_proper_subgroups",
    "plan_analysis",
]

#: Store kinds (``AnalysisPlan.store_kind``).
FINITE_ORBIT = "finite group, whole orbit"
ELEMENT_SUBSET = "finite group, element subset"
CONTINUOUS = "continuous group, sampled elements"
#: Largest group order whose subgroups ``analyze`` scans (enumeration cost grows fast).
SUBGROUP_SCAN_MAX_ORDER = 200


@dataclass(frozen=True)
class AnalysisPlan:
    """What ``analyze`` computes and draws for one store.

    Attributes
    ----------
    store_kind : str
        :data:`FINITE_ORBIT`, :data:`ELEMENT_SUBSET` or :data:`CONTINUOUS`.
    probes : tuple of str
        Probe kinds passed to ``probes.run``.
    subgroup : list or None
        Element values of the subgroup the spectrum is computed on (subset stores).
    subgroup_name : str or None
        Its name in the group (e.g. ``"C4"``).
    figures : tuple of str
        Figures that apply besides the per-probe ones: ``"orbits"``, ``"rho"``.
    omitted : dict of str to str
        {what is left out: the sentence saying why}, written into the report.
    """

    store_kind: str
    probes: tuple[str, ...]
    subgroup: list[Any] | None = None
    subgroup_name: str | None = None
    figures: tuple[str, ...] = ()
    omitted: dict[str, str] = field(default_factory=dict)


def has_proper_subgroups(group: Any) -> bool:
    """Whether ``analyze`` scans the group's subgroups: a finite group of composite order
    (a group of prime order has none but itself and the trivial one) up to
    :data:`SUBGROUP_SCAN_MAX_ORDER`."""
    if group is None or not group.is_finite:
        return False
    n = int(group.order or 0)
    composite = n > 3 and any(n % p == 0 for p in range(2, int(np.sqrt(n)) + 1))
    return composite and n <= SUBGROUP_SCAN_MAX_ORDER


def _largest_recorded_subgroup(group: Any, recorded: np.ndarray) -> Any:
    """The largest non-trivial subgroup whose elements were all recorded, or None."""
    if int(group.order or 0) > SUBGROUP_SCAN_MAX_ORDER:
        return None
    have = {int(v) for v in np.asarray(recorded).ravel()}
    best = None
    for h in group.subgroups(False):
        if 1 < h.order < group.order and set(h.elements) <= have:
            if best is None or h.order > best.order:
                best = h
    return best


def plan_analysis(run: Run) -> AnalysisPlan:
    """The :class:`AnalysisPlan` of ``run``'s store kind.

    Raises
    ------
    PipelineError
        When the store records no group (nothing to probe against).
    """
    from probes._subsets import records_subset

    group = run.group
    if group is None:
        raise PipelineError(
            f"the store {str(run.path)!r} records no group; analyse it with "
            "probes.run(run, group=...)"
        )
    spec = getattr(group, "spec", repr(group))
    needs_finite = "it needs a finite group; {spec} is continuous (its elements are sampled)"
    if not group.is_finite:
        why = needs_finite.format(spec=spec)
        return AnalysisPlan(
            CONTINUOUS,
            ("linear", "spectrum", "invariance"),
            omitted={
                "homomorphism error": f"The homomorphism error is not computed: {why}.",
                "subgroup scan": f"The subgroup scan is not computed: {why}.",
                "orbit figure": (
                    "The orbit figure is not drawn: it joins each orbit along a generator of "
                    f"a finite group, and {spec} is continuous."
                ),
                "rho heat maps": (
                    "The rho(g) heat maps are not drawn: one panel per element of a finite "
                    f"group; this store samples {len(run.elements)} elements of {spec}."
                ),
            },
        )
    if records_subset(run):
        n, order = len(run.elements), int(group.order or 0)
        whole = f"it needs every element of {spec}; this store records {n} of its {order}"
        omitted = {
            "homomorphism error": f"The homomorphism error is not computed: {whole}.",
            "subgroup scan": f"The subgroup scan is not computed: {whole}.",
            "orbit figure": f"The orbit figure is not drawn: {whole}.",
            "rho heat maps": f"The rho(g) heat maps are not drawn: {whole}.",
        }
        sub = _largest_recorded_subgroup(group, run.element_values)
        if sub is None:
            omitted["irrep spectrum"] = (
                f"The irrep spectrum is not computed: it needs every element of {spec} or of "
                f"one of its non-trivial subgroups, and the {n} recorded elements contain none."
            )
            return AnalysisPlan(ELEMENT_SUBSET, ("linear", "invariance"), omitted=omitted)
        return AnalysisPlan(
            ELEMENT_SUBSET,
            ("linear", "spectrum", "invariance"),
            subgroup=[np.int64(i) for i in sub.elements],
            subgroup_name=str(sub.name),
            omitted=omitted,
        )
    kinds = ["linear", "spectrum", "invariance", "homomorphism"]
    omitted = {}
    if has_proper_subgroups(group):
        kinds.append("subgroups")
    elif int(group.order or 0) > SUBGROUP_SCAN_MAX_ORDER:
        omitted["subgroup scan"] = (
            f"The subgroup scan is not computed: {spec} has order {int(group.order or 0)}, above "
            f"{SUBGROUP_SCAN_MAX_ORDER} (enumerating its subgroups is too costly)."
        )
    else:
        omitted["subgroup scan"] = (
            f"The subgroup scan is not computed: {spec} has order {int(group.order or 0)}, so "
            "no subgroup but itself and the trivial one."
        )
    return AnalysisPlan(FINITE_ORBIT, tuple(kinds), figures=("orbits", "rho"), omitted=omitted)
