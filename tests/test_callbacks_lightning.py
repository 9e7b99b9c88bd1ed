"""LightningRecorder inside real ``lightning.pytorch.Trainer.fit`` runs (CPU, tiny model)."""

from __future__ import annotations

import copy
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset

pl = pytest.importorskip("lightning.pytorch")

import latentgeo  # noqa: E402
from latentgeo.actions import ImageRotations  # noqa: E402
from latentgeo.callbacks import LightningRecorder  # noqa: E402
from latentgeo.groups import Cyclic  # noqa: E402
from latentgeo.schedules import EveryN, Explicit  # noqa: E402

# Lightning's advice about this tiny setup, not about recording.
pytestmark = [
    pytest.mark.filterwarnings("ignore:.*LeafSpec"),
    pytest.mark.filterwarnings("ignore:You defined a `validation_step`"),
    pytest.mark.filterwarnings("ignore:Checkpoint directory .* exists and is not empty"),
    pytest.mark.filterwarnings("ignore:Be aware that when using `ckpt_path`"),
]

N_TRAIN, BATCH, ACCUM = 16, 2, 2  # 8 batches an epoch -> 4 optimizer steps an epoch
LAYERS = ["net.conv", "net.fc"]


class Net(nn.Module):
    def __init__(self, dropout: float = 0.25) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 3, 3, padding=1)
        self.drop = nn.Dropout(dropout)  # train mode and RNG matter: recording must not touch them
        self.fc = nn.Linear(3 * 6 * 6, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.drop(torch.relu(self.conv(x))).flatten(1))


class Module(pl.LightningModule):
    def __init__(self, fail_at_step: int | None = None, dropout: float = 0.25) -> None:
        super().__init__()
        self.net = Net(dropout)
        self.fail_at_step = fail_at_step

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def training_step(self, batch, batch_idx):
        if self.fail_at_step is not None and self.trainer.global_step >= self.fail_at_step:
            raise RuntimeError("planted failure")
        x, y = batch
        logits = self(x)
        loss = F.cross_entropy(logits, y)
        self.log("train_loss", loss)
        self.log("train/acc", (logits.argmax(1) == y).float().mean())
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_loss", F.cross_entropy(self(x), y))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.2)


def _data(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(N_TRAIN, 1, 6, 6, generator=g)
    y = torch.randint(0, 3, (N_TRAIN,), generator=g)
    return TensorDataset(x, y)


def _loader(seed: int = 0) -> DataLoader:
    return DataLoader(_data(seed), batch_size=BATCH, shuffle=False)


@pytest.fixture(scope="module")
def probe():
    g = torch.Generator().manual_seed(123)
    return torch.randn(5, 1, 6, 6, generator=g)


@pytest.fixture(scope="module")
def action():
    return ImageRotations(Cyclic(4))


def _trainer(**kwargs) -> pl.Trainer:
    defaults = dict(
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        accumulate_grad_batches=ACCUM,
        num_sanity_val_steps=0,
    )
    defaults.update(kwargs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "few workers", "no logger" advice from Lightning
        return pl.Trainer(**defaults)


def _fit(trainer: pl.Trainer, module, **kwargs) -> None:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*num_workers.*")
        warnings.filterwarnings("ignore", message=".*log_every_n_steps.*")
        trainer.fit(module, **kwargs)


class WeightSnapshots(pl.Callback):
    """Copies of the weights after every optimizer step, keyed by ``trainer.global_step``."""

    def __init__(self) -> None:
        self.weights: dict[int, dict[str, torch.Tensor]] = {}

    def _snap(self, trainer, pl_module) -> None:
        self.weights.setdefault(trainer.global_step, copy.deepcopy(pl_module.state_dict()))

    def on_train_start(self, trainer, pl_module):
        self._snap(trainer, pl_module)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self._snap(trainer, pl_module)


class SanityProbe(pl.Callback):
    """Remembers what the recorder had done when the sanity check ended."""

    def __init__(self, recorder: LightningRecorder) -> None:
        self.recorder = recorder
        self.seen: list = []

    def on_sanity_check_end(self, trainer, pl_module):
        self.seen.append(self.recorder.last_step)


def _layer_latents(module: Module, weights, layer: str, orbit: torch.Tensor) -> np.ndarray:
    """Latents of ``layer`` computed directly: a forward hook on a copy of the module."""
    model = copy.deepcopy(module)
    model.load_state_dict(weights)
    model.eval()
    out = {}
    handle = model.get_submodule(layer).register_forward_hook(
        lambda m, i, o: out.__setitem__("z", o)
    )
    try:
        with torch.no_grad():
            model(orbit.flatten(0, 1))
    finally:
        handle.remove()
    z = out["z"]
    return z.reshape(orbit.shape[0], orbit.shape[1], -1).numpy()


def test_records_global_steps_once_under_accumulation(tmp_path, probe, action):
    schedule = Explicit([0, 1, 2, 3, 5]) | EveryN(4)
    rec = LightningRecorder(LAYERS, action, probe, tmp_path / "run.zarr", schedule=schedule)
    snaps = WeightSnapshots()
    sanity = SanityProbe(rec)
    torch.manual_seed(0)
    module = Module()
    trainer = _trainer(
        max_epochs=2,
        callbacks=[rec, snaps, sanity],
        num_sanity_val_steps=2,
        limit_val_batches=2,
    )
    _fit(trainer, module, train_dataloaders=_loader(), val_dataloaders=_loader(1))

    total = trainer.global_step
    assert total == 2 * (N_TRAIN // BATCH) // ACCUM
    expected = [s for s in range(total + 1) if schedule(s)]
    run = latentgeo.open_run(tmp_path / "run.zarr")
    steps = np.asarray(run.steps)
    np.testing.assert_array_equal(steps, expected)
    assert len(set(steps.tolist())) == len(steps)
    assert sanity.seen == [None]  # nothing recorded while the sanity check ran
    assert rec.recorder is None  # closed at the end of fit

    # The latents stored at step s are those of the weights after s optimizer steps.
    orbit = action.orbit(probe)
    for layer in LAYERS:
        stored = run.latents(layer)
        for s in expected:
            direct = _layer_latents(module, snaps.weights[s], layer, orbit)
            got = stored.sel(step=s).values.reshape(direct.shape)
            np.testing.assert_allclose(got, direct, rtol=1e-5, atol=1e-6)

    # Recording changed nothing about training: the same fit without the callback ends with
    # bit-identical weights (dropout draws from the RNG; recording runs in eval mode).
    torch.manual_seed(0)
    bare = Module()
    _fit(
        _trainer(max_epochs=2, num_sanity_val_steps=2, limit_val_batches=2),
        bare,
        train_dataloaders=_loader(),
        val_dataloaders=_loader(1),
    )
    for name, value in bare.state_dict().items():
        torch.testing.assert_close(module.state_dict()[name], value, rtol=0, atol=0)
    assert module.training == bare.training

    # Metrics: the training loss logged at each recorded step after the first.
    metrics = run.metrics
    assert "train_loss" in metrics
    loss = np.asarray(metrics["train_loss"].values, dtype=np.float64)
    assert np.isnan(loss[0])  # nothing logged before the first step
    assert np.isfinite(loss[1:]).all()
    acc = np.asarray(metrics["train_acc"].values[1:])  # "train/acc" cannot name a zarr array
    assert ((acc >= 0) & (acc <= 1)).all()
    np.testing.assert_array_equal(metrics["epoch"].values, [0 if s <= 4 else 1 for s in expected])


def test_storable_metrics():
    from latentgeo.callbacks._base import storable_metrics

    got = storable_metrics(
        {
            "loss": torch.tensor(0.5),
            "acc": np.float32(0.25),
            "n": 3,
            "train/loss": torch.tensor([1.5]),
            "vector": torch.ones(3),
            "note": "text",
            "epoch": 1.5,  # reserved by the store (HF logs a fractional epoch)
            "fc": 1.0,  # collides with a recorded layer
        },
        layers=["fc"],
    )
    assert got == {"loss": 0.5, "acc": 0.25, "n": 3.0, "train_loss": 1.5}
    assert all(type(v) is float for v in got.values())


def test_fast_dev_run_records_nothing(tmp_path, probe, action):
    store = tmp_path / "dev.zarr"
    rec = LightningRecorder(LAYERS, action, probe, store, schedule=EveryN(1))
    torch.manual_seed(0)
    trainer = _trainer(fast_dev_run=2, callbacks=[rec])
    _fit(trainer, Module(), train_dataloaders=_loader())
    assert not store.exists()
    assert rec.last_step is None


def test_exception_closes_store_and_keeps_committed_steps(tmp_path, probe, action):
    store = tmp_path / "crash.zarr"
    rec = LightningRecorder(LAYERS, action, probe, store, schedule=EveryN(1))
    torch.manual_seed(0)
    trainer = _trainer(max_epochs=1, callbacks=[rec])
    with pytest.raises(RuntimeError, match="planted failure"):
        _fit(trainer, Module(fail_at_step=3), train_dataloaders=_loader())
    assert rec.recorder is None
    run = latentgeo.open_run(store)
    np.testing.assert_array_equal(run.steps, [0, 1, 2, 3])


def test_resume_from_checkpoint_continues_same_store(tmp_path, probe, action):
    schedule = EveryN(1)
    # Lightning checkpoints do not hold the global RNG: without dropout, a resumed run
    # retraces the straight one exactly.
    epochs_half = 2  # 4 optimizer steps an epoch: N = 8, 2N = 16

    # A straight run to 2N, for reference.
    torch.manual_seed(0)
    straight = Module(dropout=0.0)
    rec_ref = LightningRecorder(LAYERS, action, probe, tmp_path / "ref.zarr", schedule=schedule)
    _fit(
        _trainer(max_epochs=2 * epochs_half, callbacks=[rec_ref]),
        straight,
        train_dataloaders=_loader(),
    )

    # The same run to N with a checkpoint, then resumed from it to 2N by a fresh process-like
    # setup: new module (other weights), new callback on the same store, new Trainer.
    store = tmp_path / "resumed.zarr"
    ckpt_dir = tmp_path / "ckpt"
    torch.manual_seed(0)
    first = LightningRecorder(LAYERS, action, probe, store, schedule=schedule)
    checkpoint = pl.callbacks.ModelCheckpoint(dirpath=ckpt_dir, save_last=True, save_top_k=0)
    _fit(
        _trainer(max_epochs=epochs_half, callbacks=[first, checkpoint], enable_checkpointing=True),
        Module(dropout=0.0),
        train_dataloaders=_loader(),
    )
    n = epochs_half * (N_TRAIN // BATCH) // ACCUM
    assert first.last_step == n
    saved = torch.load(ckpt_dir / "last.ckpt", weights_only=True)
    state = saved["callbacks"][first.state_key]
    assert state["last_step"] == n
    assert state["store"] == os.path.abspath(store)

    torch.manual_seed(1)
    second = LightningRecorder(LAYERS, action, probe, store, schedule=schedule)
    _fit(
        _trainer(
            max_epochs=2 * epochs_half,
            callbacks=[second, pl.callbacks.ModelCheckpoint(dirpath=ckpt_dir, save_last=True)],
            enable_checkpointing=True,
        ),
        Module(dropout=0.0),
        train_dataloaders=_loader(),
        ckpt_path=ckpt_dir / "last.ckpt",
    )
    assert second.last_step == 2 * n

    ref = latentgeo.open_run(tmp_path / "ref.zarr")
    run = latentgeo.open_run(store)
    np.testing.assert_array_equal(run.steps, np.arange(2 * n + 1))
    np.testing.assert_array_equal(run.steps, ref.steps)
    for layer in LAYERS:
        # Same weights at every step, same recorder code: bit-identical latents.
        np.testing.assert_array_equal(run.latents(layer).values, ref.latents(layer).values)


def test_resume_trusts_the_store_over_the_checkpoint(tmp_path, probe, action):
    """A checkpoint claiming steps the store never committed must not leave holes."""
    store, ckpt_dir = tmp_path / "run.zarr", tmp_path / "ckpt"
    torch.manual_seed(0)
    first = LightningRecorder(LAYERS, action, probe, store, schedule=EveryN(1))
    saver = pl.callbacks.ModelCheckpoint(dirpath=ckpt_dir, save_last=True, save_top_k=0)
    _fit(
        _trainer(max_epochs=1, callbacks=[first, saver], enable_checkpointing=True),
        Module(dropout=0.0),
        train_dataloaders=_loader(),
    )
    # As if the process died after saving the checkpoint at step 4 but with a checkpoint
    # state two steps ahead of what the writer committed.
    path = ckpt_dir / "last.ckpt"
    saved = torch.load(path, weights_only=True)
    assert saved["global_step"] == 4
    saved["callbacks"][first.state_key]["last_step"] = 6
    torch.save(saved, path)

    second = LightningRecorder(LAYERS, action, probe, store, schedule=EveryN(1))
    with pytest.warns(UserWarning, match="holds steps only up to 4"):
        _fit(
            _trainer(max_epochs=2, callbacks=[second]),
            Module(dropout=0.0),
            train_dataloaders=_loader(),
            ckpt_path=path,
        )
    np.testing.assert_array_equal(latentgeo.open_run(store).steps, np.arange(9))


def test_offline_from_lightning_checkpoints_equals_live(tmp_path, probe, action):
    """ModelCheckpoint files of a real fit, recorded offline, equal the live recording."""
    live = LightningRecorder(LAYERS, action, probe, tmp_path / "live.zarr", schedule=EveryN(1))
    saver = pl.callbacks.ModelCheckpoint(
        dirpath=tmp_path / "ckpt", every_n_train_steps=1, save_top_k=-1, save_last=False
    )
    torch.manual_seed(0)
    _fit(
        _trainer(max_epochs=1, callbacks=[live, saver], enable_checkpointing=True),
        Module(),
        train_dataloaders=_loader(),
    )
    files = sorted(p.name for p in (tmp_path / "ckpt").glob("*.ckpt"))
    assert "epoch=0-step=4.ckpt" in files
    # The network alone: the checkpoints' "net." prefix is stripped.
    offline = latentgeo.record_checkpoints(
        Net(), tmp_path / "ckpt", ["conv", "fc"], action, probe, tmp_path / "offline.zarr"
    )
    run = latentgeo.open_run(tmp_path / "live.zarr")
    np.testing.assert_array_equal(offline.steps, [1, 2, 3, 4])
    np.testing.assert_array_equal(offline.metrics["epoch"].values, [0, 0, 0, 0])
    for live_name, offline_name in zip(LAYERS, ["conv", "fc"]):
        np.testing.assert_array_equal(
            offline.latents(offline_name).values,
            run.latents(live_name).sel(step=offline.steps).values,
        )


def test_second_fit_with_same_callback_appends(tmp_path, probe, action):
    store = tmp_path / "twice.zarr"
    rec = LightningRecorder(LAYERS, action, probe, store, schedule=EveryN(2))
    torch.manual_seed(0)
    module = Module()
    _fit(_trainer(max_epochs=1, callbacks=[rec]), module, train_dataloaders=_loader())
    # A second fit continues the optimizer-step count from 0 for a fresh Trainer; steps the
    # store already holds are not written again.
    _fit(_trainer(max_epochs=1, callbacks=[rec]), module, train_dataloaders=_loader())
    run = latentgeo.open_run(store)
    np.testing.assert_array_equal(run.steps, [0, 2, 4])


def test_bad_arguments(tmp_path, probe, action):
    with pytest.raises(TypeError, match="store"):
        LightningRecorder(LAYERS, action, probe, 123)
    with pytest.raises(TypeError, match="model"):
        LightningRecorder(LAYERS, action, probe, tmp_path / "x.zarr", model=Module())
    with pytest.raises(TypeError, match="probe_inputs"):
        LightningRecorder(LAYERS, action, probe.tolist(), tmp_path / "x.zarr")
    with pytest.raises(ValueError, match="'r'"):
        LightningRecorder(LAYERS, action, probe, tmp_path / "x.zarr", mode="r")


def test_unknown_layer_fails_before_training(tmp_path, probe, action):
    rec = LightningRecorder(["net.conv", "net.fcc"], action, probe, tmp_path / "bad.zarr")
    snaps = WeightSnapshots()
    torch.manual_seed(0)
    with pytest.raises(ValueError, match=r"net\.fcc"):
        _fit(
            _trainer(max_epochs=1, callbacks=[rec, snaps]),
            Module(),
            train_dataloaders=_loader(),
        )
    assert snaps.weights == {}  # failed in on_fit_start, before any batch


def test_missing_extra_message(monkeypatch):
    import latentgeo.callbacks as callbacks

    monkeypatch.setitem(sys.modules, "lightning.pytorch", None)
    with pytest.raises(ImportError, match=r"pip install 'latentgeo\[lightning\]'"):
        callbacks.LightningRecorder  # noqa: B018
    monkeypatch.setitem(sys.modules, "transformers", None)
    with pytest.raises(ImportError, match=r"pip install 'latentgeo\[hf\]'"):
        callbacks.HFRecorder  # noqa: B018
    with pytest.raises(AttributeError, match="NoSuchRecorder"):
        callbacks.NoSuchRecorder  # noqa: B018


def test_import_does_not_load_frameworks():
    code = (
        "import sys\n"
        "sys.modules['lightning'] = None\n"
        "sys.modules['transformers'] = None\n"
        "import latentgeo.callbacks as c\n"
        "assert sorted(c.__all__) == ['HFRecorder', 'LightningRecorder'], c.__all__\n"
        "try:\n"
        "    c.LightningRecorder\n"
        "except ImportError as e:\n"
        "    print(e)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
    )
    assert "pip install 'latentgeo[lightning]'" in out.stdout
