"""DDP: a 2-process gloo run records the same store as a single process with the same weights.

Only rank 0 records, forwarding through the unwrapped module; the model has batchnorm buffers,
so a recorder that went through DDP's forward on rank 0 alone would start a buffer broadcast
that rank 1 never joins, and the run would hang (caught by the timeouts below).
"""

from __future__ import annotations

import datetime
import multiprocessing as mp
import socket
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

STEPS = 5
SCHEDULE_EVERY = 2
_PRELOAD = ["torch", "zarr", "latentgeo.actions", "latentgeo.groups", "latentgeo.record"]


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 3, 3, padding=1)
        self.bn = nn.BatchNorm2d(3)
        self.fc = nn.Linear(3 * 6 * 6, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.relu(self.bn(self.conv(x))).flatten(1))


def _probe() -> torch.Tensor:
    return torch.randn(6, 1, 6, 6, generator=torch.Generator().manual_seed(1))


def _recorder(model: nn.Module, store: Path, **kwargs: Any) -> Any:
    from latentgeo.actions import ImageRotations
    from latentgeo.groups import Cyclic
    from latentgeo.record import LatentRecorder
    from latentgeo.schedules import EveryN

    return LatentRecorder(
        model,
        ["conv", "bn", "fc"],
        ImageRotations(Cyclic(4)),
        _probe(),
        store,
        schedule=EveryN(SCHEDULE_EVERY),
        batch_size=8,
        **kwargs,
    )


def _ddp_worker(rank: int, world: int, port: int, store: str, weights: str) -> None:
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel as DDP

    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo",
        init_method=f"tcp://127.0.0.1:{port}",
        rank=rank,
        world_size=world,
        timeout=datetime.timedelta(seconds=60),
    )
    try:
        torch.manual_seed(0)
        model = DDP(Net())
        rec = _recorder(model, Path(store))  # created on every rank
        assert (rec.rank, rec.world_size) == (rank, world)
        gen = torch.Generator().manual_seed(10 + rank)  # each rank sees its own data
        for step in range(STEPS):
            xb = torch.randn(8, 1, 6, 6, generator=gen)
            yb = torch.randint(0, 4, (8,), generator=gen)
            loss = nn.functional.cross_entropy(model(xb), yb)
            model.zero_grad()
            loss.backward()  # gradients all-reduced by DDP
            with torch.no_grad():
                for p in model.parameters():
                    p -= 0.1 * p.grad
            if rec.maybe_record(step, metrics={"loss": loss.item()}) and rank == 0:
                torch.save(model.module.state_dict(), Path(weights) / f"{step}.pt")
        rec.close()
        # every rank holds the weights rank 0 recorded
        flat = torch.cat([p.detach().flatten() for p in model.module.parameters()])
        gathered = [torch.empty_like(flat) for _ in range(world)]
        dist.all_gather(gathered, flat)
        assert all(torch.equal(g, gathered[0]) for g in gathered)
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_ddp_rank0_records_the_single_process_store(tmp_path):
    import torch.multiprocessing as tmp

    import latentgeo

    store, weights = tmp_path / "ddp.zarr", tmp_path / "weights"
    weights.mkdir()
    mp.get_context("forkserver").set_forkserver_preload(_PRELOAD)
    ctx = tmp.start_processes(
        _ddp_worker,
        args=(2, _free_port(), str(store), str(weights)),
        nprocs=2,
        join=False,
        start_method="forkserver",
    )
    deadline = time.monotonic() + 150
    try:
        while not ctx.join(timeout=1):
            if time.monotonic() > deadline:
                pytest.fail("the DDP run hung: a collective was called from one rank only?")
    finally:
        for p in ctx.processes:
            if p.is_alive():
                p.kill()

    ddp = latentgeo.open_run(store)
    expected_steps = [s for s in range(STEPS) if s % SCHEDULE_EVERY == 0]
    assert ddp.steps.tolist() == expected_steps
    assert ddp.attrs["recorder"]["world_size"] == 2

    # the same weights recorded by one process, no torch.distributed
    single_store = tmp_path / "single.zarr"
    model = Net()
    with _recorder(model, single_store) as rec:
        assert (rec.rank, rec.world_size) == (0, 1)
        for step in expected_steps:
            model.load_state_dict(torch.load(weights / f"{step}.pt", weights_only=True))
            rec.record(step)
    single = latentgeo.open_run(single_store)
    assert single.steps.tolist() == expected_steps
    for layer in ("conv", "bn", "fc"):
        np.testing.assert_array_equal(ddp.latents(layer).values, single.latents(layer).values)
        assert ddp.layer_attrs(layer) == single.layer_attrs(layer)
    for key in ("group", "elements", "action", "probe", "layers", "committed_steps"):
        assert ddp.attrs[key] == single.attrs[key]
