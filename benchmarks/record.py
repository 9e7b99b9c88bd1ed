"""Benchmark of recording, against the references measured in the same run.

(a) How long ``LatentRecorder.record()`` blocks the training loop, divided by the time of the
    bare forward passes over the same transformed probe set (the unavoidable part).
    Target: <= 1.25 at default settings for a CNN with 4 recorded layers, D4 (8 elements)
    and 512 probe samples.
(b) Store write throughput (``RunWriter.append`` of one checkpoint) divided by the throughput
    of writing the same bytes with ``numpy.ndarray.tofile``.  Target: >= 0.5.
(c) Live probes (``live=probes.LiveProbes()``: invariance and spectrum of every layer, computed in
    the writer thread): ``record()``'s blocking time with them divided by ``record()``'s without
    them, both recorders in the same run on the same model, timed alternately. Target: <= 1.5.
    Reported twice: with training time between recordings (``flush()`` untimed between them, the
    writer finishes meanwhile: the normal case), and back to back (the next ``record()`` meets a
    writer still busy with the live probes: the worst case). Also the end-to-end ratio ``record() +
    flush()`` (what the live probes cost in all).
Run: ``python benchmarks/record.py [--repeats 5] [--device cpu]``.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from latentgeo.actions import ImageRotations
from latentgeo.groups import Dihedral
from latentgeo.record import LatentRecorder
from latentgeo.store import RunWriter

LAYERS = ["conv1", "conv2", "conv3", "fc"]


class CNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, padding=1)
        self.conv2 = nn.Conv2d(16, 32, 3, padding=1)
        self.conv3 = nn.Conv2d(32, 32, 3, padding=1)
        self.fc = nn.Linear(32, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.conv1(x))
        h = torch.relu(self.conv2(nn.functional.max_pool2d(h, 2)))
        h = torch.relu(self.conv3(nn.functional.max_pool2d(h, 2)))
        return self.fc(h.mean((2, 3)))


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bench_record(tmp: Path, device: torch.device, repeats: int) -> tuple[float, float, float]:
    model = CNN().to(device)
    action = ImageRotations(Dihedral(4))
    x = torch.randn(512, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    rec = LatentRecorder(model, LAYERS, action, x, tmp / "bench.zarr")  # default settings
    # The bare reference: the same forward passes over the same transformed probe set.
    per = max(1, rec.batch_size // action.order)
    batches = [action.orbit(x[s : s + per].to(device)).flatten(0, 1) for s in range(0, len(x), per)]
    model.eval()

    def bare() -> None:
        with torch.inference_mode():
            for b in batches:
                model(b)
        _sync(device)

    bare()
    rec.record(0)  # warm-up: orbit cache, array creation
    rec.flush()
    bare_times, record_times = [], []
    for step in range(1, repeats + 1):
        t0 = time.perf_counter()
        bare()
        bare_times.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        rec.record(step)
        record_times.append(time.perf_counter() - t0)
        # Training runs between recordings; the writer finishes meanwhile.  Not timed.
        rec.flush()
    rec.close()
    b, r = statistics.median(bare_times), statistics.median(record_times)
    return r / b, r, b


def bench_live(tmp: Path, device: torch.device, repeats: int) -> dict[str, tuple[float, ...]]:
    model = CNN().to(device)
    action = ImageRotations(Dihedral(4))
    x = torch.randn(512, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    plain = LatentRecorder(model, LAYERS, action, x, tmp / "plain.zarr")
    from probes import LiveProbes

    live = LatentRecorder(model, LAYERS, action, x, tmp / "live.zarr", live=LiveProbes())
    recs = {"plain": plain, "live": live}
    for rec in recs.values():  # warm-up: orbit cache, array creation, probe imports
        rec.record(0)
        rec.flush()
    times: dict[str, dict[str, list[float]]] = {
        k: {"blocking": [], "end_to_end": [], "back_to_back": []} for k in recs
    }
    step = 1
    for i in range(repeats):
        order = ["plain", "live"] if i % 2 == 0 else ["live", "plain"]
        for name in order:
            rec = recs[name]
            t0 = time.perf_counter()
            rec.record(step)
            t1 = time.perf_counter()
            rec.flush()
            t2 = time.perf_counter()
            times[name]["blocking"].append(t1 - t0)
            times[name]["end_to_end"].append(t2 - t0)
        step += 1
    for name in ("plain", "live"):  # back to back: 1 + repeats recordings, no flush between
        rec = recs[name]
        rec.record(step)
        for _ in range(repeats):
            step += 1
            t0 = time.perf_counter()
            rec.record(step)
            times[name]["back_to_back"].append(time.perf_counter() - t0)
        rec.flush()
        step += 1
    for rec in recs.values():
        rec.close()
    out = {}
    for what in ("blocking", "end_to_end", "back_to_back"):
        p = statistics.median(times["plain"][what])
        q = statistics.median(times["live"][what])
        out[what] = (q / p, q, p)
    return out


def bench_write(tmp: Path, repeats: int) -> tuple[float, float, float]:
    rng = np.random.default_rng(0)
    n_el, n = 8, 512
    units = {"conv1": 16 * 16 * 16, "conv2": 32 * 8 * 8, "conv3": 32 * 4 * 4, "fc": 10}
    latents = {k: rng.standard_normal((n_el, n, u), dtype=np.float32) for k, u in units.items()}
    nbytes = sum(a.nbytes for a in latents.values())
    meta = {"elements": [str(i) for i in range(n_el)], "probe": {"n_samples": n}}
    specs = {
        k: {"feature_shape": [u], "n_units": u, "dtype": "float32", "reducer": "flatten"}
        for k, u in units.items()
    }
    zarr_times, tofile_times = [], []
    with RunWriter(tmp / "write.zarr", meta=meta) as w:
        w.ensure_layers(specs)
        w.append(0, latents)  # warm-up
        for step in range(1, repeats + 1):
            t0 = time.perf_counter()
            w.append(step, latents)
            zarr_times.append(time.perf_counter() - t0)
            raw = tmp / f"raw{step}"
            raw.mkdir()
            t0 = time.perf_counter()
            for k, a in latents.items():
                a.tofile(raw / f"{k}.bin")
            tofile_times.append(time.perf_counter() - t0)
    z, t = statistics.median(zarr_times), statistics.median(tofile_times)
    return (nbytes / z) / (nbytes / t), nbytes / z / 2**20, nbytes / t / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    device = torch.device(args.device)
    tmp = Path(tempfile.mkdtemp(prefix="latentgeo-bench-"))
    try:
        torch.manual_seed(0)
        ratio, r, b = bench_record(tmp, device, args.repeats)
        print(
            f"(a) record() blocking / bare forward passes: {ratio:.3f} "
            f"(record {r * 1e3:.1f} ms, forward {b * 1e3:.1f} ms, device {device}, "
            f"4 layers, D4, 512 samples; target <= 1.25)"
        )
        ratio, zmb, tmb = bench_write(tmp, args.repeats)
        print(
            f"(b) store write throughput / ndarray.tofile: {ratio:.3f} "
            f"(store {zmb:.0f} MiB/s, tofile {tmb:.0f} MiB/s; target >= 0.5)"
        )
        live = bench_live(tmp, device, args.repeats)
        labels = {
            "blocking": "record() blocking, live / plain (training between recordings)",
            "back_to_back": "record() blocking, live / plain (back to back, writer busy)",
            "end_to_end": "record() + flush(), live / plain (end to end)",
        }
        for what in ("blocking", "back_to_back", "end_to_end"):
            ratio, q, p = live[what]
            target = "; target <= 1.5" if what == "blocking" else ""
            print(
                f"(c) {labels[what]}: {ratio:.3f} "
                f"(live {q * 1e3:.1f} ms, plain {p * 1e3:.1f} ms, invariance + spectrum of "
                f"4 layers{target})"
            )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
