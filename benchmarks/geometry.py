"""Benchmark: latentgeo's batched closed forms against geomstats, timed in the same run.

1. The T x T Grassmann distance matrix of T = 100 checkpoints of Gr(256, 16): our
   ``pairwise_distances(..., "grassmann", convention="geomstats")`` against geomstats'
   ``Grassmannian(256, 16).metric.dist`` on projectors (timed on a subset of pairs, batched,
   and scaled to the 4950 pairs). Target: >= 100x faster, agreeing to 1e-8.
2. Log-Euclidean pairwise distances of T = 50 SPD(128) matrices against geomstats'
   ``SPDLogEuclideanMetric.dist`` over all 1225 pairs (batched). Target: >= 10x faster.

Run: ``python benchmarks/geometry.py [--device cuda] [--pairs 40]``. Not part of the tests.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

import latentgeo.geometry as geo


def _best_of(fn, repeat: int = 3) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        if isinstance(out, torch.Tensor) and out.is_cuda:
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t0)
    return best, out


def grassmann(T: int, d: int, k: int, n_pairs: int, device: str, rng) -> None:
    bases = np.linalg.qr(rng.standard_normal((T, d, k)))[0]
    P = torch.from_numpy(bases).to(device)
    geo.pairwise_distances(P[:3], "grassmann")  # warm-up
    ours_s, D = _best_of(lambda: geo.pairwise_distances(P, "grassmann", convention="geomstats"))
    D = D.cpu().numpy()

    metric = geo.Grassmann(d, k).space.metric
    i, j = np.triu_indices(T, 1)
    pick = rng.choice(i.size, size=n_pairs, replace=False)
    proj = bases @ bases.transpose(0, 2, 1)
    t0 = time.perf_counter()
    ref = np.asarray(metric.dist(proj[i[pick]], proj[j[pick]]))
    gs_subset_s = time.perf_counter() - t0
    gs_s = gs_subset_s * i.size / n_pairs
    err = np.abs(D[i[pick], j[pick]] - ref)
    rel = float((err / np.abs(ref)).max())
    print(f"Grassmann Gr({d}, {k}), T={T} ({i.size} pairs), device={device}")
    print(f"  ours       : {ours_s * 1e3:9.1f} ms for the full {T}x{T} matrix")
    print(
        f"  geomstats  : {gs_subset_s * 1e3:9.1f} ms for {n_pairs} pairs -> "
        f"{gs_s:9.2f} s scaled to {i.size} pairs"
    )
    print(f"  speed-up   : {gs_s / ours_s:9.0f}x   (target >= 100x)")
    print(f"  agreement  : max relative difference {rel:.2e} (target <= 1e-8)")


def log_euclidean(T: int, n: int, device: str, rng) -> None:
    A = rng.standard_normal((T, n, n))
    spd = A @ A.transpose(0, 2, 1) / n + 0.1 * np.eye(n)
    S = torch.from_numpy(spd).to(device)
    geo.pairwise_distances(S[:3], "spd_log_euclidean")  # warm-up
    ours_s, D = _best_of(lambda: geo.pairwise_distances(S, "spd_log_euclidean"))
    D = D.cpu().numpy()

    metric = geo.SPD(n, "log_euclidean").space.metric
    i, j = np.triu_indices(T, 1)
    t0 = time.perf_counter()
    ref = np.asarray(metric.dist(spd[i], spd[j]))
    gs_s = time.perf_counter() - t0
    rel = float((np.abs(D[i, j] - ref) / np.abs(ref)).max())
    print(f"Log-Euclidean SPD({n}), T={T} ({i.size} pairs), device={device}")
    print(f"  ours       : {ours_s * 1e3:9.1f} ms")
    print(f"  geomstats  : {gs_s * 1e3:9.1f} ms (all pairs, batched)")
    print(f"  speed-up   : {gs_s / ours_s:9.1f}x   (target >= 10x)")
    print(f"  agreement  : max relative difference {rel:.2e}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--pairs", type=int, default=40, help="geomstats Grassmann pairs timed")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}")
    grassmann(100, 256, 16, args.pairs, args.device, rng)
    log_euclidean(50, 128, args.device, rng)


if __name__ == "__main__":
    main()
