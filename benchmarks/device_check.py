"""Every CUDA path of latentgeo in one run, checked against the CPU, with the device speed-ups.

One script for a machine with a GPU (under 5 minutes on one device), printing one table:

1. recorder -- ``LatentRecorder`` on the device (pinned host buffers, the copy event that
   hands them to the writer thread) against the same model recorded on the CPU, over three
   checkpoints whose weights change in between (a copy that raced the next forward pass
   would store the wrong checkpoint); the host buffers are pinned; ``record()``'s blocking
   time over the bare forward passes (``benchmarks/record.py``; target <= 1.25).
2. probes -- ``LinearProbe`` (float64 and float32), ``OrthogonalProbe``,
   ``GroupConsistentProbe`` on the device against the CPU, and the device speed-up of the
   linear probe; ``probes.run(..., device=...)`` on a recorded store against the CPU.
3. geometry -- the Grassmann distance matrix of 100 checkpoints and a subspace trajectory
   (``trajectories.subspace(..., device=...)``) against the CPU, and the speed-up.
4. ``latentgeo analyze --device cuda`` (the command line, in a subprocess) against
   ``--device cpu`` on the same store: the same summary.

Comparisons run with TF32 off (``torch.backends.{cuda.matmul,cudnn}.allow_tf32 = False``, set
by this script only), so float32 agreement is to float32 round-off.  Without CUDA the script
says so and runs the same path on the CPU at small sizes (a smoke run: every comparison is
then CPU against CPU), and exits 0.

Run: ``python benchmarks/device_check.py [--device cuda:0] [--quick]``.
"""

from __future__ import annotations

import argparse
import copy
import importlib.util
import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

ROWS: list[tuple[str, str, str, str, str]] = []
#: Recorded layers narrow enough for the probes' d x d maps (conv1 has 4096 units).
SMALL_LAYERS = ("conv3", "fc")


def row(area: str, check: str, ok: bool | None, value: str, target: str) -> None:
    """One line of the table; ``ok`` None is a measurement without a pass/fail target."""
    status = "info" if ok is None else ("PASS" if ok else "FAIL")
    ROWS.append((area, check, status, value, target))
    print(f"  [{status}] {area}: {check}: {value} ({target})", flush=True)


def guarded(area: str, fn: Callable[[], None]) -> None:
    """Run one section; an exception becomes a FAIL row instead of ending the run."""
    t0 = time.perf_counter()
    try:
        fn()
    except Exception as err:  # every failure is reported in the table
        row(area, "section raised", False, f"{type(err).__name__}: {err}"[:200], "no error")
    print(f"  ({area}: {time.perf_counter() - t0:.1f} s)", flush=True)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _best(fn: Callable[[], Any], device: torch.device, repeats: int = 3) -> tuple[float, Any]:
    best, out = np.inf, None
    for _ in range(repeats):
        _sync(device)
        t0 = time.perf_counter()
        out = fn()
        _sync(device)
        best = min(best, time.perf_counter() - t0)
    return best, out


def _load_record_bench() -> Any:
    # By path: putting benchmarks/ on sys.path would shadow the probes package.
    spec = importlib.util.spec_from_file_location("bench_record", ROOT / "benchmarks" / "record.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _rel(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    scale = max(float(np.abs(b).max()), 1e-300)
    return float(np.abs(a - b).max() / scale)


# -- 1. recorder ------------------------------------------------------------------------------


def check_recorder(device: torch.device, tmp: Path, n_samples: int, repeats: int) -> Path:
    from latentgeo.actions import ImageRotations
    from latentgeo.groups import Dihedral
    from latentgeo.record import LatentRecorder
    from latentgeo.store import open_run

    bench = _load_record_bench()
    action = ImageRotations(Dihedral(4))
    x = torch.randn(n_samples, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    base = bench.CNN()
    stores = {}
    host_pinned = None
    for role, where in (("ref", torch.device("cpu")), ("dev", device)):
        model = copy.deepcopy(base).to(where)
        path = tmp / f"rec_{role}.zarr"
        rec = LatentRecorder(model, bench.LAYERS, action, x, path, dtype="float32")
        for step in range(3):
            rec.record(step)
            # Change the weights right away: the next forward pass must not leak into the
            # checkpoint whose host copy may still be in flight.
            with torch.no_grad():
                for p in model.parameters():
                    p.mul_(0.9).add_(0.01)
        rec.flush()
        if where.type == "cuda":
            buffers = [b for bufs in rec._free_host.values() for b in bufs]
            host_pinned = bool(buffers) and all(b.is_pinned() for b in buffers)
        rec.close()
        stores[role] = path
    ref, dev = open_run(stores["ref"]), open_run(stores["dev"])
    worst = 0.0
    for layer in bench.LAYERS:
        for i in range(3):
            worst = max(worst, _rel(dev.read_block(layer, i), ref.read_block(layer, i)))
    row(
        "recorder",
        "3 checkpoints, 4 layers: device vs CPU",
        worst <= 1e-4,
        f"{worst:.1e}",
        "max rel diff <= 1e-4 (float32)",
    )
    same_counts = bool((dev.nonfinite.values == ref.nonfinite.values).all())
    row(
        "recorder",
        "non-finite counts (async copy)",
        same_counts,
        str(dev.nonfinite.values.sum()),
        "equal to CPU",
    )
    if device.type == "cuda":
        row("recorder", "host buffers pinned", bool(host_pinned), str(host_pinned), "True")
    else:
        row("recorder", "host buffers pinned", None, "n/a on CPU", "CUDA only")
    ratio, r, b = bench.bench_record(tmp, device, repeats)
    row(
        "recorder",
        "record() blocking / bare forward",
        ratio <= 1.25,
        f"{ratio:.3f} ({r * 1e3:.1f} / {b * 1e3:.1f} ms)",
        "<= 1.25",
    )
    return stores["ref"]


# -- 2. probes --------------------------------------------------------------------------------


def check_probes(device: torch.device, store: Path, n: int, d: int, repeats: int) -> None:
    import probes
    from latentgeo.datasets.planted import planted_latents
    from latentgeo.groups import Dihedral

    G = Dihedral(4)
    mult = {"A1": d // 16, "A2": d // 16, "B1": d // 16, "B2": d // 16, "E1": d // 4}
    Z = planted_latents(G, mult, n, noise=0.3, seed=0).Z
    cpu = torch.device("cpu")
    kw = {"n_null": 1, "n_bootstrap": 200}
    t_cpu, ref = _best(lambda: probes.LinearProbe(device="cpu", **kw).fit(Z), cpu, repeats)
    Zd = torch.as_tensor(Z, device=device)
    t_dev, got = _best(lambda: probes.LinearProbe(device=device, **kw).fit(Zd), device, repeats)
    err = max(
        _rel(got.rho_, ref.rho_),
        float(np.abs(got.r2_ - ref.r2_).max()),
        float(np.abs(got.null_r2_ - ref.null_r2_).max()),
    )
    row(
        "probes",
        f"LinearProbe float64 (|G|=8, n={n}, d={d})",
        err <= 1e-8,
        f"{err:.1e}",
        "rho, r2, null r2 within 1e-8",
    )
    row(
        "probes",
        "LinearProbe device speed-up (defaults)",
        None,
        f"x{t_cpu / t_dev:.1f} ({t_cpu:.2f} s -> {t_dev:.3f} s)",
        "measured",
    )
    f32 = probes.LinearProbe(device=device, dtype=torch.float32, **kw).fit(Zd)
    e32 = float(np.abs(f32.r2_ - ref.r2_).max())
    row("probes", "LinearProbe float32 r2 vs float64 CPU", e32 <= 1e-4, f"{e32:.1e}", "<= 1e-4")
    o_ref = probes.OrthogonalProbe(8, n_bootstrap=0).fit(Z)
    o_dev = probes.OrthogonalProbe(8, n_bootstrap=0, device=device).fit(Zd)
    e = float(np.abs(o_dev.r2_ - o_ref.r2_).max())
    row("probes", "OrthogonalProbe r2", e <= 1e-8, f"{e:.1e}", "within 1e-8")
    g_ref = probes.GroupConsistentProbe(G, n_bootstrap=0).fit(Z)
    g_dev = probes.GroupConsistentProbe(G, n_bootstrap=0, device=device).fit(Zd)
    e = float(np.abs(g_dev.r2_ - g_ref.r2_).max())
    row("probes", "GroupConsistentProbe r2", e <= 1e-8, f"{e:.1e}", "within 1e-8")
    kinds = ("linear", "spectrum", "invariance", "homomorphism", "characters")
    small = list(SMALL_LAYERS)
    ds_ref = probes.run(store, small, probes=kinds, progress=False, cache=False)
    ds_dev = probes.run(store, small, probes=kinds, progress=False, cache=False, device=device)
    e = max(
        float(np.nanmax(np.abs(ds_dev[v].values - ds_ref[v].values)))
        for v in ("r2", "spectrum", "invariance", "homomorphism_error", "multiplicity")
    )
    row("probes", "probes.run on the recorded store", e <= 1e-8, f"{e:.1e}", "within 1e-8")


# -- 3. geometry ------------------------------------------------------------------------------


def check_geometry(device: torch.device, store: Path, T: int, repeats: int) -> None:
    import latentgeo.geometry as geo
    import trajectories
    from latentgeo.store import open_run

    rng = np.random.default_rng(0)
    bases = torch.from_numpy(np.linalg.qr(rng.standard_normal((T, 256, 16)))[0])
    cpu = torch.device("cpu")
    dev_bases = bases.to(device)
    geo.pairwise_distances(dev_bases[:3], "grassmann")  # warm-up (kernels, cuSOLVER handles)
    t_cpu, D_cpu = _best(lambda: geo.pairwise_distances(bases, "grassmann"), cpu, repeats)
    t_dev, D_dev = _best(lambda: geo.pairwise_distances(dev_bases, "grassmann"), device, repeats)
    e = _rel(D_dev.cpu().numpy(), D_cpu.numpy())
    row(
        "geometry",
        f"Grassmann distances, {T} points of Gr(256, 16)",
        e <= 1e-10,
        f"{e:.1e}",
        "rel diff <= 1e-10 (float64)",
    )
    row(
        "geometry",
        "Grassmann distances device speed-up",
        None,
        f"x{t_cpu / t_dev:.1f} ({t_cpu * 1e3:.0f} ms -> {t_dev * 1e3:.1f} ms)",
        "measured",
    )
    run = open_run(store)
    ref = trajectories.subspace(run, "fc", 4).distance_matrix().values
    got = trajectories.subspace(run, "fc", 4, device=device).distance_matrix().values
    e = float(np.abs(np.asarray(got) - np.asarray(ref)).max())
    row(
        "geometry",
        "trajectories.subspace distance matrix",
        e <= 1e-6,
        f"{e:.1e}",
        "abs diff <= 1e-6 rad (float32 latents)",
    )


# -- 4. the command line ----------------------------------------------------------------------


def check_analyze(device: torch.device, store: Path, tmp: Path) -> None:
    summaries = {}
    for role, where in (("ref", "cpu"), ("dev", str(device))):
        copy_of = tmp / f"analyze_{role}.zarr"
        shutil.copytree(store, copy_of)  # each run fills its own caches
        out = tmp / f"out_{role}"
        cmd = [
            sys.executable,
            "-m",
            "latentgeo.cli",
            "analyze",
            str(copy_of),
            "--out",
            str(out),
            "--device",
            where,
            "--no-progress",
            "--layers",
            *SMALL_LAYERS,
        ]
        t0 = time.perf_counter()
        res = subprocess.run(
            cmd, capture_output=True, text=True, cwd=ROOT, env={**_env(), "MPLBACKEND": "Agg"}
        )
        secs = time.perf_counter() - t0
        ok = res.returncode == 0
        row(
            "analyze",
            f"latentgeo analyze --device {where}",
            ok,
            f"exit {res.returncode} in {secs:.1f} s" + ("" if ok else f": {res.stderr[-300:]}"),
            "exit 0",
        )
        if ok:
            summaries[role] = json.loads((out / "summary.json").read_text())
    if len(summaries) == 2:
        a, b = summaries["ref"]["layers"], summaries["dev"]["layers"]
        e = max(
            abs(a[k][f] - b[k][f])
            for k in a
            for f in ("r2", "invariance", "path_length")
            if a[k].get(f) is not None
        )
        row(
            "analyze",
            "summary.json device vs CPU",
            e <= 1e-6,
            f"{e:.1e}",
            "r2, invariance, path length within 1e-6",
        )


def _env() -> dict[str, str]:
    import os

    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default=None, help="default: cuda when available")
    parser.add_argument("--quick", action="store_true", help="small sizes (smoke run)")
    args = parser.parse_args(argv)
    requested = args.device or ("cuda" if torch.cuda.is_available() else None)
    quick = args.quick
    if requested is None or (
        torch.device(requested).type == "cuda" and not torch.cuda.is_available()
    ):
        print(
            f"no CUDA device (torch {torch.__version__}, cuda available: "
            f"{torch.cuda.is_available()}): nothing to check on a GPU. Running the same path "
            "on the CPU at small sizes instead (a smoke run; every comparison is CPU vs CPU)."
        )
        device, quick = torch.device("cpu"), True
    else:
        device = torch.device(requested)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False  # this script's comparisons only
        torch.backends.cudnn.allow_tf32 = False
        print(f"device {device}: {torch.cuda.get_device_name(device)}, torch {torch.__version__}")
    sizes = {
        "samples": 64 if quick else 512,
        "n": 512 if quick else 4096,
        "d": 64 if quick else 512,
        "T": 20 if quick else 100,
        "repeats": 2 if quick else 3,
    }
    tmp = Path(tempfile.mkdtemp(prefix="latentgeo-device-"))
    t0 = time.perf_counter()
    store: list[Path] = []
    try:
        guarded(
            "recorder",
            lambda: store.append(check_recorder(device, tmp, sizes["samples"], sizes["repeats"])),
        )
        if store:
            guarded(
                "probes",
                lambda: check_probes(device, store[0], sizes["n"], sizes["d"], sizes["repeats"]),
            )
            guarded(
                "geometry", lambda: check_geometry(device, store[0], sizes["T"], sizes["repeats"])
            )
            guarded("analyze", lambda: check_analyze(device, store[0], tmp))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    widths = [max(len(r[i]) for r in ROWS) for i in range(5)] if ROWS else [0] * 5
    head = ("area", "check", "status", "value", "target")
    widths = [max(w, len(h)) for w, h in zip(widths, head)]
    print(f"\nlatentgeo device check on {device} ({time.perf_counter() - t0:.0f} s)")
    for line in (head, tuple("-" * w for w in widths), *ROWS):
        print("  ".join(str(c).ljust(w) for c, w in zip(line, widths)).rstrip())
    failed = sum(r[2] == "FAIL" for r in ROWS)
    print(f"{failed} failed of {sum(r[2] != 'info' for r in ROWS)} checks")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
