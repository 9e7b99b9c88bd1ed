"""Benchmark the offline irrep spectrum (the group-Fourier core) against the old live path.

Issue 16 asks that the fastest spectrum serve offline analysis too: the recorder's live probes
accumulated a chunked float64 Gram matrix (documented as ~7x faster than the offline
functions), and the offline functions now call one core
(:func:`latentgeo.groups.finite_energies`), which also keeps the per-sample energies the
bootstrap intervals need.  This script times, in the same run and on the same float32 block,

- ``core``: :func:`latentgeo.groups.finite_energies` then ``shares()`` (per-sample energies);
- ``probes``: :func:`probes.orbit_spectrum` (validation + the core);
- ``old live``: a verbatim copy of the live path's Gram routine as it was before the core
  (``_old_live_gram`` below, kept here only as the reference),

and prints the best-of-``--repeats`` times (interleaved rounds) and the ratios (target:
core / old live <= 1).

Run: ``OMP_NUM_THREADS=1 python benchmarks/spectrum.py`` (``--quick`` for a smoke run).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

_CHUNK_VALUES = 2**18


def _old_live_gram(src, group):
    """The live probes' finite-group path before the core (reference only)."""
    import torch

    from latentgeo.groups import isotypic_energies

    f64 = torch.float64
    G, n, d = src.shape
    chunk = max(1, _CHUNK_VALUES // max(1, G * d))
    shift = src[:, :chunk].to(f64).mean(dim=(0, 1))
    gram = torch.zeros((G, G), dtype=f64)
    sums = torch.zeros((G, d), dtype=f64)
    for s0 in range(0, n, chunk):
        block = src[:, s0 : s0 + chunk].to(f64)
        block -= shift
        flat = block.reshape(G, -1)
        gram += flat @ flat.T
        sums += block.sum(dim=1)
    m = sums.sum(dim=0) / (G * n)
    ms = sums @ m
    gram = gram - ms[:, None] - ms[None, :] + n * (m @ m)
    total = torch.trace(gram)
    _, energies = isotypic_energies(group, gram)
    return (energies / total).clamp_min(0.0)


def _best(fns, repeats: int) -> list[float]:
    """Best time of each function, timed in interleaved rounds (a shared machine's load hits
    every contender alike)."""
    for fn in fns:
        fn()  # warm-up: imports and caches
    best = [float("inf")] * len(fns)
    for _ in range(repeats):
        for i, fn in enumerate(fns):
            t = time.perf_counter()
            fn()
            best[i] = min(best[i], time.perf_counter() - t)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a small smoke run")
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()

    import torch

    import probes
    from latentgeo.groups import Dihedral, Symmetric, finite_energies

    cases = [(Dihedral(4), 4096, 512), (Symmetric(4), 1024, 256)]
    if args.quick:
        cases = [(Dihedral(4), 256, 64)]
    for group, n, d in cases:
        rng = np.random.default_rng(0)
        Z = torch.as_tensor(rng.normal(size=(group.order, n, d)).astype(np.float32))
        core = finite_energies(Z, group).shares()
        old = _old_live_gram(Z, group)
        np.testing.assert_allclose(core.numpy(), old.numpy(), atol=1e-10)
        t_core, t_probes, t_old = _best(
            [
                lambda Z=Z, g=group: finite_energies(Z, g).shares(),
                lambda Z=Z, g=group: probes.orbit_spectrum(Z, g),
                lambda Z=Z, g=group: _old_live_gram(Z, g),
            ],
            args.repeats,
        )
        print(
            f"{group.spec} orbit ({group.order} elements x {n} samples x {d} units, float32): "
            f"core {t_core * 1e3:.1f} ms, probes.orbit_spectrum {t_probes * 1e3:.1f} ms, "
            f"old live Gram {t_old * 1e3:.1f} ms; core / old live = {t_core / t_old:.2f}, "
            f"probes / old live = {t_probes / t_old:.2f} (target <= 1)"
        )


if __name__ == "__main__":
    main()
