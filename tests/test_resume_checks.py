"""Resuming (mode="a") a store recorded otherwise fails when the recorder is built, not hours
later at the first record(), and says what differs; the store is left as it was."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import latentgeo
from latentgeo.actions import ImageRotations
from latentgeo.groups import Cyclic, Dihedral
from latentgeo.record import RandomProjection, SpatialMeanPool
from latentgeo.store._writer import ResumeMismatchError


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 3, 3, padding=1)
        self.fc = nn.Linear(3 * 64, 4)

    def forward(self, x: torch.Tensor):
        h = self.conv(x)
        return self.fc(h.flatten(1)), h


def _probe(seed: int = 0) -> torch.Tensor:
    return torch.randn(5, 1, 8, 8, generator=torch.Generator().manual_seed(seed))


BASE = {
    "layers": ["conv", "fc"],
    "action": ImageRotations(Cyclic(4)),
    "probe_inputs": _probe(),
    "dtype": "float32",
    "reduce": "flatten",
    "select": None,
}


def _make(path, mode="a", **changes):
    kwargs = {**BASE, **changes}
    return latentgeo.LatentRecorder(
        Net(),
        kwargs["layers"],
        kwargs["action"],
        kwargs["probe_inputs"],
        path,
        mode=mode,
        dtype=kwargs["dtype"],
        reduce=kwargs["reduce"],
        select=kwargs["select"],
    )


def _snapshot(path):
    return {
        str(p.relative_to(path)): p.read_bytes()
        for p in sorted(path.rglob("*"))
        if p.is_file() and not p.name.startswith(".")
    }


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    path = tmp_path_factory.mktemp("resume") / "run.zarr"
    with _make(path, mode="w-") as rec:
        rec.record(0)
        rec.record(5)
    return path


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"layers": ["conv"]},
            r"holds the layers \['conv', 'fc'\], the recorder records \['conv'\]",
        ),
        ({"layers": ["fc", "conv"]}, "holds the layers"),
        ({"action": ImageRotations(Dihedral(4))}, "another group: stored 'C4', given 'D4'"),
        ({"probe_inputs": _probe(1)}, "another probe set: sha256"),
        ({"probe_inputs": _probe()[:4]}, "another probe set: n_samples: stored 5, given 4"),
        ({"probe_inputs": _probe().double()}, "input_dtype: stored 'float32', given 'float64'"),
        ({"dtype": "float16"}, "layer 'conv' dtype: stored 'float32', given 'float16'"),
        ({"reduce": {"conv": SpatialMeanPool()}}, "layer 'conv' reducer: stored"),
        ({"reduce": RandomProjection(4, seed=0)}, "layer 'fc' reducer"),
        ({"select": {"fc": "0"}}, "layer 'fc' select: stored 'auto', given '0'"),
    ],
)
def test_resume_with_other_settings_fails_at_construction(recorded, changes, message):
    before = _snapshot(recorded)
    with pytest.raises(ResumeMismatchError, match=message):
        _make(recorded, **changes)
    run = latentgeo.open_run(recorded)
    assert run.steps.tolist() == [0, 5]  # untouched
    assert _snapshot(recorded) == before  # not one byte changed
    # The lock was released: the right settings resume at once.
    with _make(recorded) as rec:
        assert rec.last_step == 5
        assert not rec.record(5)


def test_resume_mismatch_is_a_value_error_and_names_the_store(recorded):
    with pytest.raises(ValueError, match=str(recorded)):
        _make(recorded, dtype="float64")


def test_resume_with_the_same_settings_appends(tmp_path):
    path = tmp_path / "run.zarr"
    with _make(path, mode="w-") as rec:
        rec.record(0)
    with _make(path) as rec:
        assert rec.recorded_steps == [0]
        rec.record(3)
    assert latentgeo.open_run(path).steps.tolist() == [0, 3]


def test_an_empty_store_accepts_new_layer_settings(tmp_path):
    path = tmp_path / "run.zarr"
    _make(path, mode="w-").close()  # created, nothing committed
    with _make(path, layers=["fc"], dtype="float16") as rec:
        rec.record(0)
    run = latentgeo.open_run(path)
    assert run.layers == ["fc"] and run.layer_attrs("fc")["dtype"] == "float16"
