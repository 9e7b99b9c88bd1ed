"""``analyses=`` of the training callbacks: attribution, irrep ablation and symmetry
discovery at the recorded steps of a real Lightning ``Trainer.fit``, equal to the direct calls
on those steps' weights, written into the run store as the checkpoint-folder path writes them,
their scalars logged with the trainer's loggers at those steps, training unchanged."""

from __future__ import annotations

import copy
import csv
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
        # A SymmetryDiscovery, stored as its to_dataset().
        "symmetry_discovery": functools.partial(
            probes.discover_symmetry, layer="net.fc", algebra="affine2", inputs=probe
        ),
    }


def _expected_scalars(att, abl, disc, step):
    """What the loggers must hold at ``step``: the stored results' scalar summaries."""
    c = att.sel(step=step)
    want = {
        f"latentgeo/attribution/{layer}": float(c.contribution.sel(layer=layer).sum("element"))
        for layer in ATT_LAYERS
    }
    want["latentgeo/attribution/rest"] = float(c.rest.sum("element"))
    want["latentgeo/attribution/total"] = float(c.total.sum("element"))
    a = abl.sel(step=step)
    want["latentgeo/irrep_ablation/loss"] = float(a.loss)
    for irrep in a.irrep.values:
        want[f"latentgeo/irrep_ablation/excluded_loss/{irrep}"] = float(
            a.excluded_loss.sel(irrep=irrep)
        )
    for which in ("invariant", "equivariant"):
        want[f"latentgeo/symmetry_discovery/{which}_dimension"] = float(
            disc[f"{which}_dimension"].sel(step=step)
        )
    return want


def _train(tmp_path, name, analyses, snaps=None, logger=False):
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
    trainer = _trainer(max_epochs=1, callbacks=callbacks, logger=logger)
    _fit(trainer, module, train_dataloaders=_loader())
    return module, action, probe, trainer


def test_attribution_ablation_and_discovery_at_recorded_steps(tmp_path):
    from lightning.pytorch.loggers import CSVLogger

    snaps = WeightSnapshots()
    csv_logger = CSVLogger(str(tmp_path / "logs"), name="", version=0)
    module, action, probe, trainer = _train(
        tmp_path, "run.zarr", _analyses, snaps, logger=csv_logger
    )
    run = latentgeo.open_run(tmp_path / "run.zarr")
    assert list(run.steps) == STEPS
    assert {"attribution", "irrep_ablation", "symmetry_discovery"} <= set(run.analyses())
    att = run.load_analysis("attribution")
    abl = run.load_analysis("irrep_ablation")
    disc = run.load_analysis("symmetry_discovery")
    assert list(att.step.values) == STEPS and list(abl.step.values) == STEPS
    assert list(disc.step.values) == STEPS and disc.attrs["kind"] == "lie_algebra"

    # The logger holds, at each recorded step, the scalar summaries of what the store holds:
    # the same float32 numbers reduced by the same operations, written as Python floats.
    with open(tmp_path / "logs" / "version_0" / "metrics.csv", newline="") as f:
        logged: dict[int, dict[str, float]] = {}
        for row in csv.DictReader(f):
            for key, value in row.items():
                if key.startswith("latentgeo/") and value not in ("", None):
                    logged.setdefault(int(row["step"]), {})[key] = float(value)
    assert sorted(logged) == STEPS
    for s in STEPS:
        assert logged[s] == _expected_scalars(att, abl, disc, s)
    last = {k: v for k, v in trainer.callback_metrics.items() if k.startswith("latentgeo/")}
    assert all(v.dtype == torch.float64 for v in last.values())
    assert {k: float(v) for k, v in last.items()} == _expected_scalars(att, abl, disc, STEPS[-1])
    # Logged scalars of one step are not stored as the next recorded step's metrics.
    assert not any(str(v).startswith("latentgeo") for v in run.metrics.data_vars)
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
        found = probes.discover_symmetry(twin, "net.fc", "affine2", probe)
        for which in ("invariant", "equivariant"):
            sym = getattr(found, which)
            assert int(disc[f"{which}_dimension"].sel(step=s)) == sym.dimension
            assert str(disc[f"{which}_name"].sel(step=s).values) == (sym.name or "")
    # The same training without analyses: identical weights (the probes ran through the
    # protected path: modes, dropout's random stream and buffers untouched).
    plain, _, _, _ = _train(tmp_path, "plain.zarr", None)
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
    # A result of no known kind is stored, not logged; the names own their keys.
    assert kept.drain() == []
    assert kept.owns("latentgeo/flaky/v") and not kept.owns("latentgeo/net.fc/invariance")
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
    # The scalars are in the Trainer's log history at the recorded steps, as stored.
    entries = [e for e in trainer.state.log_history if "latentgeo/attribution/conv" in e]
    assert [e["step"] for e in entries] == [0, 3]
    for e in entries:
        c = att.sel(step=e["step"])
        assert e == {
            "latentgeo/attribution/conv": float(c.contribution.sel(layer="conv").sum("element")),
            "latentgeo/attribution/rest": float(c.rest.sum("element")),
            "latentgeo/attribution/total": float(c.total.sum("element")),
            "step": e["step"],
        }
