"""The alternating group A_n (n <= 7): real irreps by restricting Young's orthogonal form."""

from __future__ import annotations

import itertools

import numpy as np

from latentgeo._validate import check_int

from ._decompose import split_representation
from ._irreps import Irrep, commutant_dimension
from ._permutation import PermutationGroup, _codes
from ._registry import GROUPS
from ._symmetric import MAX_DEGREE, partitions, young_matrices

__all__ = ["Alternating"]


def _conjugate(shape: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(sum(1 for part in shape if part > j) for j in range(shape[0])) if shape else ()


def _sign(perms: np.ndarray) -> np.ndarray:
    """Sign of each row: (-1)^(number of inversions)."""
    n = perms.shape[1]
    inversions = np.zeros(perms.shape[0], dtype=np.int64)
    for i in range(n):
        inversions += (perms[:, i : i + 1] > perms[:, i + 1 :]).sum(axis=1)
    return 1 - 2 * (inversions % 2)


@GROUPS.register
class Alternating(PermutationGroup):
    """The alternating group ``A_n`` of even permutations of ``{0, ..., n-1}``, ``n <= 7``.

    Elements are the even permutations in lexicographic order of their one-line tuples,
    identity first, named in cycle notation; composition ``(a∘b)[i] = a[b[i]]``.  Spec
    ``"A5"``; order ``n!/2`` (``A_1`` and ``A_2`` are trivial).

    Real irreps come from the restriction to ``A_n`` of the irreps of ``S_n`` in Young's
    orthogonal form (Fulton & Harris, *Representation theory*, §5.1): for a partition
    ``lambda`` different from its conjugate ``lambda'``, ``[lambda]`` restricts to an
    irreducible (equal to the restriction of ``[lambda']``, which is skipped); a
    self-conjugate ``lambda`` restricts to the sum of two conjugate irreps.  When their
    characters are real the sum is split numerically (a random symmetric element of the
    commutant), giving ``"[lambda]+"`` and ``"[lambda]-"`` (``+`` the one with the larger
    character on the first class where they differ); when they are complex the restriction is
    one real irrep of complex type named ``"[lambda]"``.  For ``A_5``: ``[5]``, ``[4,1]``,
    ``[3,2]``, ``[3,1,1]+``, ``[3,1,1]-`` of dimensions 1, 4, 5, 3, 3.

    Parameters
    ----------
    n : int
        Degree, ``1 <= n <= 7``.

    Examples
    --------
    >>> G = Alternating(5)
    >>> G.order, G.spec, sorted(r.dim for r in G.irreps())
    (60, 'A5', [1, 3, 3, 4, 5])
    """

    spec_prefix = "A"
    n: int
    _parent_rows: np.ndarray

    def __init__(self, n: int) -> None:
        n = check_int(n, "Alternating group degree n", minimum=1, maximum=MAX_DEGREE)
        self.__dict__["n"] = n
        all_perms = np.array(list(itertools.permutations(range(n))), dtype=np.int64).reshape(-1, n)
        even = _sign(all_perms) == 1
        self.__dict__["_parent_rows"] = np.flatnonzero(even)
        # The 3-cycles (0 1 k) generate A_n.
        gens = []
        for k in range(2, n):
            p = list(range(n))
            p[0], p[1], p[k] = 1, k, 0
            gens.append(p)
        self._init_from_perms(all_perms[even], np.array(gens, dtype=np.int64).reshape(-1, n))

    def _key(self) -> tuple:
        return (self.n,)

    def __repr__(self) -> str:
        return f"Alternating({self.n})"

    def __reduce__(self) -> tuple:
        return (Alternating, (self.n,))

    @property
    def spec(self) -> str:
        return f"A{self.n}"

    def _compute_irreps(self) -> tuple[Irrep, ...]:
        n = self.n
        if n <= 2:
            one = np.ones(self.order)
            return (Irrep(f"[{n}]", 1, one[:, None, None], one, "real"),)
        all_perms = np.array(list(itertools.permutations(range(n))), dtype=np.int64)
        codes = _codes(all_perms, n)
        adjacent = np.empty((n - 1, all_perms.shape[0]), dtype=np.int64)
        for i in range(n - 1):
            swapped = all_perms.copy()  # (i i+1)∘p swaps the values i and i+1
            swapped[all_perms == i] = i + 1
            swapped[all_perms == i + 1] = i
            adjacent[i] = np.searchsorted(codes, _codes(swapped, n))
        rows = self._parent_rows
        irreps: list[Irrep] = []
        for shape in partitions(n):
            conj = _conjugate(shape)
            if conj > shape:  # the restriction equals that of [conj], already listed
                continue
            mats = young_matrices(shape, adjacent)[rows]
            name = "[" + ",".join(map(str, shape)) + "]"
            chi = np.trace(mats, axis1=1, axis2=2)
            if conj != shape:
                irreps.append(Irrep(name, mats.shape[1], mats, chi, "real"))
                continue
            pieces = split_representation(mats, seed=0)
            if len(pieces) == 1:  # two complex conjugate irreps: one real irrep of C type
                irreps.append(Irrep(name, mats.shape[1], mats, chi, "complex"))
                continue
            subs = []
            for basis in pieces:
                sub = np.einsum("ai,gab,bj->gij", basis, mats, basis, optimize=True)
                subs.append((sub, np.trace(sub, axis1=1, axis2=2)))
            diff = np.flatnonzero(np.abs(subs[0][1] - subs[1][1]) > 1e-8)
            if diff.size and subs[0][1][diff[0]] < subs[1][1][diff[0]]:
                subs.reverse()
            for suffix, (sub, c) in zip("+-", subs, strict=True):
                commutant_dimension(c)  # raises unless irreducible
                irreps.append(Irrep(name + suffix, sub.shape[1], sub, c, "real"))
        return tuple(irreps)
