"""Benchmark the probes against scikit-learn, and the runner's peak memory on a large store.

1. Ridge probes with penalty selection for |G| = 8, n = 4096, d = 512: ``LinearProbe``
   (GCV and exact leave-one-out) against scikit-learn's ``RidgeCV`` looped over elements on
   the same split and the same penalty grid; prints times, ratios, the largest difference of
   held-out R² and whether the chosen penalties agree.
2. Peak resident memory of ``probes.run`` on a run store of >= 2 GB written here (in a
   temporary folder, deleted afterwards), measured in a fresh subprocess with
   ``resource.getrusage``.

Run: ``python benchmarks/probes.py`` (``--quick`` for a small smoke run, ``--only ridge`` or
``--only memory`` for one part).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _orbit(G: int, n: int, d: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)) * np.linspace(0.2, 2.0, d)
    Z = [X]
    for g in range(1, G):
        Q = np.linalg.qr(rng.normal(size=(d, d)))[0]
        Z.append(X @ Q.T + (0.2 + 0.2 * g) * rng.normal(size=(n, d)))
    return np.stack(Z)


def bench_ridge(G: int, n: int, d: int, repeats: int = 3) -> None:
    from sklearn.linear_model import RidgeCV
    from sklearn.metrics import r2_score

    from probes import LinearProbe

    Z = _orbit(G, n, d)
    print(
        f"ridge probes: |G|={G}, n={n}, d={d} (float64, test_size=0.25); best of {repeats} "
        "interleaved runs each (single timings are noisy on a shared machine)"
    )
    fits: dict[str, tuple[float, object]] = {"gcv": (np.inf, None), "loo": (np.inf, None)}
    t_ref = np.inf
    for _ in range(repeats):
        for criterion in ("gcv", "loo"):
            t = time.perf_counter()
            probe = LinearProbe(criterion=criterion, n_null=0, n_bootstrap=0).fit(Z)
            secs = time.perf_counter() - t
            if secs < fits[criterion][0]:
                fits[criterion] = (secs, probe)
        probe = fits["gcv"][1]
        tr, te = probe.train_index_, probe.test_index_
        t = time.perf_counter()
        ref_r2, ref_alpha = [], []
        for g in range(G):
            model = RidgeCV(alphas=probe.alphas_).fit(Z[0, tr], Z[g, tr])
            ref_alpha.append(model.alpha_)
            pred = model.predict(Z[0, te])
            ref_r2.append(r2_score(Z[g, te], pred, multioutput="variance_weighted"))
        t_ref = min(t_ref, time.perf_counter() - t)
    print(f"  sklearn RidgeCV x {G} elements ({len(probe.alphas_)} alphas): {t_ref:8.2f} s")
    for criterion, (secs, p) in fits.items():
        same = int(np.sum(p.alpha_[1:] == np.asarray(ref_alpha)[1:]))
        print(
            f"  LinearProbe(criterion={criterion!r}): {secs:8.2f} s  speed-up x{t_ref / secs:6.1f}"
            f"  max |R2 - sklearn R2| = {np.max(np.abs(p.r2_ - ref_r2)):.2e}"
            f"  same alpha for {same}/{G - 1} non-identity elements"
        )


_CHILD = r"""
import json, resource, sys, time
sys.path.insert(0, {root!r})
import probes
def high_water_kib():
    # VmHWM is this process's own peak RSS; getrusage's ru_maxrss survives exec and can
    # report the parent's peak instead, so it is only the fallback off Linux.
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
base = high_water_kib()
t = time.perf_counter()
ds = probes.run({path!r}, progress=False, cache=False)
secs = time.perf_counter() - t
peak = high_water_kib()
print(json.dumps({{"base_kib": base, "peak_kib": peak, "seconds": secs,
                  "tasks": int(ds.sizes["layer"] * ds.sizes["step"]),
                  "min_r2": float(ds.r2.min())}}))
"""


def bench_memory(G: int, n: int, d: int, n_steps: int, n_layers: int) -> None:
    from latentgeo.store import RunWriter

    tmp = Path(tempfile.mkdtemp(prefix="latentgeo-bench-"))
    path = tmp / "big.zarr"
    try:
        rng = np.random.default_rng(0)
        from latentgeo.groups import Cyclic

        group = Cyclic(G)
        meta = {"elements": list(group.elements), "group": group.spec, "probe": {"n_samples": n}}
        layers = {
            f"layer{i}": {"feature_shape": [d], "n_units": d, "dtype": "float32"}
            for i in range(n_layers)
        }
        t = time.perf_counter()
        Q = np.linalg.qr(rng.normal(size=(d, d)))[0].astype(np.float32)
        with RunWriter(path, meta=meta) as w:
            w.ensure_layers(layers)
            for step in range(n_steps):
                X = rng.standard_normal((n, d), dtype=np.float32)
                Z = np.stack([X] + [X @ Q.T for _ in range(G - 1)])
                Z[1:] += 0.5 * rng.standard_normal(Z[1:].shape, dtype=np.float32)
                w.append(step, dict.fromkeys(layers, Z))
        size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
        print(
            f"run store: {n_layers} layers x {n_steps} steps x ({G}, {n}, {d}) float32 = "
            f"{size / 2**30:.2f} GiB on disk (written in {time.perf_counter() - t:.1f} s)"
        )
        code = _CHILD.format(root=str(ROOT), path=str(path))
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        if out.returncode:
            raise RuntimeError(f"probes.run subprocess failed:\n{out.stderr}")
        res = json.loads(out.stdout.strip().splitlines()[-1])
        print(
            f"  probes.run: {res['tasks']} (layer, step) tasks in {res['seconds']:.1f} s, "
            f"peak RSS {res['peak_kib'] / 2**20:.2f} GiB (after imports "
            f"{res['base_kib'] / 2**20:.2f} GiB); target < 1 GiB; min R2 {res['min_r2']:.3f}"
        )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (smoke run)")
    parser.add_argument("--only", choices=("ridge", "memory"), help="run one part")
    args = parser.parse_args()
    if args.only != "memory":
        bench_ridge(*((8, 512, 64) if args.quick else (8, 4096, 512)))
    if args.only != "ridge":
        if args.quick:
            bench_memory(8, 256, 64, n_steps=4, n_layers=2)
        else:
            # 2 layers x 33 steps x 8 x 2048 x 512 x 4 bytes = 2.06 GiB.
            bench_memory(8, 2048, 512, n_steps=33, n_layers=2)


if __name__ == "__main__":
    main()
