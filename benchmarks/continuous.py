"""Benchmark the harmonic spectrum of a continuous group against a plain least-squares solve.

The SO(3) spectrum to degree 4 (165 basis functions) of latents with 512 sampled elements x
1024 samples x 512 units (float64, 2.1 GB), through ``probes.orbit_spectrum`` (design matrix,
one QR for all 524 288 right-hand sides, energies per irrep, Haar invariant share, residual),
against a plain numpy least-squares solve of the same design matrix and right-hand sides in
the same run: the thin-QR solve (``numpy.linalg.qr`` then ``solve(R, QᵀY)``, the coefficients
alone), and with ``--lstsq`` also ``numpy.linalg.lstsq`` (LAPACK gelsd, ~30x slower than the
QR solve at this size).  Prints the times (best of ``--repeats``, after one small warm-up call
that pays the one-time imports) and the ratios; the target is at most 2x.

Run: ``OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 python benchmarks/continuous.py`` (one thread
each for torch and numpy, so that the timings compare like with like on a shared machine;
``--quick`` for a small smoke run).
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _latents(group, elements: np.ndarray, n: int, d: int, seed: int = 0) -> np.ndarray:
    """Orbit latents with planted degrees 0..4 plus noise, shape (n_elements, n, d)."""
    rng = np.random.default_rng(seed)
    Z = np.zeros((len(elements), n, d))
    for rho in group.irreps(4):
        D = rho(elements).reshape(len(elements), -1)  # (n_el, dim²)
        coef = rng.normal(size=(D.shape[1], n)) / rho.dim
        Z += np.einsum("gk,kn,d->gnd", D, coef, rng.normal(size=d), optimize=True)
    Z += 0.1 * rng.normal(size=Z.shape)
    return Z


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a small smoke run")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--lstsq", action="store_true", help="also time numpy.linalg.lstsq")
    args = parser.parse_args()

    import probes
    from latentgeo.groups import SO3, harmonic_basis

    n_el, n, d = (512, 64, 32) if args.quick else (512, 1024, 512)
    G = SO3()
    elements = G.sample(n_el, 0)
    elements[0] = np.eye(3)
    Z = _latents(G, elements, n, d)
    print(
        f"SO(3) spectrum to degree 4: {n_el} elements x {n} samples x {d} units "
        f"(float64, {Z.nbytes / 2**30:.2f} GiB); best of {args.repeats}"
    )
    B, _ = harmonic_basis(G, elements, 4)
    Y = Z.reshape(n_el, -1)
    probes.orbit_spectrum(Z[:, :2, :2], G, elements, max_degree=4)  # warm-up: imports
    t_ours, t_plain, t_qr = np.inf, np.inf, np.inf
    spec = None
    for _ in range(args.repeats):
        t = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # 512 elements support degree 4 without a warning
            spec = probes.orbit_spectrum(Z, G, elements, max_degree=4)
        t_ours = min(t_ours, time.perf_counter() - t)
        if args.lstsq:
            t = time.perf_counter()
            coef, *_ = np.linalg.lstsq(B, Y, rcond=None)
            t_plain = min(t_plain, time.perf_counter() - t)
            del coef
        t = time.perf_counter()
        Q, R = np.linalg.qr(B)
        coef = np.linalg.solve(R, Q.T @ Y)
        t_qr = min(t_qr, time.perf_counter() - t)
        del coef
    assert spec is not None
    print("spectrum:", {k: round(float(v), 4) for k, v in zip(spec.irrep.values, spec.values)})
    print(f"design {B.shape}, {Y.shape[1]} right-hand sides")
    print(f"orbit_spectrum        {t_ours:8.3f} s")
    print(f"numpy thin-QR solve   {t_qr:8.3f} s")
    print(f"ratio spectrum / numpy thin-QR solve: {t_ours / t_qr:.2f}x (target <= 2x)")
    if args.lstsq:
        print(f"numpy.linalg.lstsq    {t_plain:8.3f} s")
        print(f"ratio spectrum / numpy.linalg.lstsq: {t_ours / t_plain:.2f}x (target <= 2x)")


if __name__ == "__main__":
    main()
