"""The symmetric group S_n (n <= 7) with irreps in Young's orthogonal form."""

from __future__ import annotations

import itertools
from functools import cached_property

import numpy as np

from latentgeo._validate import check_int

from ._irreps import Irrep
from ._permutation import PermutationGroup, cycle_notation, cycle_types
from ._registry import GROUPS

__all__ = ["Symmetric", "cycle_notation", "young_matrices"]

MAX_DEGREE = 7


@GROUPS.register
class Symmetric(PermutationGroup):
    """The symmetric group ``S_n`` of permutations of ``{0, ..., n-1}``, ``n <= 7``.

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
        Degree, ``1 <= n <= 7``.

    Notes
    -----
    Memory: the Cayley table holds ``(n!)^2`` int64 (200 MB for ``S_7``, 4 MB for ``S_6``)
    and :meth:`irreps`, computed on first use and cached on the group, holds
    ``sum_lambda n! d_lambda^2 = (n!)^2`` float64 (another 200 MB for ``S_7``).  Spectra and
    projections need only the characters (:attr:`character_table`), which for ``S_n`` are
    traces of the same matrices; nothing of size ``|G| x |G|`` per irrep is ever formed.

    Attributes
    ----------
    n : int
        The degree.
    permutations : tuple of tuple of int
        One-line notation of every element, in index order.

    Examples
    --------
    >>> G = Symmetric(3)
    >>> G.elements
    ('e', '(1 2)', '(0 1)', '(0 1 2)', '(0 2 1)', '(0 2)')
    >>> [r.name for r in G.irreps()]
    ['[3]', '[2,1]', '[1,1,1]']
    """

    spec_prefix = "S"
    n: int
    permutations: tuple[tuple[int, ...], ...]

    def __init__(self, n: int) -> None:
        n = check_int(n, "Symmetric group degree n", minimum=1, maximum=MAX_DEGREE)
        self.__dict__["n"] = n
        perms = np.array(list(itertools.permutations(range(n))), dtype=np.int64)
        gens = [(1, 0, *range(2, n)), (*range(1, n), 0)] if n > 1 else []
        self._init_from_perms(perms.reshape(-1, n), np.array(gens, dtype=np.int64))

    def _key(self) -> tuple:
        return (self.n,)

    def __repr__(self) -> str:
        return f"Symmetric({self.n})"

    def __reduce__(self) -> tuple:
        return (Symmetric, (self.n,))

    @property
    def spec(self) -> str:
        return f"S{self.n}"

    @property
    def generators(self) -> tuple[int, ...]:
        if self.n == 1:
            return ()
        swap = (1, 0, *range(2, self.n))
        if self.n == 2:
            return (self.index(swap),)
        cycle = (*range(1, self.n), 0)
        return (self.index(swap), self.index(cycle))

    @cached_property
    def conjugacy_classes(self) -> tuple[tuple[int, ...], ...]:
        """Conjugacy classes (permutations of equal cycle type), ordered by smallest element."""
        return classes_by_cycle_type(self._perms)

    def _compute_irreps(self) -> tuple[Irrep, ...]:
        n = self.n
        adjacent = (
            np.stack(
                [
                    self._table[self.index((*range(i), i + 1, i, *range(i + 2, n)))]
                    for i in range(n - 1)
                ]
            )
            if n > 1
            else np.zeros((0, 1), dtype=np.int64)
        )
        irreps = []
        for shape in partitions(n):
            mats = young_matrices(shape, adjacent)
            name = "[" + ",".join(map(str, shape)) + "]"
            irreps.append(
                Irrep(name, mats.shape[1], mats, np.trace(mats, axis1=1, axis2=2), "real")
            )
        return tuple(irreps)


def classes_by_cycle_type(perms: np.ndarray) -> tuple[tuple[int, ...], ...]:
    """Classes of equal cycle type among the rows of ``perms``, ordered by smallest index."""
    groups: dict[tuple[int, ...], list[int]] = {}
    for i, t in enumerate(cycle_types(perms)):
        groups.setdefault(t, []).append(i)
    return tuple(sorted((tuple(v) for v in groups.values()), key=lambda c: c[0]))


def young_matrices(shape: tuple[int, ...], adjacent: np.ndarray) -> np.ndarray:
    """Young's orthogonal form of every permutation, by breadth-first search.

    Parameters
    ----------
    shape : tuple of int
        A partition of ``n``.
    adjacent : int array of shape (n - 1, n!)
        ``adjacent[i, p]`` is the index of ``(i i+1)∘p``; index 0 is the identity.

    Returns
    -------
    array of shape (n!, d, d)
        ``rho((i i+1)∘h) = rho((i i+1)) rho(h)`` filled in layer by layer over the Cayley
        graph of the adjacent transpositions (at most ``n(n-1)/2`` layers).
    """
    order = adjacent.shape[1]
    gens = young_orthogonal_transpositions(shape)
    d = gens.shape[1] if gens.shape[0] else 1
    mats = np.zeros((order, d, d))
    mats[0] = np.eye(d)
    done = np.zeros(order, dtype=bool)
    done[0] = True
    frontier = np.array([0], dtype=np.int64)
    while frontier.size:
        nxt = []
        for i in range(adjacent.shape[0]):
            g = adjacent[i, frontier]
            new = ~done[g]
            g, h = g[new], frontier[new]
            g, first = np.unique(g, return_index=True)
            h = h[first]
            mats[g] = gens[i] @ mats[h]
            done[g] = True
            nxt.append(g)
        frontier = np.concatenate(nxt) if nxt else np.zeros(0, dtype=np.int64)
    return mats


def partitions(n: int) -> list[tuple[int, ...]]:
    """Partitions of ``n`` in decreasing lexicographic order (``(n,)`` first)."""

    def rec(rest: int, largest: int) -> list[tuple[int, ...]]:
        if rest == 0:
            return [()]
        return [
            (first, *tail)
            for first in range(min(rest, largest), 0, -1)
            for tail in rec(rest - first, first)
        ]

    return rec(n, n)


def standard_tableaux(shape: tuple[int, ...]) -> list[tuple[tuple[int, int], ...]]:
    """Standard Young tableaux of a shape, each as the (row, column) box of 0, 1, ..., n-1.

    Ordered by the row sequence of the entries (the Yamanouchi word), lexicographically.
    """
    n = sum(shape)
    out: list[tuple[tuple[int, int], ...]] = []

    def rec(rows: list[int], boxes: list[tuple[int, int]]) -> None:
        if len(boxes) == n:
            out.append(tuple(boxes))
            return
        for r, length in enumerate(rows):
            # entry len(boxes) may go at the end of row r if the row is not full and the
            # row above is longer (so columns increase downwards)
            if length < shape[r] and (r == 0 or rows[r - 1] > length):
                rows[r] += 1
                rec(rows, [*boxes, (r, length)])
                rows[r] -= 1

    rec([0] * len(shape), [])
    return out


def young_orthogonal_transpositions(shape: tuple[int, ...]) -> np.ndarray:
    """Young's orthogonal form of the adjacent transpositions ``(i i+1)``.

    Returns
    -------
    array of shape (n - 1, d, d)
        Orthogonal symmetric involutions; on standard tableau ``T`` with axial distance
        ``a = content(i+1) - content(i)``, ``(i i+1)`` maps ``e_T`` to
        ``e_T / a + sqrt(1 - 1/a^2) e_{T'}`` where ``T'`` swaps ``i`` and ``i+1``.
    """
    tableaux = standard_tableaux(shape)
    where = {t: k for k, t in enumerate(tableaux)}
    n, d = sum(shape), len(tableaux)
    mats = np.zeros((max(n - 1, 0), d, d))
    for i in range(n - 1):
        for k, t in enumerate(tableaux):
            (r1, c1), (r2, c2) = t[i], t[i + 1]
            axial = (c2 - r2) - (c1 - r1)
            mats[i, k, k] = 1.0 / axial
            if abs(axial) > 1:
                swapped = list(t)
                swapped[i], swapped[i + 1] = t[i + 1], t[i]
                mats[i, where[tuple(swapped)], k] = np.sqrt(1.0 - 1.0 / axial**2)
    return mats
