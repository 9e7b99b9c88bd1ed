"""``latentgeo analyze`` on a store that holds attribution, irrep-ablation and symmetry-
discovery results over training: the figures, the report sections and the summary entries,
with the stored numbers; a stored result it cannot read is left out with a warning."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import xarray as xr

import latentgeo
import latentgeo.plot
import probes
from latentgeo.actions import ImageRotations, PointCloudRotations
from latentgeo.cli import main
from latentgeo.groups import SO3
from tests.test_ablation import _mse
from tests.test_attribution import LAYERS, _cnn, _images
from tests.test_discovery import NormalisedGram, _clouds


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


class GramWithLeak(torch.nn.Module):
    """The normalised Gram matrix of a point cloud (invariant to rotations and scaling,
    nothing else in gl(3)) plus a linear leak ``p @ w``; with ``w = 0`` exactly so(3) ⊕
    scalings is left, with the seeded generic ``w`` nothing (the zero algebra)."""

    def __init__(self) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(5)
        self.w = torch.nn.Parameter(torch.randn(15, 25, generator=g, dtype=torch.float64))
        self.out = torch.nn.Identity()

    def forward(self, p: torch.Tensor) -> torch.Tensor:
        return self.out(NormalisedGram()(p) + p.flatten(1) @ self.w)


@pytest.fixture(scope="module")
def discovery_run(tmp_path_factory):
    """A real point-cloud store over three checkpoints whose leak is removed at step 10, and
    the discovery over those checkpoints (gl(3) candidate) cached in it."""
    tmp = tmp_path_factory.mktemp("discovery")
    net = GramWithLeak()
    folder = tmp / "ckpt"
    folder.mkdir()
    for step, scale in {0: 1.0, 10: 0.0, 20: 0.0}.items():
        torch.save({"w": net.w.detach() * scale}, folder / f"step={step}.pt")
    x = _clouds()
    action = PointCloudRotations(SO3(), n_elements=12)
    run = latentgeo.record_checkpoints(net, folder, ["out"], action, x, tmp / "run.zarr")
    disc = probes.discovery_over_training(net, folder, "out", "gl3", x, run=run)
    return tmp, run, disc


# 12 sampled rotations support only degree 0 of the harmonic spectrum (a FallbackWarning the
# store's own section states); the discovery does not depend on it.
@pytest.mark.filterwarnings("ignore:the default max_degree")
def test_analyze_reports_the_stored_discovery(discovery_run):
    tmp, run, disc = discovery_run
    # The planted truth: the leak hides every symmetry; without it so(3) ⊕ scalings is both
    # the invariant and (a fortiori) the equivariant subalgebra.
    assert disc.invariant_dimension.values.tolist() == [0, 4, 4]
    assert [str(v) for v in disc.invariant_name.values] == ["zero", *["so(3) ⊕ scalings"] * 2]
    out = tmp / "analysis"
    assert main(["analyze", str(run.path), "--out", str(out), "--no-progress"]) == 0
    s = json.loads((out / "summary.json").read_text(encoding="utf-8"))["symmetry_discovery"]
    assert s["kind"] == "lie_algebra" and s["layer"] == "out"
    assert s["steps"] == [0, 10, 20] and s["final_step"] == 20
    assert s["generators"] == [f"E{i}{j}" for i in range(3) for j in range(3)]
    for which in ("invariant", "equivariant"):
        e = s[which]
        assert e["dimensions"] == disc[f"{which}_dimension"].values.tolist()
        assert e["names"] == [str(v) for v in disc[f"{which}_name"].values]
        assert e["dimension"] == e["dimensions"][-1] and e["name"] == e["names"][-1]
        assert e["dimension_last_changed"] == 10
        sv = disc[f"{which}_singular_values"].sel(step=20).values
        np.testing.assert_allclose(e["singular_values"], sv, rtol=1e-12, atol=0)
        closure = float(disc[f"{which}_closure_error"].sel(step=20))
        assert e["closure_error"] == pytest.approx(closure, rel=1e-12)
    assert s["equivariant"]["name"] == "so(3) ⊕ scalings"

    assert (out / "figures" / "symmetry_discovery.png").is_file()
    html = (out / "report.html").read_text(encoding="utf-8")
    assert "Which symmetry the layer learned" in html
    inv = s["invariant"]
    assert (
        f"it has dimension 4 (so(3) ⊕ scalings), the dimension it has held since step 10; "
        f"scaled singular values at most {inv['singular_values'][3]:.3g} inside, at least "
        f"{inv['singular_values'][4]:.3g} outside"
    ) in html


def test_discovered_symmetry_figure_marks_the_change():
    # Two steps of a finite-group result (no basis): the names where they change, the
    # order axis; a result without steps is refused.
    ds = xr.Dataset(
        {
            "invariant_dimension": ("step", [1, 2, 2]),
            "invariant_name": ("step", np.array(["", "C2", "C2"], dtype=object)),
            "equivariant_dimension": ("step", [4, 4, 8]),
            "equivariant_name": ("step", np.array(["C4", "C4", "D4"], dtype=object)),
        },
        coords={"step": [0, 5, 9]},
        attrs={"kind": "finite", "layer": "fc"},
    )
    fig = latentgeo.plot.discovered_symmetry(ds)
    ax = fig.axes[0]
    assert sorted(t.get_text() for t in ax.texts) == ["C2", "C4", "D4"]
    assert ax.get_ylabel() == "order of the largest respected subgroup"
    assert ax.get_title() == "Which symmetry fc learned"
    with pytest.raises(ValueError, match="'step' dimension"):
        latentgeo.plot.discovered_symmetry(ds.isel(step=0))
    # The summary and the prose of a finite-group result: orders, not dimensions.
    from latentgeo.pipeline._analyze_stored import stored_sections, stored_summary

    summary = stored_summary({"symmetry_discovery": ds})
    s = summary["symmetry_discovery"]
    assert s["kind"] == "finite" and "generators" not in s
    assert s["invariant"]["names"] == [None, "C2", "C2"]
    assert s["invariant"]["dimension_last_changed"] == 5
    assert s["equivariant"]["dimension_last_changed"] == 9
    assert "singular_values" not in s["invariant"]
    (section,) = stored_sections(summary, lambda *names: [])
    assert (
        "its largest respected subgroup has order 8 (D4), the order it has held since step 9"
        in section.text
    )
    same = stored_summary({"symmetry_discovery": ds.isel(step=[1, 2])})["symmetry_discovery"]
    assert same["invariant"]["dimension_last_changed"] is None  # 2, 2: never changed
    with pytest.raises(ValueError, match="equivariant_name"):
        latentgeo.plot.discovered_symmetry(ds.drop_vars("equivariant_name"))


@pytest.mark.filterwarnings("ignore:the default max_degree")
@pytest.mark.parametrize(
    ("damage", "lacks"),
    [
        (lambda d: d.drop_vars("invariant_name"), r"variables \['invariant_name'\]"),
        (
            lambda d: d.assign(equivariant_dimension=("step", [0.0, np.nan, 4.0])),
            "integer equivariant_dimension",
        ),
        (lambda d: d.isel(step=-1).drop_vars("step"), "a 'step' dimension"),
    ],
    ids=["no invariant_name", "NaN dimension", "no steps"],
)
def test_a_malformed_stored_discovery_is_left_out_with_a_warning(discovery_run, damage, lacks):
    from latentgeo.pipeline import analyze

    tmp, run, disc = discovery_run
    run.save_analysis("symmetry_discovery", damage(disc))
    try:
        with pytest.warns(
            UserWarning,
            match=rf"analysis/symmetry_discovery of .* lacks {lacks}.*discovery_over_training",
        ):
            summary = analyze(run.path, tmp / "analysis_bad", progress=False)
        assert "symmetry_discovery" not in summary
        assert "symmetry_discovery" not in summary["figures"]
    finally:
        run.save_analysis("symmetry_discovery", disc)
