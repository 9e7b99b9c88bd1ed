"""FSDP1 and FSDP2 on 2 gloo CPU ranks: recording in lockstep gives the single-process store.

Under FSDP every forward all-gathers parameters, so a recording forward run by rank 0 alone
pairs with the other rank's training collectives (gloo aborts, NCCL hangs).  The recorder
detects such models and runs the orbit forwards on every rank together; rank 0 writes.  Each
worker saves the full weights at the recorded steps; the test records those weights in one
process, without torch.distributed, and the stores must agree.  Ranks that disagree (other
probe set, other step) get an error on every rank instead of a hang.
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

STEPS = 4
_PRELOAD = ["torch", "zarr", "latentgeo.actions", "latentgeo.groups", "latentgeo.record"]
pytestmark = pytest.mark.skipif(
    not torch.distributed.is_available(), reason="torch.distributed is not available"
)


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 3, 3, padding=1)
        self.fc1 = nn.Linear(3 * 6 * 6, 8)
        self.fc2 = nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(torch.relu(self.fc1(torch.relu(self.conv(x)).flatten(1))))


def _probe(seed: int = 1) -> torch.Tensor:
    return torch.randn(6, 1, 6, 6, generator=torch.Generator().manual_seed(seed))


def _recorder(model: nn.Module, store: Path, probe: torch.Tensor | None = None) -> Any:
    from latentgeo.actions import ImageRotations
    from latentgeo.groups import Cyclic
    from latentgeo.record import LatentRecorder

    return LatentRecorder(
        model,
        ["conv", "fc1", "fc2"],
        ImageRotations(Cyclic(4)),
        _probe() if probe is None else probe,
        store,
        batch_size=8,
    )


def _shard(model: Net, kind: str) -> nn.Module:
    if kind == "fsdp2":
        from torch.distributed.fsdp import fully_shard

        fully_shard(model.fc1)
        fully_shard(model.fc2)
        fully_shard(model)
        return model
    from torch.distributed.fsdp import FullyShardedDataParallel as FSDP

    # FSDP1 looks for an accelerator unless told the device (CPU works with gloo).
    cpu = torch.device("cpu")
    model.fc1 = FSDP(model.fc1, device_id=cpu, use_orig_params=True)
    return FSDP(model, device_id=cpu, use_orig_params=True)


def _worker(rank: int, world: int, port: int, kind: str, store: str, weights: str) -> None:
    import torch.distributed as dist
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    from latentgeo.record._lockstep import LockstepError

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
        model = _shard(Net(), kind)
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        full = StateDictOptions(full_state_dict=True)  # (cpu_offload crashes FSDP1 on CPU)
        # A rank with another probe set is refused on every rank, at construction.
        with pytest.raises(LockstepError, match="disagree"):
            _recorder(model, Path(store) / "bad.zarr", probe=_probe(1 + rank))
        rec = _recorder(model, Path(store) / "run.zarr")
        assert rec.collective is not None and rec._lockstep is not None
        gen = torch.Generator().manual_seed(10 + rank)  # each rank sees its own data
        for step in range(STEPS):
            loss = model(torch.randn(8, 1, 6, 6, generator=gen)).pow(2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            assert rec.record(step, metrics={"loss": loss.item()})
            state = get_model_state_dict(model, options=full)  # a collective as well
            if rank == 0:
                torch.save(state, Path(weights) / f"{step}.pt")
        # Ranks that record different steps fail together instead of hanging.
        with pytest.raises(LockstepError, match="the step to record"):
            rec.record(STEPS + rank)
        rec.close()
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(kind: str, tmp_path: Path) -> Path:
    import torch.multiprocessing as tmp

    store, weights = tmp_path / "stores", tmp_path / "weights"
    store.mkdir()
    weights.mkdir()
    mp.get_context("forkserver").set_forkserver_preload(_PRELOAD)
    ctx = tmp.start_processes(
        _worker,
        args=(2, _free_port(), kind, str(store), str(weights)),
        nprocs=2,
        join=False,
        start_method="forkserver",
    )
    deadline = time.monotonic() + 150
    try:
        while not ctx.join(timeout=1):
            if time.monotonic() > deadline:
                pytest.fail(f"the {kind} run hung: a collective called from one rank only?")
    finally:
        for p in ctx.processes:
            if p.is_alive():
                p.kill()
    return store


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["fsdp1", "fsdp2"])
def test_fsdp_lockstep_records_the_single_process_store(kind, tmp_path):
    import latentgeo

    stores = _run(kind, tmp_path)
    sharded = latentgeo.open_run(stores / "run.zarr")
    assert sharded.steps.tolist() == list(range(STEPS))
    assert sharded.attrs["recorder"]["lockstep"] is True
    assert sharded.attrs["recorder"]["world_size"] == 2
    assert sharded.metrics["loss"].shape == (STEPS,)

    model = Net()
    with _recorder(model, tmp_path / "single.zarr") as rec:
        assert rec._lockstep is None
        for step in range(STEPS):
            state = torch.load(tmp_path / "weights" / f"{step}.pt", weights_only=True)
            model.load_state_dict(state)
            rec.record(step)
    single = latentgeo.open_run(tmp_path / "single.zarr")
    for layer in ("conv", "fc1", "fc2"):
        # The same float32 arithmetic on gathered weights: equal to float32 round-off.
        np.testing.assert_allclose(
            sharded.latents(layer).values, single.latents(layer).values, rtol=1e-5, atol=1e-6
        )
        assert sharded.layer_attrs(layer) == single.layer_attrs(layer)
    for key in ("group", "elements", "action", "probe", "layers"):
        assert sharded.attrs[key] == single.attrs[key]


def test_fsdp_models_are_detected_without_a_process_group():
    from latentgeo.record._layers import collective_forward

    assert collective_forward(Net()) is None
    assert collective_forward(nn.parallel.DataParallel(Net())) is None


def _lightning_worker(rank: int, world: int, port: int, store: str, weights: str) -> None:
    import os

    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        WORLD_SIZE=str(world),
        RANK=str(rank),
        LOCAL_RANK=str(rank),
        NODE_RANK="0",
    )
    torch.set_num_threads(1)
    import lightning.pytorch as pl
    from lightning.pytorch.strategies import ModelParallelStrategy
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict
    from torch.distributed.fsdp import fully_shard

    from latentgeo.actions import ImageRotations
    from latentgeo.callbacks import LightningRecorder
    from latentgeo.groups import Cyclic

    class Module(pl.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.net = Net()

        def configure_model(self) -> None:
            mesh = self.device_mesh["data_parallel"]
            for part in (self.net.fc1, self.net.fc2, self.net):
                fully_shard(part, mesh=mesh)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.net(x)

        def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
            return self(batch[0]).pow(2).mean()

        def configure_optimizers(self) -> Any:
            return torch.optim.SGD(self.parameters(), lr=0.1)

    torch.manual_seed(0)
    data = torch.utils.data.TensorDataset(torch.randn(32, 1, 6, 6))
    rec = LightningRecorder(
        ["net.conv", "net.fc1", "net.fc2"], ImageRotations(Cyclic(4)), _probe(), store, schedule=1
    )
    module = Module()
    trainer = pl.Trainer(
        accelerator="cpu",
        devices=world,
        strategy=ModelParallelStrategy(data_parallel_size=world, tensor_parallel_size=1),
        max_steps=STEPS - 1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[rec],
    )
    trainer.fit(module, torch.utils.data.DataLoader(data, batch_size=4))
    state = get_model_state_dict(module.net, options=StateDictOptions(full_state_dict=True))
    if rank == 0:
        torch.save(state, Path(weights) / "last.pt")


@pytest.mark.slow
def test_lightning_model_parallel_strategy_records_in_lockstep(tmp_path):
    """Lightning's FSDP2 strategy (``ModelParallelStrategy`` + ``fully_shard``) on 2 CPU ranks.

    (Lightning's FSDP1 ``FSDPStrategy`` refuses a CPU accelerator, so it cannot run here; the
    callback forwards through its FSDP wrapper by the same rule.)
    """
    pytest.importorskip("lightning")
    import torch.multiprocessing as tmp

    import latentgeo

    store, weights = tmp_path / "run.zarr", tmp_path
    mp.get_context("forkserver").set_forkserver_preload(_PRELOAD)
    ctx = tmp.start_processes(
        _lightning_worker,
        args=(2, _free_port(), str(store), str(weights)),
        nprocs=2,
        join=False,
        start_method="forkserver",
    )
    deadline = time.monotonic() + 150
    try:
        while not ctx.join(timeout=1):
            if time.monotonic() > deadline:
                pytest.fail("the Lightning FSDP2 run hung")
    finally:
        for p in ctx.processes:
            if p.is_alive():
                p.kill()
    run = latentgeo.open_run(store)
    assert run.steps.tolist() == list(range(STEPS))  # step 0 at train start, then each step
    assert run.attrs["recorder"]["lockstep"] is True
    model = Net()
    model.load_state_dict(torch.load(weights / "last.pt", weights_only=True))
    with _recorder(model, tmp_path / "single.zarr") as rec:
        rec.record(STEPS - 1)
    single = latentgeo.open_run(tmp_path / "single.zarr")
    for layer in ("conv", "fc1", "fc2"):
        np.testing.assert_allclose(
            run.latents(f"net.{layer}").values[-1],
            single.latents(layer).values[0],
            rtol=1e-5,
            atol=1e-6,
        )
