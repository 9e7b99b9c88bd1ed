"""Live symmetry metrics: the recorder's LiveProbes, TensorBoard, Lightning and HF loggers.

Every logged value is checked against the offline probes (``probes.invariance``,
``probes.orbit_spectrum``, ``probes.LinearProbe``) run on the latents read back from the run
store at the same step.  Both sides compute in float64 from the same stored values, so they
agree to float64 rounding whatever the storage dtype; TensorBoard keeps scalars as float32.
"""

from __future__ import annotations

import csv
import math
import warnings

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F

import probes
from latentgeo.actions import ImageRotations
from latentgeo.groups import Cyclic
from latentgeo.record import LatentRecorder
from latentgeo.record._observer import as_observer
from latentgeo.store import open_run
from probes import LiveProbes

RTOL_F64 = 1e-9  # float64 computations on identical inputs (summation order may differ)
RTOL_TB = 2e-7  # TensorBoard stores scalars as float32 (half an ulp is 6e-8)
LAYERS = ["conv", "fc"]
ALL = ("invariance", "spectrum", "r2")


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 3, 3, padding=1)
        self.fc = nn.Linear(3 * 6 * 6, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.relu(self.conv(x)).flatten(1))


@pytest.fixture(scope="module")
def action():
    return ImageRotations(Cyclic(4))


@pytest.fixture(scope="module")
def probe_x():
    return torch.randn(24, 1, 6, 6, generator=torch.Generator().manual_seed(7))


def _offline(run, layer: str, step: int, live: LiveProbes) -> dict[str, float]:
    """The live metric names of ``layer`` computed by the offline probes from the store."""
    Z = np.asarray(run.latents(layer).sel(step=step).values)
    out: dict[str, float] = {}
    if "invariance" in live.probes:
        out["invariance"] = probes.invariance(Z)
    if "spectrum" in live.probes:
        spec = probes.orbit_spectrum(Z, Cyclic(4))
        for name, value in zip(spec.irrep.values, spec.values, strict=True):
            out[f"spectrum/{name}"] = float(value)
    if "r2" in live.probes:
        idx = live.subsample(Z.shape[1])
        lin = probes.LinearProbe(n_null=0, n_bootstrap=0, random_state=live.random_state)
        out["r2"] = float(lin.fit(Z[:, idx]).r2_[1:].mean())
    return {f"{live.prefix}/{layer}/{k}": v for k, v in out.items()}


def _assert_close(got: dict[str, float], want: dict[str, float], rtol: float) -> None:
    assert set(want) <= set(got), sorted(set(want) - set(got))
    for name, value in want.items():
        np.testing.assert_allclose(got[name], value, rtol=rtol, atol=rtol, err_msg=name)


def _perturb(net: nn.Module, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=g))


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_live_equals_offline_probes_and_tensorboard(tmp_path, action, probe_x, dtype):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from torch.utils.tensorboard import SummaryWriter

    torch.manual_seed(0)
    net = Net().to(getattr(torch, dtype))
    tb_dir = tmp_path / "tb"
    writer = SummaryWriter(log_dir=str(tb_dir))
    live = LiveProbes(ALL, r2_samples=16, tensorboard=writer, random_state=3)
    store = tmp_path / "run.zarr"
    steps = [0, 2, 5]
    with LatentRecorder(
        net, LAYERS, action, probe_x.to(getattr(torch, dtype)), store, dtype=dtype, live=live
    ) as rec:
        for k, step in enumerate(steps):
            rec.record(step)
            _perturb(net, k)
    writer.close()

    run = open_run(store)
    assert [s for s, _ in live.history] == steps
    assert [s for s, _ in live.drain()] == steps and live.drain() == []
    for step, metrics in live.history:
        for layer in LAYERS:
            want = _offline(run, layer, step, live)
            _assert_close(metrics, want, RTOL_F64)
            # Laws: the spectrum is a partition of the variance; its trivial share is the
            # invariance.
            shares = [v for k, v in metrics.items() if k.startswith(f"latentgeo/{layer}/spec")]
            assert len(shares) == 3  # A, B, E1 of C4
            assert math.isclose(sum(shares), 1.0, rel_tol=1e-12)
            assert math.isclose(
                metrics[f"latentgeo/{layer}/spectrum/A"],
                metrics[f"latentgeo/{layer}/invariance"],
                rel_tol=1e-10,
            )
        assert set(metrics) == {
            f"latentgeo/{layer}/{name}"
            for layer in LAYERS
            for name in ("invariance", "spectrum/A", "spectrum/B", "spectrum/E1", "r2")
        }

    acc = EventAccumulator(str(tb_dir), size_guidance={"scalars": 0})
    acc.Reload()
    tags = set(acc.Tags()["scalars"])
    assert tags == set(live.history[0][1])
    for tag in tags:
        events = acc.Scalars(tag)
        assert [e.step for e in events] == steps
        want = [metrics[tag] for _, metrics in live.history]
        np.testing.assert_allclose([e.value for e in events], want, rtol=RTOL_TB, err_msg=tag)


def test_planted_invariant_and_equivariant_layers(tmp_path, action, probe_x):
    """Orbit-summed features are invariant; features permuted by the rotation are equivariant."""
    W = torch.randn(6, 6, generator=torch.Generator().manual_seed(1), dtype=torch.float64)

    class Planted(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.equi = nn.Identity()  # f_k(x) = <rot^k x, W>: rotating x shifts k cyclically
            self.inv = nn.Identity()  # sum_k f_k and sum_k f_k², invariant

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            f = torch.stack(
                [(torch.rot90(x, k, dims=(-2, -1)) * W).sum(dim=(-3, -2, -1)) for k in range(4)],
                dim=1,
            )
            self.inv(torch.stack([f.sum(1), f.pow(2).sum(1)], dim=1))
            return self.equi(f)

    x = probe_x.double()
    live = LiveProbes(ALL, r2_samples=24)
    with LatentRecorder(
        Planted(), ["equi", "inv"], action, x, tmp_path / "p.zarr", dtype="float64", live=live
    ) as rec:
        rec.record(0)
    ((step, metrics),) = live.history
    assert step == 0
    assert metrics["latentgeo/inv/invariance"] == pytest.approx(1.0, abs=1e-12)
    assert metrics["latentgeo/inv/spectrum/E1"] == pytest.approx(0.0, abs=1e-12)
    assert metrics["latentgeo/equi/r2"] > 0.99
    assert metrics["latentgeo/equi/invariance"] < 0.5


def test_failing_live_probe_does_not_stop_recording(tmp_path, action, probe_x):
    class Flaky(LiveProbes):
        def compute(self, Z):
            if self.step == 1:
                raise FloatingPointError("planted live failure")
            return super().compute(Z)

        def observe(self, step, latents):
            self.step = step
            return super().observe(step, latents)

    live = Flaky(["invariance"])
    store = tmp_path / "run.zarr"
    rec = LatentRecorder(Net(), LAYERS, action, probe_x, store, live=live)
    rec.record(0)
    rec.record(1)
    with pytest.warns(RuntimeWarning, match="live probes failed at step 1.*planted"):
        rec.flush()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # warned once only
        rec.record(2)
        rec.record(3)
        rec.close()
    assert list(open_run(store).steps) == [0, 1, 2, 3]
    assert [s for s, _ in live.history] == [0, 2, 3]


@pytest.mark.parametrize("group", [Cyclic(4), Cyclic(5)])
def test_chunked_gram_equals_probes_on_offset_latents(monkeypatch, group):
    """Chunked accumulation and folded-in centring agree with the probes on latents whose
    mean is a thousand times their spread (the cancellation case), for any chunking."""
    import latentgeo.groups._fourier as live_module

    rng = np.random.default_rng(5)
    G = group.order
    Z = 1e3 + rng.normal(size=(G, 50, 7)) * rng.uniform(0.1, 2, size=7)
    Z[1:] += 0.3 * np.roll(Z[:1], 1, axis=-1)  # some non-invariant structure
    want_inv = probes.invariance(Z)
    want_spec = probes.orbit_spectrum(Z, group)
    for per_chunk in (1, 3, 50):
        monkeypatch.setattr(live_module, "_CHUNK_VALUES", G * 7 * per_chunk)
        live = LiveProbes(["invariance", "spectrum"])
        live.bind(group, np.arange(G))
        out = live.compute(Z.astype(np.float64))
        np.testing.assert_allclose(out["invariance"], want_inv, rtol=RTOL_F64)
        got = [out[f"spectrum/{name}"] for name in want_spec.irrep.values]
        np.testing.assert_allclose(got, want_spec.values, rtol=1e-8, atol=1e-12)


def test_nonfinite_latents_give_nan_metrics():
    live = LiveProbes(ALL)
    live.bind(Cyclic(4), np.arange(4))
    Z = np.random.default_rng(0).normal(size=(4, 20, 3))
    Z[2, 5, 1] = np.nan
    out = live.compute(Z)
    assert sorted(out) == ["invariance", "r2", "spectrum/A", "spectrum/B", "spectrum/E1"]
    assert all(math.isnan(v) for v in out.values())


def test_bad_arguments(tmp_path, action, probe_x):
    with pytest.raises(ValueError, match="subset of"):
        LiveProbes(["invariance", "curvature"])
    with pytest.raises(ValueError, match="r2_samples"):
        LiveProbes(r2_samples=4)
    with pytest.raises(TypeError, match="SummaryWriter"):
        LiveProbes(tensorboard="runs/")
    for bad in (5, True, ["invariance"]):  # the recorder takes an observer, not names
        with pytest.raises(TypeError, match=r"live must be.*probes\.LiveProbes"):
            as_observer(bad)
    assert as_observer(None) is None and as_observer(False) is None
    # The spectrum needs a group or subgroup orbit: {e, r} of C4 is neither.
    with pytest.raises(ValueError, match=r"live spectrum needs.*'C4'.*\['e', 'r'\]"):
        LiveProbes().bind(Cyclic(4), np.array([0, 1]))
    LiveProbes(["invariance"]).bind(Cyclic(4), np.array([0, 1]))  # invariance is fine
    with pytest.raises(RuntimeError, match="not bound"):
        LiveProbes().compute(np.zeros((4, 3, 2)))
    with pytest.raises(TypeError, match="live must be"):
        LatentRecorder(Net(), LAYERS, action, probe_x, tmp_path / "x.zarr", live=["nope"])
    assert not (tmp_path / "x.zarr").exists()


# -- trainers ------------------------------------------------------------------------------


def _data(n: int = 16):
    g = torch.Generator().manual_seed(0)
    return torch.randn(n, 1, 6, 6, generator=g), torch.randint(0, 4, (n,), generator=g)


def test_lightning_run_logs_live_metrics(tmp_path, action, probe_x):
    pl = pytest.importorskip("lightning.pytorch")
    from lightning.pytorch.loggers import CSVLogger

    from latentgeo.callbacks import LightningRecorder
    from latentgeo.schedules import Explicit

    class Module(pl.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.net = Net()

        def forward(self, x):
            return self.net(x)

        def training_step(self, batch, batch_idx):
            x, y = batch
            loss = F.cross_entropy(self.net(x), y)
            self.log("train_loss", loss)
            return loss

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.2)

    x, y = _data()
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=4)
    store = tmp_path / "run.zarr"
    live = LiveProbes(ALL, r2_samples=16)
    steps = [0, 1, 3, 4]
    recorder = LightningRecorder(
        ["net.conv", "net.fc"], action, probe_x, store, schedule=Explicit(steps), live=live
    )
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer = pl.Trainer(
            accelerator="cpu",
            max_epochs=2,
            logger=CSVLogger(str(tmp_path / "logs"), name="", version=0),
            callbacks=[recorder],
            log_every_n_steps=1,
            enable_progress_bar=False,
            enable_model_summary=False,
            enable_checkpointing=False,
        )
        trainer.fit(Module(), loader)

    run = open_run(store)
    assert list(run.steps) == steps
    # Live results are not fed back into the store as the next step's metrics.
    assert not any(name.startswith("latentgeo") for name in run.metrics.data_vars)
    offline = {s: {} for s in steps}
    for s in steps:
        for layer in ("net.conv", "net.fc"):
            offline[s].update(_offline(run, layer, s, live))

    with open(tmp_path / "logs" / "version_0" / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    logged: dict[int, dict[str, float]] = {}
    for row in rows:
        for name, value in row.items():
            if name.startswith("latentgeo/") and value not in ("", None):
                logged.setdefault(int(row["step"]), {})[name] = float(value)
    assert sorted(logged) == steps
    for s in steps:
        assert set(logged[s]) == set(offline[s])
        _assert_close(logged[s], offline[s], RTOL_F64)

    last = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("latentgeo/")}
    assert all(
        isinstance(v, torch.Tensor)
        for k, v in trainer.callback_metrics.items()
        if k.startswith("latentgeo/")
    )
    assert set(last) == set(offline[4])
    _assert_close(last, offline[4], RTOL_F64)


def test_hf_trainer_log_history_holds_live_metrics(tmp_path, action, probe_x):
    transformers = pytest.importorskip("transformers")
    pytest.importorskip("accelerate")
    from latentgeo.callbacks import HFRecorder
    from latentgeo.schedules import Explicit

    class Model(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = Net()

        def forward(self, pixel_values, labels=None):
            logits = self.net(pixel_values)
            loss = None if labels is None else F.cross_entropy(logits, labels)
            return {"loss": loss, "logits": logits}

    x, y = _data()

    class Data(torch.utils.data.Dataset):
        def __len__(self) -> int:
            return len(x)

        def __getitem__(self, i):
            return {"pixel_values": x[i], "labels": y[i]}

    store = tmp_path / "run.zarr"
    live = LiveProbes(["invariance", "spectrum"])
    steps = [0, 1, 2, 5, 6]
    rec = HFRecorder(["net.fc"], action, probe_x, store, schedule=Explicit(steps), live=live)
    args = transformers.TrainingArguments(
        output_dir=str(tmp_path / "out"),
        per_device_train_batch_size=4,
        num_train_epochs=2,
        learning_rate=0.2,
        optim="sgd",
        logging_steps=2,
        save_strategy="no",
        report_to=[],
        use_cpu=True,
        disable_tqdm=True,
        seed=0,
        dataloader_num_workers=0,
    )
    torch.manual_seed(0)
    verbosity = transformers.logging.get_verbosity()
    transformers.logging.set_verbosity_error()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            trainer = transformers.Trainer(
                model=Model(), args=args, train_dataset=Data(), callbacks=[rec]
            )
            trainer.train()
    finally:
        transformers.logging.set_verbosity(verbosity)

    run = open_run(store)
    assert list(run.steps) == steps
    entries = [e for e in trainer.state.log_history if "latentgeo/net.fc/invariance" in e]
    assert [e["step"] for e in entries] == steps
    for entry in entries:
        want = _offline(run, "net.fc", entry["step"], live)
        assert set(entry) == {*want, "step"}
        _assert_close(entry, want, RTOL_F64)


def test_live_on_a_continuous_group_equals_the_harmonic_spectrum(tmp_path):
    # Point clouds under sampled rotations of SO(3): the live spectrum is the harmonic fit of
    # probes.orbit_spectrum over the stored element values, the invariance its trivial share.
    import probes
    from latentgeo import LatentRecorder, open_run
    from latentgeo.actions import PointCloudRotations
    from latentgeo.groups import SO3

    class Centroid(torch.nn.Module):  # degree 1 (the centroid) and degree 0 (the spread)
        def forward(self, x):
            return torch.cat([x.mean(dim=-2), (x**2).sum(dim=(-1, -2))[..., None]], dim=-1)

    torch.manual_seed(0)
    x = torch.randn(24, 5, 3, dtype=torch.float64)
    model = Centroid()
    model.fc = torch.nn.Identity()
    live = LiveProbes(["invariance", "spectrum"])
    action = PointCloudRotations(SO3(), n_elements=64, seed=1)
    with LatentRecorder(
        Wrapped(model), ["inner"], action, x, tmp_path / "so3.zarr", dtype="float64", live=live
    ) as rec:
        rec.record(0)
        rec.flush()
    run = open_run(tmp_path / "so3.zarr")
    Z = run.latents("inner").isel(step=0).values
    ref = probes.orbit_spectrum(Z, SO3(), elements=run.element_values)
    step, metrics = live.history[0]
    assert step == 0
    for name, value in zip(ref.irrep.values, ref.values, strict=True):
        np.testing.assert_allclose(metrics[f"latentgeo/inner/spectrum/{name}"], value, atol=1e-9)
    np.testing.assert_allclose(metrics["latentgeo/inner/invariance"], ref.values[0], atol=1e-9)
    # The centroid is a vector (degree 1), the spread invariant (degree 0): nothing else.
    share = metrics["latentgeo/inner/spectrum/0"] + metrics["latentgeo/inner/spectrum/1"]
    np.testing.assert_allclose(share, 1.0, atol=1e-9)
    assert metrics["latentgeo/inner/spectrum/1"] > 0.01


class Wrapped(torch.nn.Module):
    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, x):
        return self.inner(x)
