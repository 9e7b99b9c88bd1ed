"""Crash safety: SIGKILL a training + recording process at random moments (some in the middle
of a checkpoint's writes), then check that readers see exactly the fully written checkpoints,
equal to an uninterrupted reference run, and that resuming completes the run with no step
missing, duplicated or corrupted.

Workers are forked from a ``forkserver`` that has torch and latentgeo imported already, so
each of the many killed processes starts in a fraction of a second.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import random
import signal
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

N_STEPS = 8


def _worker(store: str, n_steps: int, mode: str, ready: Any, midwrite: Any) -> None:
    """Deterministic training run that records every step into ``store`` (mode "a")."""
    import torch
    from torch import nn

    from latentgeo.actions import ImageRotations
    from latentgeo.groups import Cyclic
    from latentgeo.record import LatentRecorder

    torch.set_num_threads(1)
    if mode in ("slow", "midwrite"):
        import threading

        import zarr.storage._local as local

        put = local._put
        state = {"announced": False}
        serial = threading.Lock()  # zarr writes concurrently: serialise so the delays add up

        def slow_put(path, value, exclusive=False):
            # Make every file write slow, so that random kills mostly land inside writes.
            # a latent chunk key is "<layer>/c/<step>/<element>/<sample>/<unit>"
            is_latent_chunk = len(path.parts) > 6 and path.parts[-5] == "c"
            is_latent_chunk = is_latent_chunk and path.parts[-6] in ("conv", "fc")
            if mode == "midwrite" and is_latent_chunk and not state["announced"]:
                # Announce the first latent chunk of a checkpoint in flight and wait there:
                # the parent kills us in the middle of a checkpoint's writes.
                n = put(path, value, exclusive)
                state["announced"] = True
                midwrite.set()
                time.sleep(5)
                return n
            with serial:
                time.sleep(0.01)
                return put(path, value, exclusive)

        local._put = slow_put

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(1, 3, 3, padding=1)
            self.drop = nn.Dropout(0.2)
            self.fc = nn.Linear(108, 4)

        def forward(self, x):
            return self.fc(self.drop(torch.relu(self.conv(x)).flatten(1)))

    torch.manual_seed(0)
    net = Net()
    probe = torch.randn(6, 1, 6, 6, generator=torch.Generator().manual_seed(1))
    gen = torch.Generator().manual_seed(2)
    rec = LatentRecorder(
        net, ["conv", "fc"], ImageRotations(Cyclic(4)), probe, store, mode="a", batch_size=8
    )
    ready.set()
    for step in range(n_steps):
        xb = torch.randn(16, 1, 6, 6, generator=gen)
        yb = torch.randint(0, 4, (16,), generator=gen)
        loss = nn.functional.cross_entropy(net(xb), yb)
        net.zero_grad()
        loss.backward()
        with torch.no_grad():  # plain SGD (torch.optim would import torch._dynamo: slow)
            for p in net.parameters():
                p -= 0.05 * p.grad
        rec.record(step, metrics={"loss": loss.item()})
    rec.close()


_PRELOAD = ["torch", "zarr", "latentgeo.actions", "latentgeo.groups", "latentgeo.record"]


def _context() -> Any:
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(_PRELOAD)
    return ctx


def _spawn(store: Path, mode: str) -> tuple[Any, Any, Any]:
    ctx = _context()
    ready, midwrite = ctx.Event(), ctx.Event()
    proc = ctx.Process(target=_worker, args=(str(store), N_STEPS, mode, ready, midwrite))
    proc.start()
    return proc, ready, midwrite


def _run_to_end(store: Path, mode: str = "fast") -> None:
    proc, ready, midwrite = _spawn(store, mode)  # keep the events alive until the child is done
    proc.join(timeout=120)
    del ready, midwrite
    assert proc.exitcode == 0, f"worker failed with exit code {proc.exitcode}"


def _snapshot(store: Path) -> dict:
    from latentgeo import open_run

    run = open_run(store)
    return {
        "steps": run.steps.tolist(),
        "conv": run.latents("conv").values,
        "fc": run.latents("fc").values,
        "loss": run.metrics["loss"].values,
    }


def _assert_prefix_of(got: dict, ref: dict) -> None:
    k = len(got["steps"])
    assert got["steps"] == ref["steps"][:k]  # increasing, no duplicate, no gap
    for key in ("conv", "fc", "loss"):
        np.testing.assert_array_equal(got[key], ref[key][:k])  # bit-identical contents


@pytest.mark.slow
def test_sigkill_at_random_moments_then_resume(tmp_path):
    import zarr

    ref_store = tmp_path / "reference.zarr"
    _run_to_end(ref_store)
    ref = _snapshot(ref_store)
    assert ref["steps"] == list(range(N_STEPS))

    store = tmp_path / "crashy.zarr"
    rnd = random.Random(1234)
    kills, midwrite_kills, torn_seen, progress = 0, 0, 0, []
    attempts = 0
    while kills < 6 and attempts < 14:
        attempts += 1
        mode = "midwrite" if attempts % 2 else "slow"
        proc, ready, midwrite = _spawn(store, mode)
        assert ready.wait(timeout=60), f"worker did not start (exit code {proc.exitcode})"
        if mode == "midwrite":
            while not midwrite.wait(timeout=0.05) and proc.is_alive():
                pass
        else:
            time.sleep(rnd.uniform(0.0, 1.0))
        if not proc.is_alive():
            proc.join()
            assert proc.exitcode == 0, f"worker failed with exit code {proc.exitcode}"
            continue  # finished before the kill
        os.kill(proc.pid, signal.SIGKILL)
        proc.join()
        assert proc.exitcode == -signal.SIGKILL
        kills += 1
        midwrite_kills += mode == "midwrite"
        # Was the store left torn (grown arrays or temporary files past the commit)?
        committed = zarr.open_group(store, mode="r", use_consolidated=False).attrs["latentgeo"][
            "committed_steps"
        ]
        lengths = {
            a.shape[0]
            for _, a in zarr.open_group(store, mode="r", use_consolidated=False).arrays()
            if (a.metadata.dimension_names or ("",))[0] == "step"
        }
        partial = list(store.rglob("*.partial"))
        orphans = [store / layer / "c" / str(committed) for layer in ("conv", "fc")]
        orphaned = any(f.is_file() for d in orphans for f in d.rglob("*"))
        torn_seen += bool(partial) or lengths != {committed} or orphaned
        got = _snapshot(store)  # a reader sees exactly the committed, correct prefix
        _assert_prefix_of(got, ref)
        progress.append(len(got["steps"]))

    assert kills >= 5, f"only {kills} kills landed in {attempts} attempts ({progress})"
    assert midwrite_kills >= 2 and torn_seen >= 2, (midwrite_kills, torn_seen)
    _run_to_end(store)  # resume to the end
    assert not list(store.rglob("*.partial"))  # the resuming writer cleaned the killed ones
    final = _snapshot(store)
    _assert_prefix_of(final, ref)
    assert final["steps"] == ref["steps"]
    assert progress == sorted(progress), progress  # never lost committed checkpoints
    print("committed checkpoints after each kill:", progress)
