"""Benchmark: real irreps of research-size finite groups, on one core.

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

Run: ``OMP_NUM_THREADS=1 python benchmarks/groups.py [--old] [--s7]``.  Not part of the tests.
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
    DirectProduct,
    FiniteGroup,
    Symmetric,
)
from latentgeo.groups._decompose import real_irreps_from_table
from latentgeo.groups._regular import real_irreps_by_characters


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old", action="store_true", help="time the old path on S6 and 504")
    parser.add_argument("--s7", action="store_true", help="also time S7 (5040 elements)")
    args = parser.parse_args()
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
