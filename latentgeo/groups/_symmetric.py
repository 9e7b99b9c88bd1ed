"""The symmetric group S_n (n <= 5) with irreps in Young's orthogonal form."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np

from ._finite import FiniteGroup, check_int

__all__ = ["Symmetric"]

MAX_DEGREE = 5


def cycle_notation(perm: tuple[int, ...]) -> str:
    """Cycle notation of a permutation ``i -> perm[i]``; ``"e"`` for the identity.

    >>> cycle_notation((1, 2, 0, 4, 3))
    '(0 1 2)(3 4)'
    """
    seen, cycles = set(), []
    for start in range(len(perm)):
        if start in seen or perm[start] == start:
            continue
        cycle, i = [], start
        while i not in seen:
            seen.add(i)
            cycle.append(i)
            i = perm[i]
        cycles.append("(" + " ".join(map(str, cycle)) + ")")
    return "".join(cycles) or "e"


class Symmetric(FiniteGroup):
    """The symmetric group ``S_n`` of permutations of ``{0, ..., n-1}``, ``n <= 5``.

    Elements are the permutations ``p`` (``i -> p[i]``) in lexicographic order of their
    one-line tuples, identity first; :attr:`permutations` holds the tuples and
    :attr:`elements` their cycle-notation names (``"e"``, ``"(0 1)"``, ``"(0 1 2)"``, ...).
    Composition of maps: ``(a∘b)[i] = a[b[i]]``.  :meth:`index` accepts a permutation tuple
    as well as an index or name.

    Real irreps are labelled by partitions of ``n`` (``"[3]"``, ``"[2,1]"``, ``"[1,1,1]"``),
    built in Young's orthogonal form (orthogonal matrices, all of real type), ordered by
    decreasing partition in lexicographic order, so the trivial ``"[n]"`` is first and the
    sign ``"[1,...,1]"`` last.

    Parameters
    ----------
    n : int
        Degree, ``1 <= n <= 5``.

    Examples
    --------
    >>> G = Symmetric(3)
    >>> G.elements
    ('e', '(1 2)', '(0 1)', '(0 1 2)', '(0 2 1)', '(0 2)')
    >>> [r.name for r in G.irreps]
    ['[3]', '[2,1]', '[1,1,1]']
    """

    def __init__(self, n: int) -> None:
        n = check_int(n, "Symmetric group degree n", minimum=1, maximum=MAX_DEGREE)
        self.__dict__["n"] = n
        perms = np.array(list(itertools.permutations(range(n))), dtype=np.int64)
        # Encode permutations as base-n integers to look up the index of a composition.
        weights = n ** np.arange(n - 1, -1, -1)
        lookup = {int(c): i for i, c in enumerate(perms @ weights)}
        composed = perms[:, perms]  # [a, b, i] = a[b[i]]
        codes = composed @ weights
        table = np.vectorize(lookup.__getitem__, otypes=[np.int64])(codes)
        self.__dict__["permutations"] = tuple(tuple(int(x) for x in p) for p in perms)
        self._setup(table, tuple(cycle_notation(p) for p in self.permutations))

    def _key(self) -> tuple:
        return (self.n,)

    def __repr__(self) -> str:
        return f"Symmetric({self.n})"

    def __reduce__(self) -> tuple:
        return (Symmetric, (self.n,))

    @property
    def spec(self) -> str:
        return f"S{self.n}"

    def index(self, element: Any) -> int:
        if isinstance(element, tuple | list) and not isinstance(element, str):
            key = tuple(element)
            try:
                return self.permutations.index(key)
            except ValueError:
                raise ValueError(f"{key!r} is not a permutation of range({self.n})") from None
        return super().index(element)

    @property
    def generators(self) -> tuple[int, ...]:
        if self.n == 1:
            return ()
        swap = (1, 0, *range(2, self.n))
        if self.n == 2:
            return (self.index(swap),)
        cycle = (*range(1, self.n), 0)
        return (self.index(swap), self.index(cycle))
