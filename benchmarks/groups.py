"""Benchmark: real irreps and subgroup lattices of research-size finite groups, on one core.

Irreps

For S_5, A_5, S_6 and a relabelled S_4 x C_21 (order 504), each given ONLY as a Cayley table
(elements shuffled, identity first, so no closed form can be used), times:

- ``new``: the default path, Burnside–Dixon characters + isotypic splitting of the regular
  representation (``latentgeo.groups._regular.real_irreps_by_characters``);
- ``old``: the previous generic path (``latentgeo.groups._decompose.real_irreps_from_table``,
  an eigendecomposition of a random right-algebra element of the whole regular
  representation), where affordable (``--old`` to include S_6 and the order-504 table);
- ``closed``: the named group's closed form (Young's orthogonal form, restricted Young form
  for A_n, Kronecker products for S_4 x C_21), for reference; and S_7 (5040 elements).

It checks that both generic paths give the closed form's characters and prints the largest
homomorphism error of the new path on 500 random pairs.  Target: new path < 5 s per group.

Subgroups
    Times ``all_subgroups`` (every subgroup, its conjugacy class, spec and name) on groups of
    order 24 to 720: S_6, a relabelled S_6 table, C_2 x A_6, S_3 x S_5 and D_360 (order 720),
    A_6, and smaller ones; prints the subgroup and class counts and checks them against the
    published values (S_4 30/11, A_5 59/9, S_5 156/19, A_6 501/22, S_6 1455/56; D_n: tau(n) +
    sigma(n) subgroups) and, for C_2 x A_6, against Goursat's count from A_6's subgroups.
    Times are CPU seconds of this process (the machine may be shared) and wall seconds.
    Reference, in the same run: the previous implementation (every subgroup as a join of
    cyclic subgroups, closed by repeated products, then classes by conjugating every subgroup;
    about 17 min on S_6) on the groups up to order 120, with the ratio and a check that both
    find the same subgroups.  Target: order 720 in < 10 s.

Run: ``OMP_NUM_THREADS=1 python benchmarks/groups.py [--old] [--s7] [--subgroups-only]``.
Not part of the tests.
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import numpy as np

from latentgeo.groups import (
    Alternating,
    Cyclic,
    Dihedral,
    DirectProduct,
    FiniteGroup,
    Symmetric,
)
from latentgeo.groups._decompose import real_irreps_from_table
from latentgeo.groups._regular import real_irreps_by_characters
from latentgeo.groups._subgroups import all_subgroups


def relabelled(G: FiniteGroup, seed: int = 0) -> tuple[FiniteGroup, np.ndarray]:
    rng = np.random.default_rng(seed)
    perm = np.concatenate([[0], 1 + rng.permutation(G.order - 1)])  # new index of old
    table = np.empty_like(G.cayley_table)
    table[perm[:, None], perm[None, :]] = perm[G.cayley_table]
    return FiniteGroup.from_cayley_table(table), perm


def same_characters(closed, generic, back: np.ndarray) -> bool:
    if len(closed) != len(generic):
        return False
    return all(
        sum(np.allclose(r.character[back], s.character, atol=1e-8) for s in generic) == 1
        for r in closed
    )


def homomorphism_error(G: FiniteGroup, irreps) -> float:
    rng = np.random.default_rng(1)
    a, b = rng.integers(0, G.order, (2, 500))
    t = G.cayley_table
    return max(
        float(np.abs(r.matrices[t[a, b]] - r.matrices[a] @ r.matrices[b]).max()) for r in irreps
    )


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


# -- subgroups -------------------------------------------------------------------------------


def _old_generated(table: np.ndarray, g: int) -> np.ndarray:
    mask = np.zeros(table.shape[0], dtype=bool)
    mask[0] = True
    frontier = np.array([0])
    while frontier.size:
        new = np.unique(table[g, frontier])
        new = new[~mask[new]]
        mask[new] = True
        frontier = new
    return mask


def _old_closure(table: np.ndarray, mask: np.ndarray) -> np.ndarray:
    current = mask.copy()
    current[0] = True
    while True:
        el = np.flatnonzero(current)
        nxt = np.zeros_like(current)
        nxt[table[np.ix_(el, el)]] = True
        if np.array_equal(nxt, current):
            return current
        current = nxt


def old_subgroups(G: FiniteGroup) -> tuple[set[bytes], int]:
    """The previous implementation's enumeration and classes (no naming): every subgroup as a
    join ``<H, C>`` with a cyclic subgroup ``C``, closed by repeated products, layer by
    layer; then classes by conjugating each subgroup by every element.  (Subgroup keys,
    number of classes.)"""
    t, n = G.cayley_table, G.order
    trivial = np.zeros(n, dtype=bool)
    trivial[0] = True
    found = {np.packbits(trivial).tobytes(): trivial}
    cyclic = []
    for g in range(1, n):
        m = _old_generated(t, g)
        key = np.packbits(m).tobytes()
        if key not in found:
            found[key] = m
            cyclic.append((m, g))
    frontier = [m for m, _ in cyclic]
    while frontier:
        nxt = []
        for mask in frontier:
            for cmask, c in cyclic:
                if mask[c] or np.all(mask[cmask]):
                    continue
                m = _old_closure(t, mask | cmask)
                key = np.packbits(m).tobytes()
                if key not in found:
                    found[key] = m
                    nxt.append(m)
        frontier = nxt
    conj = t[t, G.inverses[:, None]]
    seen: set[bytes] = set()
    n_classes = 0
    for key, m in found.items():
        if key in seen:
            continue
        n_classes += 1
        members = np.flatnonzero(m)
        for g in range(n):
            image = np.zeros(n, dtype=bool)
            image[conj[g, members]] = True
            seen.add(np.packbits(image).tobytes())
    return set(found), n_classes


def _divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


def dihedral_counts(n: int) -> tuple[int, int]:
    """Subgroups of D_n (order 2n): tau(n) + sigma(n); classes: the tau(n) rotation
    subgroups, and <r^d, r^i s> (d | n) in one class for odd d, two (i even / odd) for even d."""
    divs = _divisors(n)
    return len(divs) + sum(divs), len(divs) + sum(1 if d % 2 else 2 for d in divs)


def goursat_c2_times(H: FiniteGroup) -> int:
    """Subgroups of C_2 x H from those of H (Goursat): B x 1, B x C_2 for every subgroup B,
    and one graph over each index-2 subgroup of each B."""
    subs = H.subgroups(False)
    masks = np.stack([h.mask for h in subs]).astype(np.float32)
    orders = np.array([h.order for h in subs])
    inside = (masks @ masks.T).astype(np.int64) == orders[:, None]
    return 2 * len(subs) + int((inside & (2 * orders[:, None] == orders[None, :])).sum())


def cpu_timed(fn):
    """(CPU seconds of this process, wall seconds, result): the machine is shared, so the
    process's CPU time is the cost of the algorithm; wall time is shown beside it."""
    c0, w0 = time.process_time(), time.perf_counter()
    out = fn()
    return time.process_time() - c0, time.perf_counter() - w0, out


def subgroup_benchmark() -> None:
    S6 = Symmetric(6)
    cases = [
        ("S4", Symmetric(4), (30, 11), True),
        ("A5", Alternating(5), (59, 9), True),
        ("D30", Dihedral(30), dihedral_counts(30), True),
        ("S5", Symmetric(5), (156, 19), True),
        ("A6", Alternating(6), (501, 22), False),
        ("S6", S6, (1455, 56), False),
        ("S6 shuf", relabelled(S6, seed=3)[0], (1455, 56), False),
        ("C2xA6", DirectProduct(Cyclic(2), Alternating(6)), None, False),
        ("S3xS5", DirectProduct(Symmetric(3), Symmetric(5)), None, False),
        ("D360", Dihedral(360), dihedral_counts(360), False),
    ]
    print(
        f"\n{'group':8} {'order':>6} {'subgroups':>9} {'classes':>7} {'new cpu':>8} "
        f"{'new wall':>8} {'old cpu':>8} {'old/new':>8} {'expected':>10} {'agree':>6}"
    )
    slowest_720 = 0.0
    for name, G, expected, run_old in cases:
        _ = (G.element_orders, G.inverses)  # part of the group, not of the search
        t_new, w_new, subs = cpu_timed(lambda G=G: all_subgroups(G))
        n_subs, n_classes = len(subs), len({h.conjugacy_class for h in subs})
        if name == "C2xA6":
            expected = (goursat_c2_times(Alternating(6)), None)
        agree = expected is None or (expected[0] == n_subs and expected[1] in (None, n_classes))
        if run_old:
            t_old, _, (old_keys, old_classes) = cpu_timed(lambda G=G: old_subgroups(G))
            new_keys = {np.packbits(h.mask).tobytes() for h in subs}
            agree = agree and old_keys == new_keys and old_classes == n_classes
            old_s, ratio = f"{t_old:8.2f}", f"{t_old / t_new:8.1f}"
        else:
            old_s, ratio = f"{'-':>8}", f"{'-':>8}"
        shown = (
            "-" if expected is None else "/".join("?" if e is None else str(e) for e in expected)
        )
        if G.order == 720:
            slowest_720 = max(slowest_720, t_new, w_new)
        print(
            f"{name:8} {G.order:6d} {n_subs:9d} {n_classes:7d} {t_new:8.2f} {w_new:8.2f} "
            f"{old_s} {ratio} "
            f"{shown:>10} {agree!s:>6}"
        )
    t_lat, w_lat, lat = cpu_timed(lambda: S6.subgroup_lattice(False))
    print(
        f"S6 Hasse diagram of all {len(lat.subgroups)} subgroups: {len(lat.covers)} covers, "
        f"{t_lat:.2f} s cpu ({w_lat:.2f} s wall)"
    )
    verdict = "met" if slowest_720 < 10 else "NOT met"
    print(
        f"target: order-720 groups < 10 s: slowest {slowest_720:.2f} s (cpu or wall) -> {verdict}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old", action="store_true", help="time the old path on S6 and 504")
    parser.add_argument("--s7", action="store_true", help="also time S7 (5040 elements)")
    parser.add_argument("--subgroups-only", action="store_true", help="only the subgroup benchmark")
    args = parser.parse_args()
    if not args.subgroups_only:
        irreps_benchmark(args)
    subgroup_benchmark()


def irreps_benchmark(args: argparse.Namespace) -> None:
    cases = [
        ("S5", Symmetric(5), True),
        ("A5", Alternating(5), True),
        ("S6", Symmetric(6), args.old),
        ("S4xC21", DirectProduct(Symmetric(4), Cyclic(21)), args.old),
    ]
    print(
        f"{'group':8} {'order':>6} {'irreps':>6} {'new (s)':>8} {'old (s)':>8} "
        f"{'old/new':>8} {'closed (s)':>10} {'agree':>6} {'hom err':>8}"
    )
    for name, G, run_old in cases:
        H, perm = relabelled(G)
        back = np.argsort(perm)
        classes = H.conjugacy_classes  # O(|G|^2), part of the new path's input
        t_new, new = timed(
            lambda H=H: real_irreps_by_characters(H.cayley_table, H.inverses, H.conjugacy_classes)
        )
        t_cls, _ = timed(
            lambda H=H: FiniteGroup.from_cayley_table(H.cayley_table).conjugacy_classes
        )
        t_new += t_cls
        del classes
        t_closed, closed = timed(lambda G=G: G._compute_irreps())
        agree = same_characters(closed, new, back)
        if run_old:
            t_old, old = timed(lambda H=H: real_irreps_from_table(H.cayley_table, H.inverses))
            agree = agree and same_characters(closed, old, back)
            old_s, ratio = f"{t_old:8.2f}", f"{t_old / t_new:8.1f}"
        else:
            old_s, ratio = f"{'-':>8}", f"{'-':>8}"
        err = homomorphism_error(H, new)
        print(
            f"{name:8} {G.order:6d} {len(new):6d} {t_new:8.2f} {old_s} {ratio} "
            f"{t_closed:10.2f} {agree!s:>6} {err:8.1e}"
        )
    if args.s7:
        t_build, S7 = timed(lambda: Symmetric(7))
        t_irreps, irreps = timed(S7.irreps)
        print(
            f"S7 (5040): build {t_build:.2f} s, Young-form irreps {t_irreps:.2f} s, "
            f"{len(irreps)} irreps, hom err {homomorphism_error(S7, irreps):.1e}"
        )


if __name__ == "__main__":
    main()
