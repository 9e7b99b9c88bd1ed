"""``latentgeo analyze`` on a store that holds attribution and irrep-ablation results over
training: the figures, the report sections and the summary entries, with the stored numbers."""

from __future__ import annotations

import json

import pytest
import torch

import latentgeo
import probes
from latentgeo.actions import ImageRotations
from latentgeo.cli import main
from tests.test_ablation import _mse
from tests.test_attribution import LAYERS, _cnn, _images


@pytest.fixture(scope="module")
def stored_run(tmp_path_factory):
    """A real store: a CNN whose position bias (layer "2") grows over three checkpoints,
    recorded offline, with the attribution and the irrep ablation over those checkpoints."""
    tmp = tmp_path_factory.mktemp("stored")
    net = _cnn("bias")
    folder = tmp / "ckpt"
    folder.mkdir()
    for step, scale in {0: 0.0, 10: 0.5, 20: 1.0}.items():
        state = {k: v.clone() for k, v in net.state_dict().items()}
        state["2.pos"] = state["2.pos"] * scale
        torch.save(state, folder / f"step={step}.pt")
    action = ImageRotations("C4")
    x = _images()
    run = latentgeo.record_checkpoints(net, folder, ["3", "5"], action, x, tmp / "run.zarr")
    att = probes.attribution_over_training(net, folder, action, x, LAYERS, run=run)
    with torch.no_grad():
        target = net(x)
    abl = probes.ablation_over_training(net, folder, "3", action, x, target, _mse, run=run)
    return tmp, run, att, abl


def test_analyze_reports_the_stored_attribution_and_ablation(stored_run, capsys):
    tmp, run, att, abl = stored_run
    assert {"attribution", "irrep_ablation"} <= set(run.analyses())
    out = tmp / "analysis"
    assert main(["analyze", str(run.path), "--out", str(out), "--no-progress"]) == 0
    summary = json.loads((out / "summary.json").read_text())

    s = summary["attribution"]
    assert s["steps"] == [0, 10, 20] and s["final_step"] == 20
    final = att.contribution.sum("element").sel(step=20)
    for layer in LAYERS:
        assert s["contribution"][layer] == pytest.approx(float(final.sel(layer=layer)), rel=1e-12)
    assert s["largest"] == "2"  # the planted layer
    total = float(att.total.sum("element").sel(step=20))
    assert s["total"] == pytest.approx(total, rel=1e-12)
    # The sum law survives the store round trip and the summary (float64 round-off).
    assert sum(s["contribution"].values()) + s["rest"] == pytest.approx(total, rel=1e-12)

    a = summary["irrep_ablation"]
    assert a["layer"] == "3" and a["final_step"] == 20
    assert set(a["irreps"]) == {str(r) for r in abl.irrep.values}
    for r, v in a["irreps"].items():
        assert v["excluded_loss"] == pytest.approx(
            float(abl.excluded_loss.sel(step=20, irrep=r)), rel=1e-12
        )
    assert a["loss"] == pytest.approx(float(abl.loss.sel(step=20)), rel=1e-12, abs=1e-300)

    assert (out / "figures" / "attribution.png").is_file()
    assert (out / "figures" / "irrep_losses.png").is_file()
    html = (out / "report.html").read_text()
    assert "Where the equivariance error comes from" in html
    assert "What each irrep does for the loss" in html
    assert "largest contribution is 2&#x27;s" in html or "largest contribution is 2's" in html


def test_a_stored_result_it_cannot_draw_is_left_out_with_a_warning(stored_run):
    from latentgeo.pipeline import analyze

    tmp, run, att, _ = stored_run
    # A result under the name without steps: left out, the rest of the report written.
    run.save_analysis("attribution", att.isel(step=-1).drop_vars("step"))
    try:
        with pytest.warns(UserWarning, match=r"analysis/attribution of .* lacks a 'step'"):
            summary = analyze(run.path, tmp / "analysis2", progress=False)
        assert "attribution" not in summary and "irrep_ablation" in summary
        assert "attribution" not in summary["figures"] and "irrep_losses" in summary["figures"]
    finally:
        run.save_analysis("attribution", att)
