"""A fixed random subset of a group's elements along the orbit axis, for groups too large to
record whole orbits.

Two actions, one idea: the orbit axis holds ``n_elements`` elements chosen once from a seed,
the identity first.  :class:`ElementSubset` takes them from the finite group of any action
(``element_values`` are their indices); :class:`RandomPermutations` draws permutations of
``n`` items for ``n`` too large to enumerate ``S_n`` (``element_values`` are the
permutations themselves, an int64 array of shape (n_elements, n)).  Both are recorded like any
action (the recorder records ``action.orbit``: only these elements) and stored by their spec.
Linear probes and invariance work on the recorded elements as they are; an irrep spectrum
needs a finite group, computed on a subgroup the recorded elements contain
(``probes.run(run, subgroup=[...])``).
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from latentgeo._validate import check_int
from latentgeo.actions._base import (
    Action,
    ActionCheck,
    as_tensor,
    check_result,
    check_settings,
)
from latentgeo.actions._sets import SetPermutation, permute_axes
from latentgeo.actions._spec import from_spec, register

__all__ = ["ElementSubset", "RandomPermutations"]


class _Subset(Action):
    """What both subset actions share: elements by position along the orbit axis, and a
    homomorphism check over the pairs of recorded elements whose product is recorded."""

    def _values(self) -> np.ndarray:
        """The chosen element values (drawn once; cached by :attr:`element_values`)."""
        raise NotImplementedError

    def _compose(self, a: Any, b: Any) -> Any:
        """``a∘b`` of two element values."""
        raise NotImplementedError

    def _inverse(self, a: Any) -> Any:
        """The inverse of an element value."""
        raise NotImplementedError

    def _act_value(self, value: Any, x: torch.Tensor) -> torch.Tensor:
        """Act with any element of the group, given by its value (recorded or not)."""
        raise NotImplementedError

    @property
    def element_values(self) -> np.ndarray:
        """The chosen elements along the orbit axis (read-only), identity first."""
        return self._cached("_values_cache", self._values)

    def check(
        self,
        x: Any,
        *,
        max_pairs: int = 1024,
        seed: int = 0,
        atol: float | None = None,
        rtol: float | None = None,
        mask: Any = None,
        strict: bool | None = None,
    ) -> ActionCheck:
        """Verify on real data that the recorded elements act as a group would.

        Checks the identity, ``act(g, act(h, x)) == act(g∘h, x)`` for the pairs of recorded
        elements whose product ``g∘h`` is recorded too (a seeded random subset of
        ``max_pairs`` of them when there are more), and ``act(g⁻¹, act(g, x)) == x`` for
        every recorded ``g`` (acting with ``g⁻¹`` directly), so that every recorded element
        is checked even when few products are recorded.  Parameters and result as for
        :meth:`Action.check`.

        Returns
        -------
        ActionCheck
        """
        t, _ = as_tensor(x)
        self._validate(t)
        atol, rtol, strict, mask = check_settings(self, t, max_pairs, atol, rtol, mask, strict)

        def err(a: torch.Tensor, b: torch.Tensor) -> float:
            if not a.numel():
                return 0.0
            d = (a.to(torch.float64) - b.to(torch.float64)).abs()
            return float((d * mask if mask is not None else d).max())

        vals = self.element_values
        key = {self._key(v): i for i, v in enumerate(vals)}
        pairs = []
        for g in range(len(vals)):
            for h in range(len(vals)):
                gh = key.get(self._key(self._compose(vals[g], vals[h])))
                if gh is not None:
                    pairs.append((g, h, gh))
        if len(pairs) > max_pairs:
            pick = np.random.default_rng(seed).choice(len(pairs), size=max_pairs, replace=False)
            pairs = [pairs[i] for i in np.sort(pick)]
        orbit = self._orbit(t)
        identity_error = err(orbit[0], t)
        hom_error, worst = 0.0, None
        for g, h, gh in pairs:
            e = err(self._act(g, orbit[h]), orbit[gh])
            if worst is None or e > hom_error:
                hom_error, worst = e, (g, h)
        for g in range(len(vals)):
            e = err(self._act_value(self._inverse(vals[g]), orbit[g]), t)
            if worst is None or e > hom_error:
                hom_error, worst = e, (g, g)
        return check_result(
            self, t, identity_error, hom_error, worst, len(pairs), atol, rtol, strict
        )

    @staticmethod
    def _key(v: Any) -> Any:
        return tuple(np.ravel(v).tolist())


@register
@dataclasses.dataclass(frozen=True)
class ElementSubset(_Subset):
    """A fixed random subset of the elements of an action's finite group (identity first).

    Records ``n_elements`` of the group's elements instead of all of them: element ``k`` of
    the subset acts as element ``element_values[k]`` of ``action``.  The subset is drawn
    once from ``seed`` (``numpy.random.default_rng``): the identity, then ``n_elements - 1``
    other elements without replacement, in increasing index order; the same seed gives the
    same subset.

    Parameters
    ----------
    action : Action or dict
        Any action of a finite group (or its spec, as written by ``to_spec``).
    n_elements : int
        How many elements to record, ``1 <= n_elements <= order``.
    seed : int
        Seed of the draw.

    Attributes
    ----------
    element_values : int64 array of shape (n_elements,)
        The chosen element indices of ``action.group``, ``element_values[0]`` the identity.
    elements : tuple of str
        Their names.

    Examples
    --------
    >>> from latentgeo.actions import SetPermutation
    >>> sub = ElementSubset(SetPermutation(5), n_elements=10, seed=0)
    >>> sub.order, int(sub.element_values[0]), sub.elements[0]
    (10, 0, 'e')
    """

    action: Any = None
    n_elements: int = 1
    seed: int = 0

    def __post_init__(self) -> None:
        action = self.action
        if isinstance(action, Mapping):
            action = from_spec(action)
        if not isinstance(action, Action) or isinstance(action, _Subset):
            raise TypeError(f"action must be an Action of a finite group, got {action!r}")
        order = getattr(action.group, "order", None)
        if not action.group.is_finite or not isinstance(order, numbers.Integral):
            raise ValueError(f"ElementSubset needs an action of a finite group, got {action!r}")
        object.__setattr__(self, "action", action)
        n = check_int(self.n_elements, "n_elements", minimum=1)
        if n > action.order:
            raise ValueError(
                f"n_elements={n} exceeds the {action.order} elements of {action.group!r}"
            )
        object.__setattr__(self, "n_elements", n)
        object.__setattr__(self, "seed", check_int(self.seed, "seed"))
        object.__setattr__(self, "exact", action.exact)

    @property
    def group(self) -> Any:
        return self.action.group

    def _values(self) -> np.ndarray:
        full = np.asarray(self.action.element_values, dtype=np.int64)
        identity = int(self.group.identity)
        rest = full[full != identity]
        rng = np.random.default_rng(self.seed)
        chosen = np.sort(rng.choice(rest, size=self.n_elements - 1, replace=False))
        out = np.concatenate([[identity], chosen]).astype(np.int64)
        out.flags.writeable = False
        return out

    @property
    def elements(self) -> tuple[str, ...]:
        names = self.action.elements
        return tuple(names[int(v)] for v in self.element_values)

    def element_index(self, element: Any) -> int:
        if isinstance(element, tuple):  # a permutation: its index in the group, then here
            k = self.action.element_index(element)
            hits = np.flatnonzero(self.element_values == k)
            if not len(hits):
                raise ValueError(f"{element!r} is not among the recorded elements of {self!r}")
            return int(hits[0])
        return super().element_index(element)

    def _compose(self, a: Any, b: Any) -> Any:
        return self.group.compose(int(a), int(b))

    def _inverse(self, a: Any) -> Any:
        return self.group.inverse(int(a))

    def _act_value(self, value: Any, x: torch.Tensor) -> torch.Tensor:
        return self.action._act(int(value), x)

    def _act(self, k: int, x: torch.Tensor) -> torch.Tensor:
        return self.action._act(int(self.element_values[k]), x)

    def _validate(self, x: torch.Tensor) -> None:
        self.action._validate(x)

    def to_spec(self) -> dict[str, Any]:
        return {
            "type": "ElementSubset",
            "action": self.action.to_spec(),
            "n_elements": self.n_elements,
            "seed": self.seed,
        }


@register
@dataclasses.dataclass(frozen=True)
class RandomPermutations(_Subset):
    """A fixed random set of permutations of ``n`` items (identity first), for ``n`` too large
    to enumerate ``S_n`` (exact).

    Acts as :class:`SetPermutation` does (item ``i`` moves to place ``σ[i]`` along the
    permuted axes), with ``n_elements`` permutations drawn uniformly, once, from ``seed``.
    The group is :class:`latentgeo.groups.Permutations` (``n!`` elements, not listed).
    ``element_values`` are the permutations themselves, an int64 array of shape
    (n_elements, n); ``elements`` their one-line names (``"(1, 0, 2, ...)"``).

    Parameters
    ----------
    n : int
        Number of items (set elements, graph nodes).
    n_elements : int
        Number of permutations to record (the identity and ``n_elements - 1`` random ones,
        distinct).
    kind, axes
        Which axes are permuted, as for :class:`SetPermutation`.
    seed : int
        Seed of the draw (``numpy.random.default_rng``).
    include : sequence of permutations, optional
        Permutations recorded after the identity and before the random ones (for instance a
        finite subgroup to compute spectra on: ``probes.run(run, subgroup=include)``).

    Examples
    --------
    >>> act = RandomPermutations(50, n_elements=8, seed=0)
    >>> act.element_values.shape, act.orbit(torch.zeros(2, 50, 3)).shape
    ((8, 50), torch.Size([8, 2, 50, 3]))
    """

    n: int = 1
    n_elements: int = 1
    kind: str = "set"
    axes: Any = None
    seed: int = 0
    include: Any = None

    def __post_init__(self) -> None:
        n = check_int(self.n, "n", minimum=1)
        object.__setattr__(self, "n", n)
        object.__setattr__(self, "axes", self._layout.axes)
        m = check_int(self.n_elements, "n_elements", minimum=1)
        object.__setattr__(self, "n_elements", m)
        object.__setattr__(self, "seed", check_int(self.seed, "seed"))
        if self.include is not None:
            inc = tuple(tuple(int(v) for v in p) for p in self.include)
            self.group.check(np.array(inc, dtype=np.int64).reshape(-1, n))
            object.__setattr__(self, "include", inc)

    @property
    def _layout(self) -> SetPermutation:
        # The trivial subgroup of SetPermutation validates kind/axes and the input shapes.
        return self._cached(
            "_layout_cache",
            lambda: SetPermutation(
                self.n, kind=self.kind, axes=self.axes, permutations=[tuple(range(self.n))]
            ),
        )

    @property
    def group(self) -> Any:
        from latentgeo.groups import Permutations

        return self._cached("_group", lambda: Permutations(self.n))

    def _values(self) -> np.ndarray:
        ident = tuple(range(self.n))
        chosen = [ident] + [p for p in dict.fromkeys(self.include or ()) if p != ident]
        if len(chosen) > self.n_elements:
            raise ValueError(
                f"include= holds {len(chosen)} distinct permutations with the identity, more "
                f"than n_elements={self.n_elements}"
            )
        seen = set(chosen)
        rng = np.random.default_rng(self.seed)
        if self.n <= 20 and self.n_elements > math.factorial(self.n):
            raise ValueError(f"n_elements={self.n_elements} exceeds the {self.n}! permutations")
        while len(chosen) < self.n_elements:
            p = tuple(int(v) for v in rng.permutation(self.n))
            if p not in seen:
                seen.add(p)
                chosen.append(p)
        out = np.array(chosen, dtype=np.int64)
        out.flags.writeable = False
        return out

    @property
    def elements(self) -> tuple[str, ...]:
        return tuple(str(tuple(int(v) for v in p)) for p in self.element_values)

    def element_index(self, element: Any) -> int:
        if isinstance(element, (tuple, list, np.ndarray)):
            hits = np.flatnonzero((self.element_values == np.asarray(element)).all(axis=1))
            if not len(hits):
                raise ValueError(f"{element!r} is not among the recorded permutations")
            return int(hits[0])
        return super().element_index(element)

    def _compose(self, a: Any, b: Any) -> Any:
        return self.group.compose(a, b)

    def _inverse(self, a: Any) -> Any:
        return self.group.inverse(a)

    def _act_value(self, value: Any, x: torch.Tensor) -> torch.Tensor:
        return permute_axes(x, np.asarray(value), self.axes)

    def _act(self, k: int, x: torch.Tensor) -> torch.Tensor:
        return permute_axes(x, self.element_values[k], self.axes)

    def _validate(self, x: torch.Tensor) -> None:
        self._layout._validate(x)

    def to_spec(self) -> dict[str, Any]:
        return {
            "type": "RandomPermutations",
            "n": self.n,
            "n_elements": self.n_elements,
            "kind": self.kind,
            "axes": list(self.axes),
            "seed": self.seed,
            "include": None if self.include is None else [list(p) for p in self.include],
        }
