"""Any dtype in: bfloat16/float16/float8 models and probe sets, and the storage cast watched."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from torch import nn

import latentgeo
from latentgeo.actions import ImageRotations
from latentgeo.groups import Cyclic
from latentgeo.record import NonFiniteLatentsWarning, StorageOverflowWarning
from latentgeo.record._dtypes import OverflowCheck, host_array

ACTION = ImageRotations(Cyclic(4))
FLOAT8 = [getattr(torch, n) for n in ("float8_e4m3fn", "float8_e5m2") if hasattr(torch, n)]


class Float8Linear(nn.Module):
    """A linear layer with float8 weights and float8 outputs (torch has few float8 ops on CPU:
    a float8 model computes its matmuls in float8 and everything else wider)."""

    def __init__(self, n_in: int, n_out: int, dtype: torch.dtype) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(n_out, n_in).div(n_in**0.5).to(dtype))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.linear(x.to(self.weight.dtype), self.weight)


class Widen(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.float()


def _net(dtype: torch.dtype) -> nn.Module:
    torch.manual_seed(0)
    if dtype in FLOAT8:
        return nn.Sequential(
            nn.Flatten(), Float8Linear(64, 6, dtype), Widen(), nn.ReLU(), Float8Linear(6, 3, dtype)
        )
    net = nn.Sequential(nn.Flatten(), nn.Linear(64, 6), nn.ReLU(), nn.Linear(6, 3))
    return net.to(dtype)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, *FLOAT8])
def test_low_precision_models_probe_inputs_and_labels_are_recorded(tmp_path, dtype):
    net = _net(dtype)
    x = torch.randn(5, 1, 8, 8, generator=torch.Generator().manual_seed(1)).to(dtype)
    labels = torch.arange(5.0).to(dtype)
    path = tmp_path / "run.zarr"
    with latentgeo.LatentRecorder(net, ["1", "3"], ACTION, x, path, labels=labels) as rec:
        rec.record(0)
    run = latentgeo.open_run(path)
    # The stored probe set is an exact copy, through a wider dtype where numpy has none.
    np.testing.assert_array_equal(run.inputs.values, x.float().numpy())
    np.testing.assert_array_equal(run.labels.values, labels.float().numpy())
    probe = run.attrs["probe"]
    name = str(dtype).removeprefix("torch.")
    assert probe["input_dtype"] == name
    assert probe.get("stored_dtype", name) == str(run.inputs.values.dtype)
    # The latents are the model's own low-precision values, widened exactly to float32.
    orbit = ACTION.orbit(x.float()).to(dtype).reshape(20, 1, 8, 8)
    with torch.no_grad():
        h = net[1](orbit.flatten(1))
    np.testing.assert_array_equal(run.latents("1").values[0], h.float().reshape(4, 5, 6).numpy())
    assert run.nonfinite.values.tolist() == [[0, 0]]
    assert run.overflow.values.tolist() == [[0, 0]]  # float32 storage holds every value


def test_probe_hash_covers_values_and_the_model_side_dtype(tmp_path):
    x = torch.randn(4, 1, 8, 8, generator=torch.Generator().manual_seed(2))
    hashes = {}
    for dtype in (torch.float32, torch.bfloat16):
        for copy in (0, 1):
            path = tmp_path / f"{dtype}-{copy}.zarr"
            rec = latentgeo.LatentRecorder(_net(dtype), ["1"], ACTION, x.to(dtype).clone(), path)
            rec.close()
            hashes[dtype, copy] = latentgeo.open_run(path).attrs["probe"]["sha256"]
    assert hashes[torch.float32, 0] == hashes[torch.float32, 1]
    assert hashes[torch.bfloat16, 0] == hashes[torch.bfloat16, 1]
    # bf16 values widened to float32 are float32 values, but not the same probe set.
    bf16_as_f32 = x.to(torch.bfloat16).float()
    rec = latentgeo.LatentRecorder(_net(torch.float32), ["1"], ACTION, bf16_as_f32, tmp_path / "w")
    rec.close()
    widened = latentgeo.open_run(tmp_path / "w").attrs["probe"]["sha256"]
    assert widened != hashes[torch.bfloat16, 0] != hashes[torch.float32, 0]


def test_host_array_is_exact_for_every_low_precision_dtype():
    g = torch.Generator().manual_seed(0)
    for dtype in (torch.bfloat16, torch.float16, *FLOAT8):
        t = (torch.randn(1000, generator=g) * 100).to(dtype)
        arr, name = host_array(t, "x")
        assert name == str(dtype).removeprefix("torch.")
        assert torch.equal(torch.from_numpy(arr).to(dtype), t)  # round trip is exact
        assert np.array_equal(arr.astype(np.float64), t.double().numpy())


@pytest.mark.parametrize(
    ("source", "target"),
    [
        (torch.float32, torch.float16),
        (torch.float64, torch.float32),
        (torch.bfloat16, torch.float16),
    ],
)
def test_overflow_check_counts_exactly_what_the_cast_makes_infinite(source, target):
    """Property: the count equals the finite values whose cast is infinite, near the boundary
    (round to nearest: float16's 65519.99 stays 65504, 65520 becomes inf)."""
    check = OverflowCheck(target)
    assert check.needed(source) and not check.needed(target)
    fmax = torch.finfo(target).max
    g = torch.Generator().manual_seed(0)
    x = (fmax * (1 + 1e-3 * torch.randn(4000, generator=g, dtype=torch.float64))).to(source)
    x = torch.cat([x, -x, torch.tensor([float("nan"), float("inf"), -float("inf"), 0.0])])
    x = x.to(source)
    check.update(x[:3000])
    check.update(x[3000:])  # accumulates on the device
    made_inf = torch.isinf(x.to(target)) & torch.isfinite(x)
    assert int(check.count) == int(made_inf.sum()) > 0
    finite = x[torch.isfinite(x)].abs()
    assert float(check.peak) == float(finite.max())


def test_overflow_boundary_of_float16():
    check = OverflowCheck(torch.float16)
    assert check.boundary == 65520.0
    x = torch.tensor([65504.0, 65519.99, 65520.0, -65520.0, 1e6])
    check.update(x)
    assert int(check.count) == 3 == int(torch.isinf(x.half()).sum())


class Loud(nn.Module):
    """Finite float32 features beyond float16's range, and some NaN of the model's own."""

    def __init__(self, nan: bool) -> None:
        super().__init__()
        self.lin = nn.Linear(64, 8)
        self.nan = nan
        with torch.no_grad():
            self.lin.weight.mul_(1e5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.lin(x.flatten(1))
        if self.nan:
            y = y.clone()
            y[:, 0] = float("nan")
        return y


def test_fp16_storage_overflow_is_counted_apart_and_reported(tmp_path):
    torch.manual_seed(0)
    net = nn.ModuleDict({"big": Loud(nan=False), "both": Loud(nan=True)})
    x = torch.randn(6, 1, 8, 8)

    class Wrap(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.m = net

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.m["big"](x) + self.m["both"](x)

    model = Wrap()
    path = tmp_path / "run.zarr"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with latentgeo.LatentRecorder(
            model, ["m.big", "m.both"], ACTION, x, path, dtype="float16"
        ) as rec:
            rec.record(0)
            rec.record(1)
    run = latentgeo.open_run(path)
    with torch.no_grad():
        orbit = ACTION.orbit(x).reshape(24, 1, 8, 8)
        big = net["big"](orbit)
        both = net["both"](orbit)
    expect_over = [int((torch.isinf(t.half()) & torch.isfinite(t)).sum()) for t in (big, both)]
    assert expect_over[0] > 0 and expect_over[1] > 0
    assert run.overflow.values.tolist() == [expect_over, expect_over]
    # nonfinite counts the model's own NaN only, never the cast's inf.
    assert run.nonfinite.values.tolist() == [[0, 24], [0, 24]]
    stored = run.latents("m.big").values
    assert int((~np.isfinite(stored)).sum()) == 2 * expect_over[0]  # stored as they are
    over = [w for w in caught if issubclass(w.category, StorageOverflowWarning)]
    assert len(over) == 4  # two layers, two steps
    msg = str(over[0].message)
    peak = float(big.abs().max())
    assert "float16" in msg and "dtype='float32'" in msg and "65504" in msg
    assert f"{peak:.4g}" in msg
    own = [w for w in caught if w.category is NonFiniteLatentsWarning]
    assert own and all("'m.big'" not in str(w.message) for w in own)
    assert all("'m.both': 24 values" in str(w.message) for w in own)


def test_float32_storage_skips_the_check_and_counts_zero(tmp_path):
    torch.manual_seed(0)
    model = nn.Sequential(Loud(nan=False))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning at all
        with latentgeo.LatentRecorder(
            model, ["0"], ACTION, torch.randn(3, 1, 8, 8), tmp_path / "r.zarr"
        ) as rec:
            rec.record(0)
    run = latentgeo.open_run(tmp_path / "r.zarr")
    assert run.overflow.values.tolist() == [[0]]
    assert np.isfinite(run.latents("0").values).all()
