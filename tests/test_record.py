"""LatentRecorder: correctness of recorded latents, observer effect, hooks, modes, reducers."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import latentgeo
from latentgeo.actions import ImageRotations
from latentgeo.groups import Cyclic, Dihedral
from latentgeo.record import (
    Flatten,
    LatentRecorder,
    NonFiniteLatentsWarning,
    RandomProjection,
    SpatialMeanPool,
    WriterError,
)
from latentgeo.schedules import EveryN, Explicit

RTOL32, ATOL32 = 1e-5, 1e-6


class SmallCNN(nn.Module):
    """Conv + batchnorm + dropout: train/eval mode and RNG both matter."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 4, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(4)
        self.block = nn.Sequential(nn.Conv2d(4, 6, 3, padding=1), nn.ReLU())
        self.drop = nn.Dropout(0.3)
        self.fc = nn.Linear(6 * 6 * 6, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.bn1(self.conv1(x)))
        h = self.block(h)
        return self.fc(self.drop(h.flatten(1)))


def _model(seed: int = 0) -> SmallCNN:
    torch.manual_seed(seed)
    return SmallCNN()


def _probe(n: int = 7) -> torch.Tensor:
    return torch.randn(n, 1, 6, 6, generator=torch.Generator().manual_seed(1))


def _reference(model, action, x, layer):
    """Latents of ``layer`` computed by hand: hook, eval, orbit through the model."""
    out = {}
    module = dict(model.named_modules())[layer]
    h = module.register_forward_hook(lambda m, i, o: out.__setitem__("z", o))
    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            orbit = action.orbit(x)
            model(orbit.reshape(-1, *x.shape[1:]))
    finally:
        h.remove()
        model.train(was)
    return out["z"].reshape(orbit.shape[0], x.shape[0], -1).numpy()


def _no_hooks(model) -> bool:
    return all(not m._forward_hooks for m in model.modules())


def test_recorded_latents_equal_hand_computed(tmp_path):
    model, x = _model(), _probe()
    action = ImageRotations(Dihedral(4))
    path = tmp_path / "run.zarr"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # recording emits no zarr/xarray warning
        # batch_size 16 splits the 8 x 7 orbit into several forward passes
        with LatentRecorder(
            model, ["conv1", "block.*", "fc"], action, x, path, batch_size=16
        ) as rec:
            assert rec.layers == ["conv1", "block.0", "block.1", "fc"]
            assert rec.record(0, metrics={"loss": torch.tensor(0.5)}, epoch=0)
        run = latentgeo.open_run(path)
    assert run.layers == rec.layers and run.group == Dihedral(4) and run.action == action
    assert run.feature_shape("conv1") == (4, 6, 6) and run.feature_shape("fc") == (3,)
    for layer in rec.layers:
        np.testing.assert_allclose(
            run.latents(layer).isel(step=0).values,
            _reference(model, action, x, layer),
            rtol=RTOL32,
            atol=ATOL32,
        )
    assert run.metrics["loss"].values.tolist() == [0.5]
    assert run.metrics["epoch"].values.tolist() == [0]
    np.testing.assert_array_equal(run.inputs.values, x.numpy())
    # the element axis follows the action: z(g.x) for element g is the layer on act(g, x)
    z = run.latents("fc").sel(step=0, element="r").values
    with torch.no_grad():
        model.eval()
        direct = model(action("r", x)).numpy()
    np.testing.assert_allclose(z, direct, rtol=RTOL32, atol=ATOL32)


def _train(model, steps, recorder=None):
    gen = torch.Generator().manual_seed(3)
    for step in range(steps):
        xb = torch.randn(8, 1, 6, 6, generator=gen)
        yb = torch.randint(0, 3, (8,), generator=gen)
        loss = nn.functional.cross_entropy(model(xb), yb)  # dropout draws from the global RNG
        model.zero_grad()
        loss.backward()
        with torch.no_grad():  # plain SGD (torch.optim would import torch._dynamo: slow)
            for p in model.parameters():
                p -= 0.1 * p.grad
        if recorder is not None:
            rng = torch.get_rng_state()
            modes = [m.training for m in model.modules()]
            recorder.maybe_record(step, metrics={"loss": loss.item()})
            assert torch.equal(torch.get_rng_state(), rng)  # RNG untouched
            assert [m.training for m in model.modules()] == modes  # modes restored
    return model


def _mixed_mode_model():
    model = _model().train()
    model.block.eval()  # a submodule in its own mode must stay so
    return model


def test_observer_effect_is_zero(tmp_path):
    plain = _mixed_mode_model()
    torch.manual_seed(42)
    _train(plain, 6)
    rng_plain = torch.get_rng_state()
    model = _mixed_mode_model()
    torch.manual_seed(42)
    action = ImageRotations(Cyclic(4))
    path = tmp_path / "r.zarr"
    with LatentRecorder(model, ["bn1", "fc"], action, _probe(), path, schedule=EveryN(2)) as rec:
        _train(model, 6, rec)
    assert rec.recorded_steps == [0, 2, 4]
    for (name, a), b in zip(plain.state_dict().items(), model.state_dict().values()):
        assert torch.equal(a, b), name  # bit-identical weights and batchnorm statistics
    assert torch.equal(rng_plain, torch.get_rng_state())
    assert model.training and model.bn1.training and not model.block.training
    assert _no_hooks(model)
    # the control: without a fixed seed, dropout would have given different weights
    other = _mixed_mode_model()
    torch.manual_seed(43)
    _train(other, 6)
    assert not torch.equal(other.fc.weight, plain.fc.weight)


def test_unknown_layers_fail_before_anything(tmp_path):
    model = _model()
    path = tmp_path / "r.zarr"
    with pytest.raises(ValueError, match=r"'conv2'.*close matches: \['conv1'\]") as info:
        LatentRecorder(
            model, ["conv1", "conv2", "blok.*"], ImageRotations(Cyclic(4)), _probe(), path
        )
    assert "'blok.*'" in str(info.value)
    assert _no_hooks(model) and not path.exists()
    with pytest.raises(TypeError, match="layer names must be strings"):
        LatentRecorder(model, [3], ImageRotations(Cyclic(4)), _probe(), path)


class Exploding(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(36, 4)
        self.b = nn.Linear(4, 2)

    def forward(self, x):
        self.b(self.a(x.flatten(1)))
        raise RuntimeError("boom in forward")


def test_hooks_removed_and_modes_restored_when_forward_raises(tmp_path):
    model = Exploding().train()
    rec = LatentRecorder(
        model, ["a", "b"], ImageRotations(Cyclic(4)), _probe(), tmp_path / "r.zarr"
    )
    with pytest.raises(RuntimeError, match="boom in forward"):
        rec.record(0)
    assert _no_hooks(model) and model.training and model.a.training
    assert rec.last_step is None
    rec.close()


class Reuse(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(36, 36)
        self.act = nn.ReLU()

    def forward(self, x):
        return self.act(self.lin(self.act(x.flatten(1))))


def test_module_running_twice_is_an_error(tmp_path):
    model = Reuse()
    with LatentRecorder(
        model, ["act"], ImageRotations(Cyclic(4)), _probe(), tmp_path / "r.zarr"
    ) as rec:
        with pytest.raises(ValueError, match="more than once"):
            rec.record(0)
        assert _no_hooks(model)


def test_modes_and_resume_never_duplicate(tmp_path, caplog):
    path = tmp_path / "r.zarr"
    model, x, action = _model(), _probe(), ImageRotations(Cyclic(4))
    with LatentRecorder(model, ["fc"], action, x, path) as rec:
        assert [rec.record(s) for s in (0, 3, 3, 2, 5)] == [True, True, False, False, True]
    with pytest.raises(FileExistsError, match="already exists"):
        LatentRecorder(model, ["fc"], action, x, path)
    with LatentRecorder(model, ["fc"], action, x, path, mode="a") as rec:
        assert rec.last_step == 5 and rec.recorded_steps == [0, 3, 5]
        with caplog.at_level(logging.DEBUG, logger="latentgeo"):
            assert not rec.record(4)
        assert "skipped" in caplog.text
        assert rec.record(6)
    run = latentgeo.open_run(path)
    assert run.steps.tolist() == [0, 3, 5, 6]
    np.testing.assert_allclose(
        run.latents("fc").sel(step=6).values,
        _reference(model, action, x, "fc"),
        rtol=RTOL32,
        atol=ATOL32,
    )
    with pytest.raises(ValueError, match="another probe set"):
        LatentRecorder(model, ["fc"], action, x[:3], path, mode="a")  # a different probe set
    with LatentRecorder(model, ["fc"], action, x, path, mode="w") as rec:
        rec.record(1)
    assert latentgeo.open_run(path).steps.tolist() == [1]


def test_maybe_record_obeys_schedule(tmp_path):
    with LatentRecorder(
        _model(),
        "fc",
        ImageRotations(Cyclic(4)),
        _probe(),
        tmp_path / "r.zarr",
        schedule=Explicit([1, 4]),
    ) as rec:
        done = [s for s in range(6) if rec.maybe_record(s)]
    assert done == [1, 4] and latentgeo.open_run(tmp_path / "r.zarr").steps.tolist() == [1, 4]


def test_reducers(tmp_path):
    model, x = _model(), _probe()
    action = ImageRotations(Cyclic(4))
    proj = RandomProjection(5, seed=7)
    reduce = {"conv1": SpatialMeanPool(), "block.1": proj, "fc": lambda z: z[:, :2] * 2}
    path = tmp_path / "r.zarr"
    rng = torch.get_rng_state()
    with LatentRecorder(model, ["conv1", "block.1", "fc"], action, x, path, reduce=reduce) as rec:
        rec.record(0)
    assert torch.equal(rng, torch.get_rng_state())
    run = latentgeo.open_run(path)
    conv = _reference(model, action, x, "conv1").reshape(4, 7, 4, 36)
    np.testing.assert_allclose(
        run.latents("conv1")[0].values, conv.mean(-1), rtol=RTOL32, atol=ATOL32
    )
    # the projection is reproducible from the stored attributes alone
    attrs = run.layer_attrs("block.1")["reducer"]
    assert attrs["k"] == 5 and attrs["seed"] == 7
    p = RandomProjection(attrs["k"], attrs["seed"]).matrix(216, dtype=torch.float64).numpy()
    flat = _reference(model, action, x, "block.1").astype(np.float64)
    np.testing.assert_allclose(run.latents("block.1")[0].values, flat @ p, rtol=1e-4, atol=1e-5)
    fc = _reference(model, action, x, "fc")
    np.testing.assert_allclose(
        run.latents("fc")[0].values, fc[..., :2] * 2, rtol=RTOL32, atol=ATOL32
    )
    assert run.layer_attrs("fc")["reducer"]["name"] == "callable"


def test_random_projection_laws():
    p = RandomProjection(64, seed=0)
    m = p.matrix(500, dtype=torch.float64)
    assert m.shape == (500, 64)
    assert torch.equal(m, RandomProjection(64, seed=0).matrix(500, dtype=torch.float64))
    assert not torch.equal(m, RandomProjection(64, seed=1).matrix(500, dtype=torch.float64))
    # E[P P^T] = I (entries N(0, 1/k)): the mean of the diagonal of P P^T is 1 within 4 s.e.
    diag = (m @ m.T).diagonal()
    assert abs(diag.mean().item() - 1.0) < 4 * np.sqrt(2 / 64) / np.sqrt(500)
    z = torch.randn(10, 5, 100, dtype=torch.float64)
    np.testing.assert_allclose(p(z), z.reshape(10, -1) @ p.matrix(500, dtype=torch.float64))
    assert p == RandomProjection(64, 0) and hash(p) == hash(RandomProjection(64, 0))
    with pytest.raises(ValueError, match="k must be an int >= 1"):
        RandomProjection(0)
    with pytest.raises(TypeError, match="k must be an int"):
        RandomProjection(2.5)
    assert Flatten()(torch.ones(3, 2, 2)).shape == (3, 4)
    seq = torch.randn(2, 5, 7)
    torch.testing.assert_close(SpatialMeanPool(channel_dim=-1)(seq), seq.mean(1))


@pytest.mark.parametrize("size", [1, 2, 3])
def test_block_mean_pool_commutes_with_the_dihedral_action(size):
    from latentgeo.reducers import BlockMeanPool, as_reducer

    g = torch.Generator().manual_seed(0)
    z = torch.randn(5, 3, 6, 6, generator=g, dtype=torch.float64)
    reducer = BlockMeanPool(size)
    out = reducer(z)
    # against an explicit block loop
    m = 6 // size
    expected = torch.stack(
        [
            z[:, :, i * size : (i + 1) * size, j * size : (j + 1) * size].mean(dim=(-2, -1))
            for i in range(m)
            for j in range(m)
        ],
        dim=-1,
    ).reshape(5, -1)
    torch.testing.assert_close(out, expected, rtol=1e-12, atol=1e-12)
    # pooling a transformed map = transforming the pooled map (as a (C, m, m) map)
    action = ImageRotations(Dihedral(4))
    for element in range(action.group.order):
        lhs = reducer(action(element, z)).reshape(5, 3, m, m)
        rhs = action(element, out.reshape(5, 3, m, m))
        torch.testing.assert_close(lhs, rhs, rtol=1e-12, atol=1e-12)
    assert as_reducer("block_mean_pool") == BlockMeanPool(2)
    assert reducer.to_spec() == {"name": "block_mean_pool", "size": size}


def test_block_mean_pool_errors():
    from latentgeo.reducers import BlockMeanPool

    with pytest.raises(ValueError, match=r"divisible by 2.*\(5, 5\)"):
        BlockMeanPool(2)(torch.zeros(1, 1, 5, 5))
    with pytest.raises(ValueError, match="H, W"):
        BlockMeanPool(2)(torch.zeros(4, 6))
    with pytest.raises(ValueError, match="size must be an int >= 1, got 0"):
        BlockMeanPool(0)
    with pytest.raises(TypeError, match="size must be an int"):
        BlockMeanPool(2.0)


def test_bad_reducer_output_and_bad_arguments(tmp_path):
    model, x, action = _model(), _probe(), ImageRotations(Cyclic(4))
    with LatentRecorder(
        model, "fc", action, x, tmp_path / "a.zarr", reduce=lambda z: z.sum()
    ) as rec:
        with pytest.raises(ValueError, match=r"shape \(batch=28, n_units\)"):
            rec.record(0)
    with pytest.raises(ValueError, match="not recorded"):
        LatentRecorder(model, "fc", action, x, tmp_path / "b.zarr", reduce={"conv1": "flatten"})
    with pytest.raises(ValueError, match="'bfloat16'"):
        LatentRecorder(model, "fc", action, x, tmp_path / "c.zarr", dtype="bfloat16")
    with pytest.raises(ValueError, match="batch_size"):
        LatentRecorder(model, "fc", action, x, tmp_path / "d.zarr", batch_size=0)
    with pytest.raises(TypeError, match=r"latentgeo\.actions\.Action"):
        LatentRecorder(model, "fc", object(), x, tmp_path / "e.zarr")
    with LatentRecorder(model, "fc", action, x, tmp_path / "g.zarr") as rec:
        with pytest.raises(ValueError, match="'loss/train'"):
            rec.record(0, metrics={"loss/train": 1.0})
        with pytest.raises(ValueError, match="collides"):
            rec.record(0, metrics={"fc": 1.0})
        with pytest.raises(TypeError, match="real scalar"):
            rec.record(0, metrics={"loss": "high"})
        assert rec.record(0, metrics={"loss": 1.0})
    with pytest.raises(ValueError, match="unknown reducer 'pca'"):
        LatentRecorder(model, "fc", action, x, tmp_path / "f.zarr", reduce="pca")


class NaNLayer(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(36, 4)
        self.log = LogLayer()

    def forward(self, x):
        return self.log(self.lin(x.flatten(1)))


class LogLayer(nn.Module):
    def forward(self, x):
        return torch.log(x)  # NaN for negative inputs


def test_nonfinite_latents_are_counted_stored_and_warned(tmp_path):
    model = NaNLayer()
    path = tmp_path / "r.zarr"
    rec = LatentRecorder(model, ["lin", "log"], ImageRotations(Cyclic(4)), _probe(), path)
    rec.record(0)
    with pytest.warns(NonFiniteLatentsWarning, match=r"step 0: 'log'"):
        rec.close()
    run = latentgeo.open_run(path)
    z = run.latents("log")[0].values
    expected = int((_reference(model, ImageRotations(Cyclic(4)), _probe(), "lin") <= 0).sum())
    assert expected > 0
    assert run.nonfinite.sel(layer="log").values.tolist() == [int((~np.isfinite(z)).sum())]
    assert run.nonfinite.sel(layer="log").values.tolist() == [expected]
    assert run.nonfinite.sel(layer="lin").values.tolist() == [0]


def test_float16_storage(tmp_path):
    model, x, action = _model(), _probe(), ImageRotations(Cyclic(4))
    with LatentRecorder(model, "fc", action, x, tmp_path / "r.zarr", dtype="float16") as rec:
        rec.record(0)
    z = latentgeo.open_run(tmp_path / "r.zarr").latents("fc")
    assert z.dtype == np.float16
    np.testing.assert_allclose(
        z[0].values, _reference(model, action, x, "fc"), rtol=1e-3, atol=1e-3
    )


def test_writer_errors_surface(tmp_path):
    rec = LatentRecorder(_model(), "fc", ImageRotations(Cyclic(4)), _probe(), tmp_path / "r.zarr")

    def broken(*args, **kwargs):
        raise OSError("disk full")

    rec._writer.append = broken
    rec.record(0)
    with pytest.raises(WriterError, match="disk full"):
        rec.flush()
    with pytest.raises(WriterError):
        rec.record(1)
    with pytest.raises(WriterError):
        rec.close()
    with pytest.raises(RuntimeError, match="closed"):
        rec.record(2)


@pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated:DeprecationWarning")
def test_wrapped_models_are_looked_through(tmp_path):
    model, x, action = _model(), _probe(), ImageRotations(Cyclic(4))
    compiled = torch.compile(model)  # never called: the recorder forwards through _orig_mod
    wrapped = nn.DataParallel(compiled)
    with LatentRecorder(
        wrapped, ["module._orig_mod.fc", "conv1"], action, x, tmp_path / "r.zarr"
    ) as rec:
        assert rec.layers == ["fc", "conv1"]
        rec.record(0)
    run = latentgeo.open_run(tmp_path / "r.zarr")
    np.testing.assert_allclose(
        run.latents("fc")[0].values, _reference(model, action, x, "fc"), rtol=RTOL32, atol=ATOL32
    )
    assert _no_hooks(model)


def test_store_inputs_and_labels_options(tmp_path):
    model, x, action = _model(), _probe(), ImageRotations(Cyclic(4))
    with LatentRecorder(
        model, "fc", action, x, tmp_path / "r.zarr", labels=torch.arange(7), store_inputs=False
    ) as rec:
        rec.record(0)
    run = latentgeo.open_run(tmp_path / "r.zarr")
    assert run.inputs is None and run.labels.values.tolist() == list(range(7))
    with pytest.raises(ValueError, match=r"labels must have shape \(n_samples=7"):
        LatentRecorder(model, "fc", action, x, tmp_path / "s.zarr", labels=np.arange(3))


def test_string_labels_are_stored_and_has_labels_tells_the_truth(tmp_path):
    import warnings

    import xarray as xr

    model, x, action = _model(), _probe(), ImageRotations(Cyclic(4))
    names = np.array(["cat", "dög", "", "a longer label", "x", "y", "z"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no fixed-width unicode warning from zarr
        with LatentRecorder(
            model, "fc", action, x, tmp_path / "r.zarr", labels=names, store_inputs=False
        ) as rec:
            rec.record(0)
    run = latentgeo.open_run(tmp_path / "r.zarr")
    assert run.attrs["probe"]["has_labels"] is True
    assert run.labels.values.tolist() == names.tolist()
    # Plain xarray, without latentgeo's reader, sees the same strings.
    plain = xr.open_zarr(tmp_path / "r.zarr")
    assert plain["labels"].values.tolist() == names.tolist()
    # Labels that are neither numbers nor strings: said so, not stored, not claimed.
    odd = np.empty(7, dtype=object)
    odd[:] = [{"k": i} for i in range(7)]
    with pytest.warns(UserWarning, match="not stored"):
        with LatentRecorder(model, "fc", action, x, tmp_path / "s.zarr", labels=odd) as rec:
            rec.record(0)
    run = latentgeo.open_run(tmp_path / "s.zarr")
    assert run.attrs["probe"]["has_labels"] is False and run.labels is None


def test_record_checkpoints_is_exported_lazily():
    import latentgeo.record

    assert "record_checkpoints" in latentgeo.record.__all__
    assert callable(latentgeo.record.record_checkpoints)
    assert latentgeo.record_checkpoints is latentgeo.record.record_checkpoints
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        latentgeo.record.nope  # noqa: B018


def test_queued_checkpoints_are_written_at_exit_without_close(tmp_path):
    import subprocess
    import sys

    path = tmp_path / "r.zarr"
    code = (
        "import torch\n"
        "from latentgeo.actions import ImageRotations\n"
        "from latentgeo.groups import Cyclic\n"
        "from latentgeo.record import LatentRecorder\n"
        "m = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(36, 3))\n"
        "x = torch.randn(5, 6, 6)\n"
        f"rec = LatentRecorder(m, '1', ImageRotations(Cyclic(4)), x, {str(path)!r})\n"
        "for s in range(4):\n"
        "    rec.record(s)\n"
    )
    repo = Path(__file__).resolve().parents[1]
    env = {"OMP_NUM_THREADS": "1", "PATH": "", "PYTHONPATH": str(repo)}
    subprocess.run([sys.executable, "-c", code], check=True, env=env, cwd=repo)
    run = latentgeo.open_run(path)
    assert run.steps.tolist() == [0, 1, 2, 3] and not run.writer_active
