"""HFRecorder inside real ``transformers.Trainer`` runs (CPU, tiny torch model, no downloads)."""

from __future__ import annotations

import copy
import warnings

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F

transformers = pytest.importorskip("transformers")
pytest.importorskip("accelerate")

import latentgeo  # noqa: E402
from latentgeo.actions import ImageRotations  # noqa: E402
from latentgeo.callbacks import HFRecorder  # noqa: E402
from latentgeo.groups import Cyclic  # noqa: E402
from latentgeo.schedules import EveryN, Explicit  # noqa: E402

N_TRAIN, BATCH, ACCUM = 16, 2, 2  # 4 optimizer steps an epoch
LAYERS = ["conv", "fc"]


class TinyModel(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 3, 3, padding=1)
        self.fc = nn.Linear(3 * 6 * 6, 3)

    def forward(self, pixel_values: torch.Tensor, labels: torch.Tensor | None = None):
        logits = self.fc(torch.relu(self.conv(pixel_values)).flatten(1))
        loss = None if labels is None else F.cross_entropy(logits, labels)
        return {"loss": loss, "logits": logits}


class ImageDataset(torch.utils.data.Dataset):
    def __init__(self) -> None:
        g = torch.Generator().manual_seed(0)
        self.x = torch.randn(N_TRAIN, 1, 6, 6, generator=g)
        self.y = torch.randint(0, 3, (N_TRAIN,), generator=g)

    def __len__(self) -> int:
        return N_TRAIN

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"pixel_values": self.x[i], "labels": self.y[i]}


class WeightSnapshots(transformers.TrainerCallback):
    """Copies of the weights after every optimizer step, keyed by ``state.global_step``."""

    def __init__(self) -> None:
        self.weights: dict[int, dict[str, torch.Tensor]] = {}

    def _snap(self, state, model) -> None:
        self.weights.setdefault(state.global_step, copy.deepcopy(model.state_dict()))

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        self._snap(state, model)

    def on_step_end(self, args, state, control, model=None, **kwargs):
        self._snap(state, model)


class StopAt(transformers.TrainerCallback):
    def __init__(self, step: int) -> None:
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step >= self.step:
            control.should_training_stop = True


@pytest.fixture(scope="module")
def probe():
    return torch.randn(5, 1, 6, 6, generator=torch.Generator().manual_seed(123))


@pytest.fixture(scope="module")
def action():
    return ImageRotations(Cyclic(4))


def _train(tmp_path, callbacks, resume=None, evaluate=False, **kwargs) -> transformers.Trainer:
    defaults = dict(
        output_dir=str(tmp_path / "out"),
        per_device_train_batch_size=BATCH,
        gradient_accumulation_steps=ACCUM,
        num_train_epochs=2,
        learning_rate=0.2,
        lr_scheduler_type="constant",
        optim="sgd",
        logging_steps=3,
        save_strategy="no",
        report_to=[],
        use_cpu=True,
        disable_tqdm=True,
        seed=0,
        data_seed=0,
        dataloader_num_workers=0,
    )
    defaults.update(kwargs)
    args = transformers.TrainingArguments(**defaults)
    torch.manual_seed(0)
    model = TinyModel()
    verbosity = transformers.logging.get_verbosity()
    transformers.logging.set_verbosity_error()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            trainer = transformers.Trainer(
                model=model,
                args=args,
                train_dataset=ImageDataset(),
                eval_dataset=ImageDataset() if evaluate else None,
                callbacks=callbacks,
            )
            trainer.train(resume_from_checkpoint=resume)
    finally:
        transformers.logging.set_verbosity(verbosity)
    return trainer


def _direct_latents(weights, layer: str, orbit: torch.Tensor) -> np.ndarray:
    model = TinyModel()
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
    return out["z"].reshape(orbit.shape[0], orbit.shape[1], -1).numpy()


def test_records_schedule_steps_with_their_own_logs(tmp_path, probe, action):
    schedule = Explicit([0, 1, 3, 6]) | EveryN(4)
    rec = HFRecorder(LAYERS, action, probe, tmp_path / "hf.zarr", schedule=schedule)
    snaps = WeightSnapshots()
    trainer = _train(tmp_path, [rec, snaps], evaluate=True, eval_strategy="steps", eval_steps=6)

    total = trainer.state.global_step
    assert total == 2 * (N_TRAIN // BATCH) // ACCUM
    expected = [s for s in range(total + 1) if schedule(s)]
    run = latentgeo.open_run(tmp_path / "hf.zarr")
    np.testing.assert_array_equal(run.steps, expected)
    assert rec.recorder is None  # closed in on_train_end

    orbit = action.orbit(probe)
    for layer in LAYERS:
        stored = run.latents(layer)
        for s in expected:
            direct = _direct_latents(snaps.weights[s], layer, orbit)
            got = stored.sel(step=s).values.reshape(direct.shape)
            np.testing.assert_allclose(got, direct, rtol=1e-5, atol=1e-6)

    # Steps 3 and 6 are logging steps (logging_steps=3) and 6 an evaluation step: their
    # stored metrics are those the Trainer logged at that very step, not earlier ones.
    history = trainer.state.log_history
    logged = {h["step"]: h["loss"] for h in history if "loss" in h}
    evaluated = {h["step"]: h["eval_loss"] for h in history if "eval_loss" in h}
    assert set(logged) >= {3, 6}
    assert 6 in evaluated and 3 not in evaluated
    metrics = run.metrics
    for name, values in (("loss", logged), ("eval_loss", evaluated)):
        stored = metrics[name]
        assert stored.dtype == np.float64
        for s in expected:
            if s in values:
                np.testing.assert_allclose(float(stored.sel(step=s)), values[s], rtol=1e-12)
            else:  # nothing logged at this step: no stale value from an earlier one
                assert np.isnan(float(stored.sel(step=s)))
    # The fractional epoch HF logs is stored as the index of the epoch the step is in.
    np.testing.assert_array_equal(
        np.asarray(metrics["epoch"].values, dtype=np.int64),
        [0 if s <= 4 else 1 for s in expected],
    )


def test_resume_from_checkpoint_continues_same_store(tmp_path, probe, action):
    schedule = EveryN(1)
    ref = HFRecorder(LAYERS, action, probe, tmp_path / "ref.zarr", schedule=schedule)
    _train(tmp_path / "a", [ref])

    store = tmp_path / "resumed.zarr"
    first = HFRecorder(LAYERS, action, probe, store, schedule=schedule)
    out = tmp_path / "b"
    _train(out, [first, StopAt(4)], save_strategy="steps", save_steps=4)
    assert first.last_step == 4
    second = HFRecorder(LAYERS, action, probe, store, schedule=schedule)
    _train(out, [second], resume=str(out / "out" / "checkpoint-4"))
    assert second.last_step == 8

    run = latentgeo.open_run(store)
    reference = latentgeo.open_run(tmp_path / "ref.zarr")
    np.testing.assert_array_equal(run.steps, np.arange(9))
    for layer in LAYERS:
        # Resumed weights, optimizer and data order equal the straight run's: bit-identical.
        np.testing.assert_array_equal(run.latents(layer).values, reference.latents(layer).values)


def test_only_world_process_zero_records(tmp_path, probe, action):
    rec = HFRecorder(LAYERS, action, probe, tmp_path / "rank1.zarr", schedule=EveryN(1))
    args = transformers.TrainingArguments(
        output_dir=str(tmp_path / "o"), report_to=[], use_cpu=True
    )
    state = transformers.TrainerState()
    state.is_world_process_zero = False
    control = transformers.TrainerControl()
    rec.on_train_begin(args, state, control, model=TinyModel())
    state.global_step = 1
    rec.on_step_end(args, state, control)
    rec.on_train_end(args, state, control)
    assert not (tmp_path / "rank1.zarr").exists()
    assert rec.last_step is None


def test_epoch_index_of_fractional_epoch():
    from latentgeo.callbacks._base import hf_epoch_index

    # state.epoch = epoch + (batch + 1) / batches: the last step of epoch 0 reads 1.0.
    assert [hf_epoch_index(e) for e in (0.0, 0.25, 1.0, 1.25, 2.0)] == [0, 0, 0, 1, 1]
    assert hf_epoch_index(None) is None


def test_bad_arguments(tmp_path, probe, action):
    with pytest.raises(TypeError, match="store"):
        HFRecorder(LAYERS, action, probe, None)
    with pytest.raises(TypeError, match="schedule"):
        HFRecorder(LAYERS, action, probe, tmp_path / "x.zarr", schedule="often")
