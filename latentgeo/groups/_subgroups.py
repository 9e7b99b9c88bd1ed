"""Subgroups of finite groups: enumeration, conjugacy classes, isomorphism types, lattice.

The conjugacy classes of subgroups come from :mod:`latentgeo.groups._subgroup_search` (joins
of one representative per class with the cyclic subgroups of prime-power order, complete
for every finite group; subgroups are bit masks over the Cayley table's elements).
Isomorphism types (the ``spec`` of a subgroup, e.g. ``"C4"``, ``"D2"``, ``"S3"``, ``"S5"``)
come from an explicit isomorphism to a named group, found by mapping the named group's
generators and extending along its Cayley table.  The covering relations of the lattice
are counted with two matrix products of membership masks.  ``Symmetric(6)`` (1455
subgroups in 56 classes) takes about a second; see ``benchmarks/groups.py``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

import numpy as np

from latentgeo.groups._subgroup_search import _join, subgroup_classes

if TYPE_CHECKING:
    from latentgeo.groups._finite import FiniteGroup

__all__ = ["Subgroup", "SubgroupLattice", "all_subgroups"]


@dataclass(frozen=True, eq=False)
class Subgroup:
    """A subgroup ``H`` of a finite group ``G``, as the sorted indices of its elements in ``G``.

    Parameters
    ----------
    group : FiniteGroup
        The parent group ``G``.
    elements : tuple of int
        Indices (in ``G``) of the elements of ``H``, in ``G``'s order (the identity, index 0,
        first).
    spec : str or None
        The spec of a named group isomorphic to ``H`` (``"C2"``, ``"C4"``, ``"D2"``, ``"S3"``,
        ``"C2xC4"``, ...), ``None`` when ``H`` is isomorphic to none of the named families
        checked (cyclic, dihedral, abelian products, and the named groups ``parse`` knows).
    name : str
        A label unique among the subgroups of ``G``: the spec when no other subgroup has it,
        else the spec followed by generators, e.g. ``"C2<s>"``; ``"<e,r2>"``-style element
        lists where there is no spec.
    conjugacy_class : int
        Index of the conjugacy class of subgroups ``H`` belongs to (classes are numbered in
        the order of their smallest members).
    """

    group: Any = field(repr=False)
    elements: tuple[int, ...]
    spec: str | None
    name: str
    conjugacy_class: int

    @property
    def order(self) -> int:
        """``|H|``."""
        return len(self.elements)

    @property
    def index(self) -> int:
        """``[G : H] = |G| / |H|``."""
        return self.group.order // self.order

    @property
    def element_names(self) -> tuple[str, ...]:
        """Names (in ``G``) of the elements of ``H``."""
        names = self.group.elements
        return tuple(names[i] for i in self.elements)

    @cached_property
    def mask(self) -> np.ndarray:
        """Boolean array of shape ``(|G|,)``: membership of each element of ``G``."""
        m = np.zeros(self.group.order, dtype=bool)
        m[list(self.elements)] = True
        m.flags.writeable = False
        return m

    def __contains__(self, element: Any) -> bool:
        return bool(self.mask[self.group.index(element)])

    def issubgroup(self, other: Subgroup) -> bool:
        """Whether ``self ⊆ other`` (both subgroups of the same group)."""
        return bool(np.all(other.mask[list(self.elements)]))

    @cached_property
    def is_normal(self) -> bool:
        """Whether ``g H g⁻¹ = H`` for every ``g`` in ``G``."""
        t, inv = self.group.cayley_table, self.group.inverses
        h = np.asarray(self.elements)
        conj = t[t[:, h], inv[:, None]]  # (|G|, |H|): g h g^-1
        return bool(self.mask[conj].all())

    @cached_property
    def right_cosets(self) -> np.ndarray:
        """Right cosets ``H g`` as an int array of shape (index, order).

        Row ``c`` lists ``h_j ∘ g_c`` for the elements ``h_j`` of ``H`` in order, ``g_c`` the
        smallest element of the coset; rows are ordered by ``g_c``.  On orbit latents
        ``Z[g] = z(g·x)``, row ``c`` holds the ``H``-orbit of the input ``g_c·x``.
        """
        t = self.group.cayley_table
        h = np.asarray(self.elements)
        seen = np.zeros(self.group.order, dtype=bool)
        rows = []
        for g in range(self.group.order):
            if not seen[g]:
                row = t[h, g]
                seen[row] = True
                rows.append(row)
        out = np.stack(rows).astype(np.int64)
        out.flags.writeable = False
        return out

    def as_group(self) -> FiniteGroup:
        """``H`` as a group of its own (Cayley table restricted, names from ``G``)."""
        from latentgeo.groups._finite import FiniteGroup

        pos = {g: i for i, g in enumerate(self.elements)}
        h = np.asarray(self.elements)
        sub = self.group.cayley_table[np.ix_(h, h)]
        table = np.vectorize(pos.__getitem__, otypes=[np.int64])(sub)
        return FiniteGroup(table, names=self.element_names)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Subgroup):
            return NotImplemented
        return self.group == other.group and self.elements == other.elements

    def __hash__(self) -> int:
        return hash(("Subgroup", self.elements, self.group.order))


@dataclass(frozen=True)
class SubgroupLattice:
    """Subgroups of a group with their inclusion order (Hasse diagram).

    Attributes
    ----------
    subgroups : tuple of Subgroup
        Ordered by order, then by element indices; the trivial subgroup first, ``G`` last.
    covers : tuple of (int, int)
        Pairs ``(i, j)`` with ``subgroups[i] ⊂ subgroups[j]`` and no subgroup strictly between
        (up to conjugacy when the lattice is of conjugacy classes: ``i`` lies in a conjugate of
        ``j``).
    up_to_conjugacy : bool
    """

    subgroups: tuple[Subgroup, ...]
    covers: tuple[tuple[int, int], ...]
    up_to_conjugacy: bool


def _isomorphic(table: np.ndarray, orders: np.ndarray, other: FiniteGroup) -> bool:
    """Whether the group with Cayley ``table`` (identity 0, element ``orders``) is isomorphic
    to ``other``: a search for images of ``other``'s generators that extend to an isomorphism
    along ``other``'s Cayley graph."""
    n = table.shape[0]
    if other.order != n:
        return False
    korders = other.element_orders
    if not np.array_equal(np.bincount(orders), np.bincount(korders)):
        return False
    kt = other.cayley_table
    gens = [int(g) for g in other.generators]
    if not gens:
        return True
    candidates = [np.flatnonzero(orders == korders[g]) for g in gens]
    # With an isomorphism phi, x -> h phi(x) h^-1 is one too: the first generator's image
    # may be taken as the smallest element of its conjugacy class.
    first = candidates[0]
    inv = np.argmin(table, axis=1)
    candidates[0] = first[table[table[:, first], inv[:, None]].min(axis=0) == first]
    ktl, tl, gl = kt.tolist(), table.tolist(), list(zip(gens, range(len(gens)), strict=True))

    def extend(images: list[int]) -> bool:
        phi = [-1] * n
        phi[0] = 0
        used = [False] * n
        used[0] = True
        queue = [0]
        while queue:
            x = queue.pop()
            for g, i in gl:
                y = ktl[g][x]
                val = tl[images[i]][phi[x]]
                if phi[y] < 0:
                    if used[val]:
                        return False
                    phi[y] = val
                    used[val] = True
                    queue.append(y)
                elif phi[y] != val:
                    return False
        return all(used)

    def search(i: int, images: list[int]) -> bool:
        if i == len(gens):
            return extend(images)
        cand = candidates[i]
        for j, img in enumerate(images):  # products of generators keep their orders
            cand = cand[orders[table[img, cand]] == korders[kt[gens[j], gens[i]]]]
            cand = cand[orders[table[cand, img]] == korders[kt[gens[i], gens[j]]]]
        return any(search(i + 1, [*images, int(c)]) for c in cand)

    return search(0, [])


def _abelian_types(n: int) -> list[tuple[int, ...]]:
    """Invariant-factor lists ``(n1, n2, ...)`` with ``n1 | n2 | ...`` and product ``n``."""
    out: list[tuple[int, ...]] = []

    def rec(rest: int, prefix: tuple[int, ...]) -> None:
        if rest == 1:
            out.append(prefix)
            return
        lo = prefix[-1] if prefix else 2
        for d in range(lo, rest + 1):
            if rest % d == 0 and (not prefix or d % prefix[-1] == 0):
                # remaining factors must be multiples of d: rest/d divisible by d or 1
                if rest // d == 1 or (rest // d) % d == 0:
                    rec(rest // d, (*prefix, d))

    rec(n, ())
    return out


#: Non-abelian named groups tried after the dihedral group of the same order, with orders.
_NAMED = (("Q8", 8), ("A4", 12), ("S4", 24), ("A5", 60), ("S5", 120), ("A6", 360), ("S6", 720))


def _named_candidates(n: int, abelian: bool, built: dict[str, Any]) -> list[tuple[str, Any]]:
    from ._parse import parse

    specs: list[str] = []
    if abelian:
        for factors in _abelian_types(n):
            if len(factors) == 1:
                specs.append(f"C{n}")
            elif factors == (2, 2):
                specs.append("D2")  # the Klein four-group, as it sits in D_n
            else:
                specs.append("x".join(f"C{f}" for f in factors))
    else:
        if n % 2 == 0 and n >= 6:
            specs.append(f"D{n // 2}")
        specs += [s for s, order in _NAMED if order == n]
    out = []
    for spec in specs:
        if spec not in built:
            try:
                built[spec] = parse(spec)
            except ValueError:
                built[spec] = None  # a family this version of parse() does not know
        if built[spec] is not None:
            out.append((spec, built[spec]))
    return out


def _identify(table: np.ndarray, orders: np.ndarray, built: dict[str, Any]) -> str | None:
    """The spec of a named group isomorphic to the group with this Cayley ``table``."""
    n = table.shape[0]
    if n == 1:
        return "C1"
    abelian = bool(np.array_equal(table, table.T))
    for spec, candidate in _named_candidates(n, abelian, built):
        if abelian:
            # Finite abelian groups are determined by how many elements have each order.
            if np.array_equal(np.bincount(orders), np.bincount(candidate.element_orders)):
                return spec
        elif _isomorphic(table, orders, candidate):
            return spec
    return None


def _local_table(group: FiniteGroup, elements: np.ndarray) -> np.ndarray:
    pos = np.full(group.order, -1, dtype=np.int64)
    pos[elements] = np.arange(elements.size)
    return pos[group.cayley_table[np.ix_(elements, elements)]]


def all_subgroups(group: FiniteGroup) -> tuple[Subgroup, ...]:
    """Every subgroup of ``group``, ordered by order then element indices.

    Labels: a subgroup's ``name`` is its spec when no other subgroup shares it, else
    ``spec<generators>`` with generator names (``"C2<s>"``), or ``"<e,g1,...>"`` (element
    names) when it has no spec.  Enumeration and conjugacy classes:
    :mod:`latentgeo.groups._subgroup_search`.
    """
    orders = group.element_orders
    found = subgroup_classes(group.cayley_table, group.inverses, orders)
    masks = np.concatenate([c.members for c in found])
    found_class = np.repeat(np.arange(len(found)), [len(c.members) for c in found])
    elements = [tuple(np.flatnonzero(m).tolist()) for m in masks]
    ranked = sorted(range(len(masks)), key=lambda i: (len(elements[i]), elements[i]))
    # Classes are numbered in the order of their smallest members.
    number: dict[int, int] = {}
    for i in ranked:
        number.setdefault(int(found_class[i]), len(number))
    built: dict[str, Any] = {}
    spec_of_class: list[str | None] = []
    for c in found:
        members = np.flatnonzero(c.members[0])
        spec_of_class.append(_identify(_local_table(group, members), orders[members], built))
    specs = [spec_of_class[found_class[i]] for i in ranked]
    counts: dict[str | None, int] = {}
    for s in specs:
        counts[s] = counts.get(s, 0) + 1
    names = group.elements
    out = []
    for i, spec in zip(ranked, specs, strict=True):
        if spec is not None and counts[spec] == 1:
            name = spec
        elif spec is not None:
            gens = _minimal_generators(group, masks[i])
            name = f"{spec}<{','.join(names[g] for g in gens)}>"
        else:
            name = f"<{','.join(names[g] for g in elements[i])}>"
        out.append(Subgroup(group, elements[i], spec, name, number[int(found_class[i])]))
    return tuple(out)


def _minimal_generators(group: FiniteGroup, mask: np.ndarray) -> list[int]:
    """A small generating set of the subgroup ``mask``, smallest indices first.

    One element for a cyclic subgroup, else the first generating pair in index order; where
    no pair generates, the elements (in index order) outside the subgroup generated by the
    ones taken before, less those the others generate.
    """
    table = group.cayley_table
    members = np.flatnonzero(mask)[1:]
    size = int(mask.sum())
    single = members[group.element_orders[members] == size]
    if single.size:
        return [int(single[0])]
    cyclic = {}
    for i, a in enumerate(members):
        cyclic[a] = group._generated([int(a)])
        for b in members[i + 1 :]:
            if not cyclic[a][b] and _join(table, cyclic[a], int(b)).sum() == size:
                return [int(a), int(b)]
    gens: list[int] = []
    span = group._generated(gens)
    for g in members:
        if not span[g]:
            gens.append(int(g))
            span = _join(table, span, int(g))
    for g in list(gens):  # drop the ones the others generate
        rest = [h for h in gens if h != g]
        if group._generated(rest)[g]:
            gens = rest
    return gens


def lattice(subgroups: tuple[Subgroup, ...], up_to_conjugacy: bool) -> SubgroupLattice:
    """Covering relations among ``subgroups`` (all subgroups, or one per conjugacy class).

    Inclusion is counted by one matrix product of membership masks (``a ⊆ b`` iff
    ``|a ∩ b| = |a|``), covers by a second (``a ⊂ b`` with nothing strictly between).
    """
    if not subgroups:
        return SubgroupLattice((), (), up_to_conjugacy)
    orders = np.array([h.order for h in subgroups])
    # float32 products count exactly: every count is at most |G| < 2^24.
    masks = np.stack([h.mask for h in subgroups]).astype(np.float32)
    if up_to_conjugacy:
        every = subgroups[0].group.subgroups(False)
        pool = np.stack([h.mask for h in every]).astype(np.float32)
        inside = (masks @ pool.T).astype(np.int64) == orders[:, None]  # a ⊆ every[j]
        klass = np.array([h.conjugacy_class for h in every])
        # a below b: a lies in some member of b's conjugacy class
        in_class = inside.astype(np.float32) @ (
            klass[:, None] == np.array([h.conjugacy_class for h in subgroups])[None, :]
        ).astype(np.float32)
        below = in_class > 0
    else:
        below = (masks @ masks.T).astype(np.int64) == orders[:, None]
    below &= orders[:, None] < orders[None, :]
    rel = below.astype(np.float32)
    between = (rel @ rel) > 0  # some c with a < c < b
    covers = np.argwhere(below & ~between)
    return SubgroupLattice(
        tuple(subgroups), tuple((int(a), int(b)) for a, b in covers), up_to_conjugacy
    )
