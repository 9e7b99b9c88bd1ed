"""Finite groups as immutable value objects defined by a Cayley table."""

from __future__ import annotations

import operator
from collections.abc import Sequence
from functools import cached_property
from typing import Any

import numpy as np

from ._irreps import Irrep

__all__ = ["FiniteGroup"]

# Associativity is checked in slabs of this many left factors (memory: slab * n^2 ints).
_ASSOC_SLAB_ELEMENTS = 2**22


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
    slab = max(1, _ASSOC_SLAB_ELEMENTS // (n * n))
    for start in range(0, n, slab):
        a = slice(start, min(n, start + slab))
        lhs = t[t[a], :]  # (a∘b)∘c, shape (slab, n, n)
        rhs = t[a][:, t]  # a∘(b∘c): t[a_i, t[b, c]]
        diff = lhs != rhs
        if diff.any():
            i, b, c = map(int, np.argwhere(diff)[0])
            raise ValueError(
                f"Cayley table {_describe(t)} is not associative: ({start + i}∘{b})∘{c} = "
                f"{int(lhs[i, b, c])} but {start + i}∘({b}∘{c}) = {int(rhs[i, b, c])}"
            )


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


class FiniteGroup:
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
    >>> G.order, G.compose("s", "s"), [irrep.name for irrep in G.irreps]
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
    def _label(self) -> str:
        spec = self.spec
        return spec if len(spec) <= 40 else f"a group of order {self.order}"

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

    # -- representations ----------------------------------------------------------------
    def _compute_irreps(self) -> tuple[Irrep, ...]:
        from ._decompose import real_irreps_from_table

        return real_irreps_from_table(self._table, self.inverses)

    @cached_property
    def irreps(self) -> tuple[Irrep, ...]:
        """Real irreducible representations, trivial first (``irreps[0]``)."""
        return self._compute_irreps()

    @property
    def trivial_irrep(self) -> Irrep:
        """The trivial irrep (``irreps[0]``)."""
        return self.irreps[0]

    def irrep(self, name: str) -> Irrep:
        """The irrep called ``name``.

        Raises
        ------
        ValueError
            If no irrep has that name (the message lists the valid ones).
        """
        for rho in self.irreps:
            if rho.name == name:
                return rho
        raise ValueError(
            f"{self._label} has no irrep {name!r}; irreps are {[r.name for r in self.irreps]}"
        )

    @property
    def irrep_names(self) -> tuple[str, ...]:
        """Names of :attr:`irreps`, in order."""
        return tuple(r.name for r in self.irreps)

    @cached_property
    def character_table(self) -> np.ndarray:
        """Read-only array of shape (n_irreps, order): real characters of :attr:`irreps`."""
        chars = np.stack([r.character for r in self.irreps])
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
        for rho in self.irreps:
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
        """
        return {k: v.copy() for k, v in self._projectors.items()}


def check_int(value: Any, what: str, *, minimum: int, maximum: int | None = None) -> int:
    """Validate an integer parameter (``bool`` refused); return it as ``int``."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise TypeError(f"{what} must be an int, got {value!r}")
    value = int(value)
    if value < minimum or (maximum is not None and value > maximum):
        allowed = f">= {minimum}" if maximum is None else f"in [{minimum}, {maximum}]"
        raise ValueError(f"{what} must be {allowed}, got {value!r}")
    return value
