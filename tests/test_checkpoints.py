"""record_checkpoints: offline recording from saved weights equals live recording."""

from __future__ import annotations

import pathlib

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F

import latentgeo
from latentgeo.actions import ImageRotations
from latentgeo.checkpoints import parse_step
from latentgeo.groups import Cyclic

LAYERS = ["conv", "fc"]
STEPS = [0, 1, 3, 6]


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 3, 3, padding=1)
        self.fc = nn.Linear(3 * 6 * 6, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.relu(self.conv(x)).flatten(1))


@pytest.fixture(scope="module")
def action():
    return ImageRotations(Cyclic(4))


@pytest.fixture(scope="module")
def probe():
    return torch.randn(6, 1, 6, 6, generator=torch.Generator().manual_seed(123))


@pytest.fixture(scope="module")
def trained(tmp_path_factory, action, probe):
    """Train a tiny model, recording live and saving state dicts at the same steps."""
    root = tmp_path_factory.mktemp("trained")
    torch.manual_seed(0)
    model = Net()
    opt = torch.optim.SGD(model.parameters(), lr=0.2)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(8, 1, 6, 6, generator=g)
    y = torch.randint(0, 3, (8,), generator=g)
    plain, lightning = root / "plain", root / "lightning"
    plain.mkdir()
    lightning.mkdir()
    snapshots = {}
    live = latentgeo.LatentRecorder(model, LAYERS, action, probe, str(root / "live.zarr"))
    with live:
        for step in range(max(STEPS) + 1):
            if step in STEPS:
                live.record(step)
                state = {k: v.clone() for k, v in model.state_dict().items()}
                snapshots[step] = state
                suffix = ".pt" if step % 2 else ".pth"
                # Step 3 in torch's legacy (non-zip) format, which cannot be memory-mapped.
                torch.save(
                    state,
                    plain / f"ckpt_step_{step}{suffix}",
                    _use_new_zipfile_serialization=step != 3,
                )
                torch.save(
                    {
                        "epoch": step // 4,
                        "global_step": step,
                        "state_dict": {
                            **{f"model.{k}": v for k, v in state.items()},
                            "class_weights": torch.ones(3),
                        },
                        "loops": {"fit_loop": {"step": step}},
                    },
                    lightning / f"epoch={step // 4}-step={step}.ckpt",
                )
            opt.zero_grad()
            F.cross_entropy(model(x), y).backward()
            opt.step()
    (plain / "notes.txt").write_text("not a checkpoint")
    return {
        "root": root,
        "plain": plain,
        "lightning": lightning,
        "snapshots": snapshots,
        "live": latentgeo.open_run(str(root / "live.zarr")),
    }


def _assert_same_latents(run, live):
    np.testing.assert_array_equal(run.steps, live.steps)
    for layer in LAYERS:
        # Same weights, same recorder, same device: bit-for-bit in float32.
        np.testing.assert_array_equal(run.latents(layer).values, live.latents(layer).values)


def test_directory_of_state_dicts_equals_live(tmp_path, trained, action, probe):
    model = Net()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    run = latentgeo.record_checkpoints(
        model, trained["plain"], LAYERS, action, probe, tmp_path / "off.zarr"
    )
    np.testing.assert_array_equal(run.steps, STEPS)
    _assert_same_latents(run, trained["live"])
    # The caller's model gets its own weights back.
    for k, v in model.state_dict().items():
        torch.testing.assert_close(v, before[k], rtol=0, atol=0)


def test_lightning_checkpoints_strip_prefix_and_epochs(tmp_path, trained, action, probe):
    run = latentgeo.record_checkpoints(
        Net(), str(trained["lightning"]), LAYERS, action, probe, str(tmp_path / "pl.zarr")
    )
    _assert_same_latents(run, trained["live"])
    np.testing.assert_array_equal(
        np.asarray(run.metrics["epoch"].values, dtype=np.int64), [s // 4 for s in STEPS]
    )


def test_list_of_paths_in_any_order_and_explicit_steps(tmp_path, trained, action, probe):
    files = sorted(trained["plain"].glob("*.pt*"), key=lambda p: -parse_step(p))
    run = latentgeo.record_checkpoints(Net(), files, LAYERS, action, probe, tmp_path / "a.zarr")
    _assert_same_latents(run, trained["live"])

    # Unnamed files: steps= pairs with the list as given.
    renamed = []
    for i, step in enumerate(STEPS):
        target = tmp_path / f"weights-{'abcd'[i]}.pt"
        target.write_bytes(next(trained["plain"].glob(f"ckpt_step_{step}.*")).read_bytes())
        renamed.append(target)
    run = latentgeo.record_checkpoints(
        Net(), renamed[::-1], LAYERS, action, probe, tmp_path / "b.zarr", steps=STEPS[::-1]
    )
    _assert_same_latents(run, trained["live"])


def test_in_memory_state_dicts_and_mapping(tmp_path, trained, action, probe):
    snaps = trained["snapshots"]
    run = latentgeo.record_checkpoints(
        Net(), {s: snaps[s] for s in STEPS}, LAYERS, action, probe, tmp_path / "m.zarr"
    )
    _assert_same_latents(run, trained["live"])
    with pytest.raises(ValueError, match="steps="):
        latentgeo.record_checkpoints(
            Net(), [snaps[s] for s in STEPS], LAYERS, action, probe, tmp_path / "n.zarr"
        )


def test_resume_skips_committed_steps(tmp_path, trained, action, probe):
    files = sorted(trained["plain"].glob("*.pt*"), key=parse_step)
    store = tmp_path / "resume.zarr"
    latentgeo.record_checkpoints(Net(), files[:2], LAYERS, action, probe, store)
    run = latentgeo.record_checkpoints(Net(), files, LAYERS, action, probe, store, mode="a")
    _assert_same_latents(run, trained["live"])


@pytest.mark.parametrize(
    "wrap",
    [
        torch.nn.DataParallel,
        pytest.param(
            torch.compile,
            # emitted by torch itself when torch.compile first imports dynamo
            marks=pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated"),
        ),
    ],
)
def test_wrapped_model_loads_underlying_module(tmp_path, trained, action, probe, wrap):
    # DataParallel on CPU and an (uncalled) torch.compile'd module: their state-dict keys
    # carry "module." / "_orig_mod."; the weights go into the underlying network.
    run = latentgeo.record_checkpoints(
        wrap(Net()), trained["plain"], LAYERS, action, probe, tmp_path / "w.zarr"
    )
    _assert_same_latents(run, trained["live"])


@pytest.mark.parametrize(
    ("name", "step"),
    [
        ("epoch=3-step=450.ckpt", 450),
        ("step=123.ckpt", 123),
        ("step_123.pt", 123),
        ("model-step-77.pth", 77),
        ("global_step900.pt", 900),
        ("checkpoint_000120.pt", 120),
        ("step=5-v1.ckpt", 5),
        ("ckpt.12.pt", 12),
        ("last.ckpt", None),
        ("last-v1.ckpt", None),
        ("epoch=3.ckpt", None),
        ("best.pt", None),
        ("resnet18.pt", None),
        ("model_v2.pt", None),
    ],
)
def test_parse_step(name, step):
    assert parse_step(name) == step
    assert parse_step(pathlib.Path("/some/dir") / name) == step


def test_errors(tmp_path, trained, action, probe):
    snap = trained["snapshots"][0]
    d = tmp_path / "bad"
    d.mkdir()
    torch.save(snap, d / "step_1.pt")
    torch.save(snap, d / "last.pt")
    # Named explicitly, a file without a step is refused (in a directory it is skipped).
    with pytest.raises(ValueError, match=r"'last\.pt'.*steps="):
        latentgeo.record_checkpoints(
            Net(), [d / "step_1.pt", d / "last.pt"], LAYERS, action, probe, tmp_path / "e1.zarr"
        )
    assert not (tmp_path / "e1.zarr").exists()  # fails before a store is created

    dup = tmp_path / "dup"
    dup.mkdir()
    torch.save(snap, dup / "step=4.pt")
    torch.save(trained["snapshots"][1], dup / "epoch=0-step=4.ckpt")
    with pytest.raises(ValueError, match="step 4"):
        latentgeo.record_checkpoints(Net(), dup, LAYERS, action, probe, tmp_path / "e2.zarr")

    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="no checkpoints"):
        latentgeo.record_checkpoints(Net(), empty, LAYERS, action, probe, tmp_path / "e3.zarr")
    with pytest.raises(FileNotFoundError):
        latentgeo.record_checkpoints(
            Net(), tmp_path / "nowhere", LAYERS, action, probe, tmp_path / "e4.zarr"
        )
    with pytest.raises(ValueError, match="2 entries but there are 4"):
        latentgeo.record_checkpoints(
            Net(), trained["plain"], LAYERS, action, probe, tmp_path / "e5.zarr", steps=[1, 2]
        )
    with pytest.raises(TypeError, match="schedule"):
        latentgeo.record_checkpoints(
            Net(), trained["plain"], LAYERS, action, probe, tmp_path / "e6.zarr", schedule=None
        )

    other = tmp_path / "other"
    other.mkdir()
    torch.save(nn.Linear(2, 2).state_dict(), other / "step_1.pt")
    with pytest.raises(ValueError, match="does not match the model"):
        latentgeo.record_checkpoints(Net(), other, LAYERS, action, probe, tmp_path / "e7.zarr")

    two = tmp_path / "two"
    two.mkdir()
    torch.save(
        {
            **{f"teacher.{k}": v for k, v in snap.items()},
            **{f"student.{k}": v for k, v in snap.items()},
        },
        two / "step_1.pt",
    )
    with pytest.raises(ValueError, match=r"several prefixes \['student\.', 'teacher\.'\]"):
        latentgeo.record_checkpoints(Net(), two, LAYERS, action, probe, tmp_path / "e9.zarr")

    wrong_shape = dict(snap)
    wrong_shape["fc.bias"] = torch.zeros(4)
    shaped = tmp_path / "shaped"
    shaped.mkdir()
    torch.save(wrong_shape, shaped / "step_2.pt")
    with pytest.raises(ValueError, match=r"step_2\.pt.*does not fit the model"):
        latentgeo.record_checkpoints(Net(), shaped, LAYERS, action, probe, tmp_path / "e8.zarr")


class _Exploit:
    """A pickle that would run code when loaded without weights_only."""

    def __init__(self, marker: pathlib.Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.touch, (self.marker,))


def test_unsafe_pickle_is_refused(tmp_path, trained, action, probe):
    marker = tmp_path / "code-ran"
    d = tmp_path / "unsafe"
    d.mkdir()
    torch.save({"state_dict": trained["snapshots"][0], "x": _Exploit(marker)}, d / "step_0.pt")
    with pytest.raises(ValueError, match="weights_only=True"):
        latentgeo.record_checkpoints(Net(), d, LAYERS, action, probe, tmp_path / "u.zarr")
    assert not marker.exists()
