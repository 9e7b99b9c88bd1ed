"""``analyses=`` of the training callbacks: attribution and irrep ablation at the recorded
steps of a real Lightning ``Trainer.fit``, equal to the direct calls on those steps' weights,
written into the run store as the checkpoint-folder path writes them, training unchanged."""

from __future__ import annotations

import copy
import functools

import numpy as np
import pytest
import torch
import xarray as xr
from torch.nn import functional as F

pl = pytest.importorskip("lightning.pytorch")

import latentgeo  # noqa: E402
import probes  # noqa: E402
from latentgeo.actions import ImageRotations  # noqa: E402
from latentgeo.callbacks import LightningRecorder  # noqa: E402
from latentgeo.callbacks._analyses import StepAnalyses  # noqa: E402
from latentgeo.schedules import Explicit  # noqa: E402
from tests.test_callbacks_lightning import (  # noqa: E402
    LAYERS,
    Module,
    WeightSnapshots,
    _fit,
    _loader,
    _trainer,
)

pytestmark = [
    pytest.mark.filterwarnings("ignore:.*LeafSpec"),
    pytest.mark.filterwarnings("ignore:You defined a `validation_step`"),
]

STEPS = [0, 2, 4]
# Feature-map layers: the input's rotation acts on them exactly (no fitted representation).
ATT_LAYERS = ["net.conv", "net.drop"]


def _analyses(action, probe):
    with torch.no_grad():
        targets = torch.zeros(probe.shape[0], dtype=torch.long)
    return {
        "attribution": functools.partial(
            probes.equivariance_attribution, action=action, inputs=probe, layers=ATT_LAYERS
        ),
        "irrep_ablation": functools.partial(
            probes.irrep_ablation,
            layer="net.conv",
            action=action,
            inputs=probe,
            targets=targets,
            loss_fn=F.cross_entropy,
        ),
    }


def _train(tmp_path, name, analyses, snaps=None):
    action = ImageRotations("C4")
    probe = torch.randn(8, 1, 6, 6, generator=torch.Generator().manual_seed(5))
    rec = LightningRecorder(
        LAYERS,
        action,
        probe,
        tmp_path / name,
        schedule=Explicit(STEPS),
        analyses=None if analyses is None else analyses(action, probe),
    )
    torch.manual_seed(0)
    module = Module()  # dropout: training's random stream must not move
    callbacks = [rec] + ([snaps] if snaps is not None else [])
    _fit(_trainer(max_epochs=1, callbacks=callbacks), module, train_dataloaders=_loader())
    return module, action, probe


def test_attribution_and_ablation_at_recorded_steps(tmp_path):
    snaps = WeightSnapshots()
    module, action, probe = _train(tmp_path, "run.zarr", _analyses, snaps)
    run = latentgeo.open_run(tmp_path / "run.zarr")
    assert list(run.steps) == STEPS
    assert {"attribution", "irrep_ablation"} <= set(run.analyses())
    att = run.load_analysis("attribution")
    abl = run.load_analysis("irrep_ablation")
    assert list(att.step.values) == STEPS and list(abl.step.values) == STEPS
    twin = copy.deepcopy(module)
    for s in STEPS:
        twin.load_state_dict(snaps.weights[s])
        direct = probes.equivariance_attribution(twin, action, probe, ATT_LAYERS)
        # Same float32 operations on the same weights: equal to float32 round-off.
        np.testing.assert_allclose(
            att.contribution.sel(step=s).values, direct.contribution.values, rtol=1e-5, atol=1e-7
        )
        # The sum law holds at every stored step: n + 2 float32 terms, each a difference of
        # errors of size <= scale, sum to within a few float32 eps (1.2e-7) of scale.
        c = att.sel(step=s)
        law = c.contribution.sum("layer") + c.rest - c.total
        scale = max(float(np.abs(c.error_equivariant).max()), float(np.abs(c.total).max()))
        assert float(np.abs(law).max()) <= 1e-6 * scale
        assert float(c.total.max()) > 1e-3  # the untrained CNN is not rotation invariant
        direct = probes.irrep_ablation(
            twin, "net.conv", action, probe, torch.zeros(8, dtype=torch.long), F.cross_entropy
        )
        np.testing.assert_allclose(
            abl.excluded_loss.sel(step=s).values, direct.excluded_loss.values, rtol=1e-5
        )
    # The same training without analyses: identical weights (the probes ran through the
    # protected path: modes, dropout's random stream and buffers untouched).
    plain, _, _ = _train(tmp_path, "plain.zarr", None)
    for k, v in plain.state_dict().items():
        torch.testing.assert_close(module.state_dict()[k], v, rtol=0, atol=0)


def test_an_analysis_failing_first_stops_later_failures_warn():
    calls = []

    def flaky(model):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("planted")
        return xr.Dataset({"v": ((), float(len(calls)))})

    kept = StepAnalyses({"flaky": flaky})
    kept.run(torch.nn.Linear(1, 1), 0)
    with pytest.warns(UserWarning, match=r"analysis 'flaky' failed at step 3"):
        kept.run(torch.nn.Linear(1, 1), 3)
    kept.run(torch.nn.Linear(1, 1), 5)
    assert [s for s, _ in kept._results["flaky"]] == [0, 5]
    with pytest.raises(RuntimeError, match="planted"):
        StepAnalyses({"bad": lambda m: (_ for _ in ()).throw(RuntimeError("planted"))}).run(
            torch.nn.Linear(1, 1), 0
        )
    with pytest.raises(TypeError, match=r"xarray\.Dataset"):
        StepAnalyses({"bad": lambda m: 1.0}).run(torch.nn.Linear(1, 1), 0)
    with pytest.raises(ValueError, match="without '/'"):
        StepAnalyses({"a/b": flaky})
    with pytest.raises(TypeError, match="callable"):
        StepAnalyses({"a": 3})


def test_stack_steps_keeps_a_resumed_runs_earlier_steps():
    one = [xr.Dataset({"v": ("layer", [float(s), 1.0])}) for s in (0, 2, 4)]
    first = probes.stack_steps(one, [0, 2, 4])
    later = probes.stack_steps([xr.Dataset({"v": ("layer", [9.0, 9.0])})], [4], previous=first)
    assert list(later.step.values) == [0, 2, 4]
    assert later.v.sel(step=4).values.tolist() == [9.0, 9.0]  # the new step 4 replaces
    with pytest.raises(ValueError, match="strictly increasing"):
        probes.stack_steps(one, [0, 4, 2])
    with pytest.raises(ValueError, match="3 results but 2 steps"):
        probes.stack_steps(one, [0, 2])


def test_hf_trainer_attribution_at_recorded_steps(tmp_path):
    pytest.importorskip("transformers")
    pytest.importorskip("accelerate")
    from latentgeo.callbacks import HFRecorder
    from tests.test_callbacks_hf import WeightSnapshots as HFSnapshots
    from tests.test_callbacks_hf import _train as hf_train

    action = ImageRotations("C4")
    probe = torch.randn(6, 1, 6, 6, generator=torch.Generator().manual_seed(5))
    attribution = functools.partial(
        probes.equivariance_attribution,
        action=action,
        inputs=probe,
        layers=["conv"],
        select="logits",
    )
    rec = HFRecorder(
        ["conv", "fc"],
        action,
        probe,
        tmp_path / "hf.zarr",
        schedule=Explicit([0, 3]),
        analyses={"attribution": attribution},
    )
    snaps = HFSnapshots()
    trainer = hf_train(tmp_path, [rec, snaps], num_train_epochs=1)
    att = latentgeo.open_run(tmp_path / "hf.zarr").load_analysis("attribution")
    assert list(att.step.values) == [0, 3]
    twin = copy.deepcopy(trainer.model)
    for s in (0, 3):
        twin.load_state_dict(snaps.weights[s])
        direct = attribution(twin)
        np.testing.assert_allclose(
            att.contribution.sel(step=s).values, direct.contribution.values, rtol=1e-5, atol=1e-7
        )
