"""Finite groups as immutable value objects defined by a Cayley table."""

from __future__ import annotations

import operator
from collections.abc import Sequence
from functools import cached_property
from typing import Any

import numpy as np

from latentgeo._validate import check_int

from ._irreps import Irrep
from ._protocol import Group, as_generator
from ._registry import GROUPS

__all__ = ["FiniteGroup"]


def _as_table(table: Any) -> np.ndarray:
    """Validate the shape and entries of a candidate Cayley table; return an int64 copy."""
    arr = np.asarray(table)
    if arr.dtype == object or not (
        np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)
    ):
        raise TypeError(f"Cayley table must be an array of integers, got dtype {arr.dtype!r}")
    if arr.ndim != 2 or arr.shape[0] != arr.shape[1] or arr.shape[0] == 0:
        raise ValueError(
            f"Cayley table must be a non-empty square 2-D array, got shape {arr.shape!r}"
        )
    if np.issubdtype(arr.dtype, np.floating):
        if not np.all(np.isfinite(arr)) or not np.array_equal(arr, np.round(arr)):
            raise TypeError("Cayley table must hold integer element indices, got non-integers")
    out = arr.astype(np.int64)
    n = out.shape[0]
    bad = (out < 0) | (out >= n)
    if bad.any():
        a, b = map(int, np.argwhere(bad)[0])
        raise ValueError(
            f"Cayley table entry table[{a}, {b}] = {int(out[a, b])!r} is not an element "
            f"index in range(0, {n})"
        )
    return out


def _describe(t: np.ndarray) -> str:
    """The table itself when small, else its shape (for error messages)."""
    return repr(t.tolist()) if t.shape[0] <= 8 else f"of shape {t.shape!r}"


def _check_group_axioms(t: np.ndarray) -> None:
    """Raise ValueError unless ``t`` is the Cayley table of a group with identity 0."""
    n = t.shape[0]
    ref = np.arange(n)
    for axis, what in ((1, "row"), (0, "column")):
        lines = np.sort(t, axis=axis)
        ok = np.all(lines == (ref if axis == 1 else ref[:, None]), axis=axis)
        if not ok.all():
            i = int(np.flatnonzero(~ok)[0])
            line = t[i] if axis == 1 else t[:, i]
            raise ValueError(
                f"Cayley table {_describe(t)} is not a latin square: {what} {i} is "
                f"{line.tolist()!r}, which is not a permutation of the elements"
            )
    left_ids = np.flatnonzero(np.all(t == ref[None, :], axis=1))
    right_ids = np.flatnonzero(np.all(t == ref[:, None], axis=0))
    identities = np.intersect1d(left_ids, right_ids)
    if identities.size == 0:
        raise ValueError(f"Cayley table {_describe(t)} has no two-sided identity element")
    if identities[0] != 0:
        raise ValueError(
            f"the identity must be element 0, but the table's identity is element "
            f"{int(identities[0])!r}; reorder the elements so the identity comes first"
        )
    # Light's associativity test: the middle factors b with (a∘b)∘c == a∘(b∘c) for all a, c
    # are closed under ∘ (if b1, b2 qualify, (a∘(b1∘b2))∘c = ((a∘b1)∘b2)∘c = ... =
    # a∘((b1∘b2)∘c)), so checking b over a generating set proves associativity: O(n^2 |S|)
    # instead of O(n^3) (Clifford & Preston, *Algebraic theory of semigroups*, §1.2).
    for b in _generating_set(t):
        lhs = t[t[:, b], :]  # (a∘b)∘c, shape (n, n)
        rhs = t[:, t[b, :]]  # a∘(b∘c)
        diff = lhs != rhs
        if diff.any():
            a, c = map(int, np.argwhere(diff)[0])
            raise ValueError(
                f"Cayley table {_describe(t)} is not associative: ({a}∘{b})∘{c} = "
                f"{int(lhs[a, c])} but {a}∘({b}∘{c}) = {int(rhs[a, c])}"
            )


def _generating_set(t: np.ndarray) -> list[int]:
    """Elements ``S`` such that right products ``((e∘s1)∘s2)∘...`` reach every element."""
    n = t.shape[0]
    reached = np.zeros(n, dtype=bool)
    reached[0] = True
    gens: list[int] = []
    for g in range(1, n):
        if reached[g]:
            continue
        gens.append(g)
        frontier = np.flatnonzero(reached)
        while frontier.size:  # close the reached set under right products with gens
            new = np.unique(t[frontier[:, None], np.asarray(gens)])
            new = new[~reached[new]]
            reached[new] = True
            frontier = new
        if reached.all():
            break
    return gens


def _default_names(n: int) -> tuple[str, ...]:
    return ("e", *(f"g{i}" for i in range(1, n)))


def _check_names(names: Any, n: int) -> tuple[str, ...]:
    if isinstance(names, str) or not isinstance(names, Sequence | np.ndarray):
        raise TypeError(f"names must be a sequence of {n} str, got {names!r}")
    names = tuple(names)
    if len(names) != n:
        raise ValueError(f"names must have one entry per element ({n}), got {len(names)}")
    for x in names:
        if not isinstance(x, str) or not x:
            raise TypeError(f"element names must be non-empty str, got {x!r}")
    if len(set(names)) != n:
        dup = sorted({x for x in names if names.count(x) > 1})
        raise ValueError(f"element names must be unique, got duplicates {dup!r}")
    return names


class FiniteGroup(Group):
    """A finite group given by its Cayley table: an immutable, hashable value object.

    Build one with :meth:`from_cayley_table` (validated) or use a named family
    (:class:`Cyclic`, :class:`Dihedral`, :class:`DirectProduct`, :class:`Symmetric`).
    Composition follows maps: ``compose(a, b)`` is ``a∘b``, "apply ``b`` first, then
    ``a``"; the identity is always element 0.

    Parameters
    ----------
    cayley_table : array_like of int, shape (order, order)
        ``cayley_table[a, b]`` is the index of ``a∘b``.
    names : sequence of str, optional
        Element names (default ``"e", "g1", "g2", ...``).

    Raises
    ------
    ValueError
        If the table is not square, has out-of-range entries, is not a latin square, has
        no identity (or it is not element 0), or is not associative.
    TypeError
        If the table does not hold integers or the names are not strings.

    Examples
    --------
    >>> G = FiniteGroup.from_cayley_table([[0, 1], [1, 0]], names=["e", "s"])
    >>> G.order, G.compose("s", "s"), [irrep.name for irrep in G.irreps()]
    (2, 0, ['1a', '1b'])
    """

    # Set once by _setup (the instance is immutable).
    _table: np.ndarray
    _names: tuple[str, ...]
    _name_index: dict[str, int]

    def __init__(self, cayley_table: Any, names: Sequence[str] | None = None) -> None:
        table = _as_table(cayley_table)
        _check_group_axioms(table)
        n = table.shape[0]
        names = _default_names(n) if names is None else _check_names(names, n)
        self._setup(table, names)

    @classmethod
    def from_cayley_table(cls, table: Any, names: Sequence[str] | None = None) -> FiniteGroup:
        """Build (and validate) a finite group from its Cayley table.

        Parameters
        ----------
        table : array_like of int, shape (order, order)
            ``table[a, b]`` is the index of ``a∘b``; element 0 must be the identity.
        names : sequence of str, optional
            Element names (default ``"e", "g1", ...``).

        Returns
        -------
        FiniteGroup
            A group whose irreps are computed numerically from the regular representation.
        """
        return FiniteGroup(table, names)

    @classmethod
    def from_generators(cls, permutations: Sequence[Sequence[int]]) -> FiniteGroup:
        """The group generated by permutations of ``range(n)`` (one-line notation).

        Parameters
        ----------
        permutations : sequence of sequence of int
            Generators; ``p[i]`` is the image of ``i``.  All of the same length ``n``.

        Returns
        -------
        PermutationGroup
            Elements are the group's permutations in lexicographic order of their one-line
            tuples (identity first), named in cycle notation (``"(0 1 2)(3 4)"``);
            ``(a∘b)[i] = a[b[i]]``.  Its ``repr`` is
            ``"FiniteGroup.from_generators([[...], ...])"``, which :func:`parse` reads back.
            Real irreps come from the characters (Burnside–Dixon) and the regular
            representation (:mod:`latentgeo.groups._regular`).

        Raises
        ------
        ValueError
            If a generator is not a permutation of ``range(n)`` or the lengths differ.
        TypeError
            If the generators are not integer sequences.

        Examples
        --------
        >>> A5 = FiniteGroup.from_generators([(1, 2, 0, 3, 4), (0, 1, 3, 4, 2)])
        >>> A5.order, sorted(r.dim for r in A5.irreps())
        (60, [1, 3, 3, 4, 5])
        """
        from ._permutation import PermutationGroup

        return PermutationGroup(permutations)

    # -- construction helpers for subclasses -------------------------------------------
    def _setup(self, table: np.ndarray, names: tuple[str, ...]) -> None:
        table = np.ascontiguousarray(table, dtype=np.int64)
        table.flags.writeable = False
        d = self.__dict__
        d["_table"] = table
        d["_names"] = tuple(names)
        d["_name_index"] = {x: i for i, x in enumerate(names)}

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable; cannot set {name!r}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable; cannot delete {name!r}")

    # -- identity of the value object ---------------------------------------------------
    def _key(self) -> tuple:
        return ("table", self._table.shape[0], self._table.tobytes(), self._names)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, FiniteGroup):
            return NotImplemented
        return type(self) is type(other) and self._key() == other._key()

    def __hash__(self) -> int:
        # Cached: the key of a Cayley-table group holds its whole table.
        h = self.__dict__.get("_hash")
        if h is None:
            h = self.__dict__["_hash"] = hash((type(self).__name__, self._key()))
        return h

    def __repr__(self) -> str:
        names = "" if self._names == _default_names(self.order) else f", names={self._names!r}"
        return f"FiniteGroup.from_cayley_table({self._table.tolist()!r}{names})"

    def __reduce__(self) -> tuple:
        from ._parse import parse

        return (parse, (repr(self),))

    def __mul__(self, other: object) -> FiniteGroup:
        """``G * H`` is the direct product ``DirectProduct(G, H)``."""
        if not isinstance(other, FiniteGroup):
            return NotImplemented
        from ._product import DirectProduct

        return DirectProduct(self, other)

    @property
    def spec(self) -> str:
        """Short string that :func:`parse` turns back into this group (e.g. ``"D4"``).

        For a group built from a Cayley table this is its full ``repr``.
        """
        return repr(self)

    @property
    def is_finite(self) -> bool:
        """``True``."""
        return True

    # -- elements -----------------------------------------------------------------------
    @property
    def order(self) -> int:
        """Number of elements."""
        return int(self._table.shape[0])

    def __len__(self) -> int:
        return self.order

    @property
    def identity(self) -> int:
        """Index of the identity (always 0)."""
        return 0

    @property
    def elements(self) -> tuple[str, ...]:
        """Element names, in index order."""
        return self._names

    @property
    def cayley_table(self) -> np.ndarray:
        """Read-only int64 array of shape (order, order); ``[a, b]`` is the index of ``a∘b``."""
        return self._table

    def index(self, element: Any) -> int:
        """Index of an element given by its index or its name.

        Raises
        ------
        ValueError
            If the name is unknown (the message lists valid names) or the index out of range.
        TypeError
            If ``element`` is neither an integer nor a str.
        """
        if isinstance(element, str):
            try:
                return self._name_index[element]
            except KeyError:
                shown = list(self._names[:24]) + (["..."] if self.order > 24 else [])
                raise ValueError(
                    f"unknown element {element!r} of {self._label}; valid names: {shown}"
                ) from None
        if isinstance(element, bool):
            raise TypeError(f"element must be an index or a name, got {element!r}")
        try:
            i = operator.index(element)
        except TypeError:
            raise TypeError(
                f"element must be an int index or a str name, got {element!r}"
            ) from None
        if not 0 <= i < self.order:
            raise ValueError(f"element index {i!r} out of range(0, {self.order})")
        return i

    def sample(self, n: int, generator: Any = None) -> np.ndarray:
        """``n`` element indices drawn uniformly (the Haar measure of a finite group).

        Parameters
        ----------
        n : int
        generator : numpy.random.Generator or int, optional

        Returns
        -------
        int64 array of shape (n,)
        """
        n = check_int(n, "number of elements n", minimum=0)
        return as_generator(generator).integers(0, self.order, size=n, dtype=np.int64)

    def grid(self, n: int | None = None) -> np.ndarray:
        """All element indices: the exact quadrature grid of a finite group.

        Raises
        ------
        NotImplementedError
            If ``n`` is given and is not the group's order.
        """
        if n is not None and n != self.order:
            raise NotImplementedError(
                f"{self._label} has a quadrature grid of its {self.order} elements only, "
                f"not of {n!r}"
            )
        return self.element_values()

    def _indices(self, x: Any) -> Any:
        if isinstance(x, np.ndarray) and np.issubdtype(x.dtype, np.integer):
            if x.size and (x.min() < 0 or x.max() >= self.order):
                raise ValueError(f"element indices must lie in range(0, {self.order})")
            return x
        return self.index(x)

    def compose(self, a: Any, b: Any) -> Any:
        """Index of ``a∘b`` (apply ``b`` first, then ``a``).

        ``a`` and ``b`` are indices or names, or integer arrays (broadcast; an array is
        returned).
        """
        r = self._table[self._indices(a), self._indices(b)]
        return int(r) if np.ndim(r) == 0 else r

    def inverse(self, a: Any) -> Any:
        """Index of the inverse of ``a`` (index, name, or integer array)."""
        r = self.inverses[self._indices(a)]
        return int(r) if np.ndim(r) == 0 else r

    @cached_property
    def inverses(self) -> np.ndarray:
        """Read-only int64 array of shape (order,): index of each element's inverse."""
        inv = np.argmin(self._table, axis=1)  # the column holding the identity 0
        inv.flags.writeable = False
        return inv

    @cached_property
    def element_orders(self) -> np.ndarray:
        """Read-only int64 array of shape (order,): the order of each element."""
        n = self.order
        orders = np.zeros(n, dtype=np.int64)
        power = np.arange(n)
        for k in range(1, n + 1):
            hit = (power == 0) & (orders == 0)
            orders[hit] = k
            if orders.all():
                break
            power = self._table[np.arange(n), power]
        orders.flags.writeable = False
        return orders

    @property
    def is_abelian(self) -> bool:
        """Whether ``a∘b == b∘a`` for all elements."""
        return bool(np.array_equal(self._table, self._table.T))

    @cached_property
    def conjugacy_classes(self) -> tuple[tuple[int, ...], ...]:
        """Conjugacy classes as sorted tuples of indices, ordered by smallest element.

        The first class is ``(0,)``, the identity.
        """
        n = self.order
        t, inv = self._table, self.inverses
        # conj[g, x] = g x g^-1
        conj = t[t, inv[:, None]]
        seen = np.zeros(n, dtype=bool)
        classes = []
        for x in range(n):
            if not seen[x]:
                cls = np.unique(conj[:, x])
                seen[cls] = True
                classes.append(tuple(int(c) for c in cls))
        return tuple(classes)

    def _generated(self, gens: Sequence[int]) -> np.ndarray:
        """Boolean mask of the subgroup generated by ``gens``."""
        mask = np.zeros(self.order, dtype=bool)
        mask[0] = True
        frontier = [0]
        gen_idx = np.asarray(gens, dtype=np.int64)
        while frontier and gen_idx.size:
            new = np.unique(self._table[np.asarray(frontier)[:, None], gen_idx])
            new = new[~mask[new]]
            mask[new] = True
            frontier = new.tolist()
        return mask

    @cached_property
    def generators(self) -> tuple[int, ...]:
        """A small generating set (indices), chosen greedily by decreasing element order."""
        if self.order == 1:
            return ()
        candidates = sorted(range(1, self.order), key=lambda g: (-self.element_orders[g], g))
        gens: list[int] = []
        mask = self._generated(gens)
        for g in candidates:
            if not mask[g]:
                gens.append(g)
                mask = self._generated(gens)
                if mask.all():
                    break
        return tuple(gens)

    # -- subgroups -----------------------------------------------------------------------
    @cached_property
    def _all_subgroups(self) -> tuple[Any, ...]:
        from ._subgroups import all_subgroups

        return all_subgroups(self)

    def subgroups(self, up_to_conjugacy: bool = True) -> tuple[Any, ...]:
        """Subgroups of the group, ordered by order (trivial first, the group itself last).

        Parameters
        ----------
        up_to_conjugacy : bool
            One representative (the first in element order) per conjugacy class of
            subgroups (default), or every subgroup.  A layer's invariance under ``H`` and
            under a conjugate ``gHg⁻¹`` differ in general (a horizontal and a vertical flip
            are conjugate in D4), so :func:`probes.subgroup_scan` scans every subgroup.

        Returns
        -------
        tuple of Subgroup
            Each with ``elements`` (indices in this group's order), ``element_names``,
            ``spec`` (e.g. ``"C2"``, ``"C4"``, ``"D2"``; None where no named group is
            isomorphic), a unique ``name``, ``conjugacy_class``, ``is_normal``.

        Notes
        -----
        Conjugacy classes by joins with cyclic subgroups of prime-power order, one
        representative per class (complete for every finite group; a second or so for the
        1455 subgroups of ``S6``).  Isomorphism types are certified by an explicit
        isomorphism to the named group.
        """
        subs = self._all_subgroups
        if not up_to_conjugacy:
            return subs
        seen: set[int] = set()
        reps = []
        for h in subs:
            if h.conjugacy_class not in seen:
                seen.add(h.conjugacy_class)
                reps.append(h)
        return tuple(reps)

    def subgroup_lattice(self, up_to_conjugacy: bool = True) -> Any:
        """The subgroups (as :meth:`subgroups`) and their covering relations (Hasse diagram).

        Returns
        -------
        SubgroupLattice
            ``subgroups`` and ``covers``: pairs ``(i, j)`` with ``subgroups[i]`` maximal in
            ``subgroups[j]`` (for conjugacy classes: maximal in a conjugate).
        """
        from ._subgroups import lattice

        return lattice(self.subgroups(up_to_conjugacy), up_to_conjugacy)

    # -- representations ----------------------------------------------------------------
    def _compute_irreps(self) -> tuple[Irrep, ...]:
        from ._regular import real_irreps_by_characters

        return real_irreps_by_characters(self._table, self.inverses, self.conjugacy_classes)

    @cached_property
    def _irreps(self) -> tuple[Irrep, ...]:
        return self._compute_irreps()

    def irreps(self, max_degree: int | None = None) -> tuple[Irrep, ...]:
        """Real irreducible representations, trivial first (``irreps()[0]``).

        ``max_degree`` is accepted for the group protocol and ignored: a finite group
        returns all its irreps.
        """
        return self._irreps

    def irrep(self, name: str) -> Irrep:
        """The irrep called ``name``.

        Raises
        ------
        ValueError
            If no irrep has that name (the message lists the valid ones).
        """
        for rho in self._irreps:
            if rho.name == name:
                return rho
        raise ValueError(
            f"{self._label} has no irrep {name!r}; irreps are {[r.name for r in self._irreps]}"
        )

    @cached_property
    def character_table(self) -> np.ndarray:
        """Read-only array of shape (n_irreps, order): real characters of :attr:`irreps`."""
        chars = np.stack([r.character for r in self.irreps()])
        chars.flags.writeable = False
        return chars

    def regular_representation(self) -> np.ndarray:
        """Left regular representation as permutation matrices.

        Returns
        -------
        array of shape (order, order, order), float64
            ``R[g]`` maps basis vector ``e_h`` to ``e_{g∘h}``; ``R[g] @ R[h] == R[g∘h]``.
        """
        n = self.order
        reg = np.zeros((n, n, n))
        cols = np.arange(n)
        for g in range(n):
            reg[g, self._table[g], cols] = 1.0
        return reg

    @cached_property
    def _projectors(self) -> dict[str, np.ndarray]:
        n = self.order
        perm = self._table  # R_g[g∘h, h] = 1  =>  (sum_g chi(g) R_g)[a, h] = chi(a∘h^-1)
        quotient = perm[:, self.inverses]  # quotient[a, h] = a∘h^-1
        out = {}
        for rho in self.irreps():
            proj = rho.dim / (rho.commutant_dim * n) * rho.character[quotient]
            proj.flags.writeable = False
            out[rho.name] = proj
        return out

    def isotypic_projectors(self) -> dict[str, np.ndarray]:
        """Orthogonal projectors onto the isotypic components of the regular representation.

        For a real irrep ``rho`` with commutant dimension ``k`` (1, 2, 4 by type),
        ``P_rho = dim(rho) / (k |G|) * sum_g chi_rho(g) R(g)``.

        Returns
        -------
        dict of str to array of shape (order, order)
            One projector per irrep name (in :attr:`irreps` order); idempotent, symmetric,
            mutually orthogonal, summing to the identity.

        Notes
        -----
        Memory is ``n_irreps * order^2`` floats, so this is for small groups; the library's
        spectra and projections use :func:`latentgeo.groups.isotypic_energies` and
        :func:`latentgeo.groups.project_isotypic`, which need only the characters.
        """
        return {k: v.copy() for k, v in self._projectors.items()}


GROUPS.register(FiniteGroup.from_cayley_table, name="FiniteGroup.from_cayley_table")
GROUPS.register(FiniteGroup.from_generators, name="FiniteGroup.from_generators")
