"""Steps of saved checkpoints: content before names, names only by documented patterns.

Real checkpoint files: a real ``lightning.pytorch.Trainer`` with ``ModelCheckpoint`` (two runs
into one folder, the versioned ``-v1`` names Lightning writes then) and a real
``transformers.Trainer`` saving ``checkpoint-N/`` folders with ``trainer_state.json``.
"""

from __future__ import annotations

import copy
import logging
import shutil
import warnings

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F

import latentgeo
from latentgeo.actions import ImageRotations
from latentgeo.checkpoints._steps import collect_checkpoints, content_step, parse_step
from latentgeo.groups import Cyclic

LAYERS = ["conv", "fc"]


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 3, 3, padding=1)
        self.fc = nn.Linear(3 * 6 * 6, 3)

    def forward(self, pixel_values: torch.Tensor, labels: torch.Tensor | None = None):
        logits = self.fc(torch.relu(self.conv(pixel_values)).flatten(1))
        if labels is None:
            return logits
        return {"loss": F.cross_entropy(logits, labels), "logits": logits}


@pytest.fixture(scope="module")
def action():
    return ImageRotations(Cyclic(4))


@pytest.fixture(scope="module")
def probe():
    return torch.randn(5, 1, 6, 6, generator=torch.Generator().manual_seed(7))


def _weights(seed: int) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    return Net().state_dict()


def _latents(run, layer="fc"):
    return run.latents(layer).values


# --- names -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "step"),
    [
        ("epoch=3-step=450.ckpt", 450),
        ("epoch=0-step=4-v1.ckpt", 4),  # Lightning's version suffix is not the step
        ("step=123.ckpt", 123),
        ("step_123.pt", 123),
        ("step-77.pth", 77),
        ("model-step-77.pth", 77),
        ("global_step900.pt", 900),
        ("global_step=12.ckpt", 12),
        ("checkpoint-500", 500),  # a Hugging Face Trainer folder
        ("checkpoint_000120.pt", 120),
        ("ckpt.12.pt", 12),
        ("iter_1000.pth", 1000),
        ("iteration-30.pt", 30),
        ("epoch=2-iter_5-checkpoint-9.pt", 5),  # step > iter > checkpoint
        ("resnet18-step=40.pt", 40),
        ("STEP=8.CKPT", 8),
    ],
)
def test_parse_step_documented_patterns(name, step):
    assert parse_step(name) == step
    assert parse_step(f"/runs/a1/{name}") == step


@pytest.mark.parametrize(
    "name",
    [
        "last.ckpt",
        "last-v1.ckpt",
        "last-v12.ckpt",
        "resnet18.pt",
        "model_v2.pt",
        "vgg16_bn.pth",
        "epoch=3.ckpt",
        "epoch_7.pt",
        "best.pt",
        "ckpt_epoch_3.pt",
        "weights-2024-05-01.pt",
        "b3.safetensors",
        "steps.pt",
        "checkpoint.pt",
    ],
)
def test_names_without_a_step_are_none(name):
    assert parse_step(name) is None


def test_content_step_reads_lightning_and_loop_keys():
    assert content_step({"global_step": 40, "epoch": 1, "state_dict": {}}) == 40
    assert content_step({"step": 7, "model": {}}) == 7
    assert content_step({"global_step": torch.tensor(9), "step": 3}) == 9
    assert content_step({"global_step": True}) is None  # a flag, not a count
    assert content_step({"global_step": -1}) is None
    assert content_step({"weight": torch.ones(2)}) is None
    assert content_step([1, 2]) is None


# --- plain files ---------------------------------------------------------------------------


def test_content_step_wins_over_name(tmp_path, caplog, action, probe):
    w = {s: _weights(s) for s in (3, 5)}
    # A checkpoint dict named for step 5 that records global step 3, and one without a step
    # in its name at all: both are read from their content.
    torch.save({"global_step": 3, "state_dict": w[3]}, tmp_path / "step_5.pt")
    torch.save({"global_step": 5, "epoch": 2, "state_dict": w[5]}, tmp_path / "final.ckpt")
    with caplog.at_level(logging.WARNING, logger="latentgeo.record"):
        entries = collect_checkpoints(tmp_path)
    assert [(e.step, e.source.name, e.epoch, e.origin) for e in entries] == [
        (3, "step_5.pt", None, "content"),
        (5, "final.ckpt", 2, "content"),
    ]
    assert "named for step 5 but records global step 3" in caplog.text
    run = latentgeo.record_checkpoints(Net(), tmp_path, LAYERS, action, probe, tmp_path / "r.zarr")
    ref = latentgeo.record_checkpoints(Net(), w, LAYERS, action, probe, tmp_path / "ref.zarr")
    np.testing.assert_array_equal(run.steps, [3, 5])
    np.testing.assert_array_equal(_latents(run), _latents(ref))


def test_non_step_names_skipped_in_directory_refused_when_named(tmp_path, caplog):
    d = tmp_path / "d"
    d.mkdir()
    for i, name in enumerate(["step_2.pt", "step_10.pt", "resnet18.pt", "model_v2.pt", "last.pt"]):
        torch.save(_weights(i), d / name)
    with caplog.at_level(logging.WARNING, logger="latentgeo.record"):
        entries = collect_checkpoints(d)
    assert [(e.step, e.source.name, e.origin) for e in entries] == [
        (2, "step_2.pt", "name"),
        (10, "step_10.pt", "name"),
    ]
    for skipped in ("resnet18.pt", "model_v2.pt", "last.pt"):
        assert f"skipped '{d / skipped}'" in caplog.text
    for named in ("resnet18.pt", "model_v2.pt"):
        with pytest.raises(ValueError, match=rf"'{named}'.*steps="):
            collect_checkpoints([d / "step_2.pt", d / named])
    only = tmp_path / "only"
    only.mkdir()
    torch.save(_weights(0), only / "resnet18.pt")
    with pytest.raises(ValueError, match=r"no checkpoint .* \['resnet18\.pt'\]"):
        collect_checkpoints(only)
    # steps= names the steps of files whose names hold none.
    entries = collect_checkpoints([d / "resnet18.pt", d / "model_v2.pt"], steps=[20, 7])
    assert [(e.step, e.source.name, e.origin) for e in entries] == [
        (7, "model_v2.pt", "steps="),
        (20, "resnet18.pt", "steps="),
    ]


def test_duplicate_steps(tmp_path, caplog):
    same = tmp_path / "same"
    same.mkdir()
    w = _weights(0)
    torch.save({"global_step": 4, "state_dict": w}, same / "epoch=0-step=4.ckpt")
    torch.save({"global_step": 4, "state_dict": w, "extra": 1}, same / "last.ckpt")
    with caplog.at_level(logging.INFO, logger="latentgeo.record"):
        entries = collect_checkpoints(same)
    assert [e.source.name for e in entries] == ["epoch=0-step=4.ckpt"]
    assert "'last.ckpt'" in caplog.text.replace(str(same) + "/", "")

    differ = tmp_path / "differ"
    differ.mkdir()
    torch.save({"global_step": 4, "state_dict": w}, differ / "epoch=0-step=4.ckpt")
    torch.save({"global_step": 4, "state_dict": _weights(1)}, differ / "last-v1.ckpt")
    with pytest.raises(ValueError, match=r"step 4 .*epoch=0-step=4\.ckpt.*last-v1\.ckpt"):
        collect_checkpoints(differ)
    # Two names for one step, no content: different weights are refused.
    names = tmp_path / "names"
    names.mkdir()
    torch.save(_weights(0), names / "step=4.pt")
    torch.save(_weights(1), names / "iter_4.pt")
    with pytest.raises(ValueError, match=r"step 4 .*iter_4\.pt.*step=4\.pt|step=4\.pt.*iter_4"):
        collect_checkpoints(names)


@pytest.mark.parametrize(
    ("steps", "error", "match"),
    [
        ([1, 2], ValueError, "2 entries but there are 3"),
        ([1, 2, 1], ValueError, "distinct: step 1 is given at positions 0 and 2"),
        ([1, 2.5, 3], TypeError, "integers, got 2.5"),
        ([1, True, 3], TypeError, "integers, got True"),
        ([1, -2, 3], ValueError, ">= 0, got -2"),
        ("123", TypeError, "sequence of integers"),
    ],
)
def test_explicit_steps_are_validated(tmp_path, steps, error, match):
    files = []
    for i in range(3):
        files.append(tmp_path / f"w{i}.pt")
        torch.save(_weights(i), files[-1])
    with pytest.raises(error, match=match):
        collect_checkpoints(files, steps=steps)
    entries = collect_checkpoints(files, steps=np.array([30, 10, 20]))
    assert [(e.step, e.source.name) for e in entries] == [
        (10, "w1.pt"),
        (20, "w2.pt"),
        (30, "w0.pt"),
    ]


# --- real Lightning Trainer ----------------------------------------------------------------

pl = pytest.importorskip("lightning.pytorch")


class LitNet(pl.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.net = Net()

    def training_step(self, batch, batch_idx):
        x, y = batch
        return F.cross_entropy(self.net(x), y)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.3)


def _fit_lightning(ckpt_dir, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    data = torch.utils.data.TensorDataset(
        torch.randn(8, 1, 6, 6, generator=g), torch.randint(0, 3, (8,), generator=g)
    )
    torch.manual_seed(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer = pl.Trainer(
            accelerator="cpu",
            devices=1,
            max_epochs=1,
            logger=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            callbacks=[
                pl.callbacks.ModelCheckpoint(
                    dirpath=ckpt_dir, every_n_train_steps=1, save_top_k=-1, save_last=True
                )
            ],
        )
        trainer.fit(LitNet(), torch.utils.data.DataLoader(data, batch_size=2))


def test_real_lightning_checkpoints_two_runs_in_one_folder(tmp_path, action, probe):
    ckpt = tmp_path / "ckpt"
    _fit_lightning(ckpt, seed=0)
    names = sorted(p.name for p in ckpt.iterdir())
    assert "last.ckpt" in names and "epoch=0-step=4.ckpt" in names
    entries = collect_checkpoints(ckpt)
    # last.ckpt holds the weights of step 4: kept once, under its step name.
    assert [(e.step, e.source.name, e.epoch, e.origin) for e in entries] == [
        (s, f"epoch=0-step={s}.ckpt", 0, "content") for s in (1, 2, 3, 4)
    ]
    run = latentgeo.record_checkpoints(Net(), ckpt, LAYERS, action, probe, tmp_path / "a.zarr")
    np.testing.assert_array_equal(run.steps, [1, 2, 3, 4])
    final = torch.load(ckpt / "last.ckpt", weights_only=True)["state_dict"]
    ref = latentgeo.record_checkpoints(
        Net(),
        {4: {k[len("net.") :]: v for k, v in final.items()}},
        LAYERS,
        action,
        probe,
        tmp_path / "ref.zarr",
    )
    np.testing.assert_array_equal(_latents(run)[-1], _latents(ref)[0])

    # A second run into the same folder: Lightning writes "epoch=0-step=N-v1.ckpt" and
    # "last-v1.ckpt". Same steps, other weights: refused, naming both files.
    _fit_lightning(ckpt, seed=1)
    assert "last-v1.ckpt" in {p.name for p in ckpt.iterdir()}
    with pytest.raises(ValueError, match=r"step 1 .*'[^']*epoch=0-step=1\.ckpt'.*-v1\.ckpt'"):
        latentgeo.record_checkpoints(Net(), ckpt, LAYERS, action, probe, tmp_path / "b.zarr")
    assert not (tmp_path / "b.zarr").exists()
    # The second run's files alone, listed explicitly, are read from their content.
    second = sorted(p for p in ckpt.iterdir() if "-v1" in p.name)
    entries = collect_checkpoints(second)
    assert [e.step for e in entries] == [1, 2, 3, 4]
    assert [e.source.name for e in entries] == [f"epoch=0-step={s}-v1.ckpt" for s in (1, 2, 3, 4)]


# --- real Hugging Face Trainer ---------------------------------------------------------------


def test_real_hf_trainer_checkpoint_folders(tmp_path, caplog, action, probe):
    transformers = pytest.importorskip("transformers")
    pytest.importorskip("accelerate")

    class Snapshots(transformers.TrainerCallback):
        def __init__(self) -> None:
            self.weights: dict[int, dict[str, torch.Tensor]] = {}

        def on_step_end(self, args, state, control, model=None, **kwargs):
            self.weights[state.global_step] = copy.deepcopy(model.state_dict())

    class Data(torch.utils.data.Dataset):
        def __init__(self) -> None:
            g = torch.Generator().manual_seed(0)
            self.x = torch.randn(8, 1, 6, 6, generator=g)
            self.y = torch.randint(0, 3, (8,), generator=g)

        def __len__(self) -> int:
            return 8

        def __getitem__(self, i):
            return {"pixel_values": self.x[i], "labels": self.y[i]}

    out = tmp_path / "out"
    args = transformers.TrainingArguments(
        output_dir=str(out),
        per_device_train_batch_size=2,
        max_steps=4,
        save_strategy="steps",
        save_steps=2,
        learning_rate=0.2,
        optim="sgd",
        report_to=[],
        use_cpu=True,
        disable_tqdm=True,
        seed=0,
        dataloader_num_workers=0,
        logging_strategy="no",
    )
    snaps = Snapshots()
    torch.manual_seed(0)
    verbosity = transformers.logging.get_verbosity()
    transformers.logging.set_verbosity_error()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            transformers.Trainer(
                model=Net(), args=args, train_dataset=Data(), callbacks=[snaps]
            ).train()
    finally:
        transformers.logging.set_verbosity(verbosity)
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == ["checkpoint-2", "checkpoint-4"]
    assert (out / "checkpoint-4" / "trainer_state.json").is_file()

    run = latentgeo.record_checkpoints(Net(), out, LAYERS, action, probe, tmp_path / "hf.zarr")
    np.testing.assert_array_equal(run.steps, [2, 4])
    ref = latentgeo.record_checkpoints(
        Net(), {s: snaps.weights[s] for s in (2, 4)}, LAYERS, action, probe, tmp_path / "r.zarr"
    )
    for layer in LAYERS:
        np.testing.assert_array_equal(_latents(run, layer), _latents(ref, layer))

    # The step comes from trainer_state.json, not the folder's name: a renamed folder keeps it.
    shutil.move(out / "checkpoint-4", out / "final")
    shutil.move(out / "checkpoint-2", out / "checkpoint-9")
    with caplog.at_level(logging.WARNING, logger="latentgeo.record"):
        entries = collect_checkpoints(out)
    assert [(e.step, e.source.name, e.origin) for e in entries] == [
        (2, "checkpoint-9", "content"),
        (4, "final", "content"),
    ]
    assert "named for step 9 but records global step 2" in caplog.text
    # One checkpoint folder on its own.
    assert [e.step for e in collect_checkpoints(out / "final")] == [4]


def test_symlinked_last_and_safetensors(tmp_path):
    safetensors = pytest.importorskip("safetensors.torch")
    d = tmp_path / "d"
    d.mkdir()
    torch.save({"global_step": 6, "state_dict": _weights(0)}, d / "epoch=1-step=6.ckpt")
    (d / "last.ckpt").symlink_to(d / "epoch=1-step=6.ckpt")  # Lightning's save_last="link"
    safetensors.save_file(_weights(1), str(d / "step_9.safetensors"))
    entries = collect_checkpoints(d)
    assert [(e.step, e.source.name, e.epoch) for e in entries] == [
        (6, "epoch=1-step=6.ckpt", 1),
        (9, "step_9.safetensors", None),
    ]
