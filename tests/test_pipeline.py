"""Tests of latentgeo.pipeline (analyze, info, store errors) and the HTML report writer."""

from __future__ import annotations

import base64
import json
import re

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from latentgeo._report import Section, figure_to_png_base64, render_report, write_report  # noqa: E402

STEPS = [0, 1, 3, 8]


def _record_store(path, model, layers, steps=STEPS, n_probe=48, seed=0):
    """Record a tiny run with the real recorder: a few Adam steps on digits."""
    import latentgeo
    from latentgeo.actions import ImageRotations
    from latentgeo.datasets import digits
    from latentgeo.groups import Cyclic

    x, y = digits("train", seed=seed)
    xp, yp = digits("test", seed=seed)
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    with latentgeo.LatentRecorder(
        model,
        layers=layers,
        action=ImageRotations(Cyclic(4)),
        probe_inputs=xp[:n_probe],
        labels=yp[:n_probe],
        store=str(path),
        mode="w",
    ) as rec:
        for step in range(max(steps) + 1):
            loss = torch.tensor(float("nan"))
            idx = torch.randint(0, len(y), (32,), generator=gen)
            if step in steps:
                rec.record(step, metrics={"loss": float(loss)})
            loss = torch.nn.functional.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return path


@pytest.fixture(scope="module")
def p4_store(tmp_path_factory):
    from latentgeo.models import P4CNN

    path = tmp_path_factory.mktemp("stores") / "p4.zarr"
    return _record_store(path, P4CNN(width=2, seed=0), ["lift", "pool", "fc"])


@pytest.fixture(scope="module")
def p4_analysis(p4_store, tmp_path_factory):
    from latentgeo.pipeline import analyze

    out = tmp_path_factory.mktemp("analysis")
    return analyze(p4_store, out, progress=False), out


# -- HTML report ---------------------------------------------------------------------------


def _figure():
    from matplotlib.figure import Figure

    fig = Figure(figsize=(2, 2))
    fig.add_subplot().plot([0, 1], [1, 0])
    return fig


def test_report_embeds_png_and_is_self_contained(tmp_path):
    fig = _figure()
    path = write_report(
        tmp_path / "r" / "report.html",
        "A <b>title</b> & more",
        [
            Section("Figures", text="para one\n\npara two", figures=[("cap <x>", fig)]),
            Section("Table", table=[{"layer": "fc", "r2": 0.98765, "onset": None}]),
        ],
    )
    text = path.read_text()
    # Every image is an inline data URI holding a real PNG; nothing is fetched from outside.
    uris = re.findall(r'src="([^"]+)"', text)
    assert len(uris) == 1 and uris[0].startswith("data:image/png;base64,")
    png = base64.b64decode(uris[0].split(",", 1)[1])
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    assert "http://" not in text and "https://" not in text and "<script" not in text
    # User text is escaped, numbers formatted, None shown as a dash.
    assert "A &lt;b&gt;title&lt;/b&gt; &amp; more" in text and "<b>title" not in text
    assert "cap &lt;x&gt;" in text and "0.988" in text and "–" in text
    assert text.count("<p>") >= 2
    assert not (tmp_path / "r" / "report.html.partial").exists()


def test_report_errors(tmp_path):
    with pytest.raises(ValueError, match=r"report\.txt"):
        write_report(tmp_path / "report.txt", "t", [])
    with pytest.raises(TypeError, match="Section"):
        render_report("t", ["not a section"])
    with pytest.raises(TypeError, match="int"):
        figure_to_png_base64(3)
    with pytest.raises(ValueError, match="PNG"):
        figure_to_png_base64(b"GIF89a...")
    assert base64.b64decode(figure_to_png_base64(_figure())).startswith(b"\x89PNG")


# -- store errors ----------------------------------------------------------------------------


def test_open_store_errors(tmp_path, p4_store):
    from latentgeo.pipeline import CorruptStoreError, UsageError, check_layers, open_store

    with pytest.raises(UsageError, match="does not exist"):
        open_store(tmp_path / "missing.zarr")
    bad = tmp_path / "bad.zarr"
    bad.mkdir()
    (bad / "zarr.json").write_text("{ not json")
    with pytest.raises(CorruptStoreError, match=r"bad\.zarr"):
        open_store(bad)
    afile = tmp_path / "file.zarr"
    afile.write_text("x")
    with pytest.raises(CorruptStoreError, match="file"):
        open_store(afile)
    run = open_store(p4_store)
    with pytest.raises(UsageError, match=r"'gconv9'.*'lift'"):
        check_layers(run, ["gconv9"])
    assert check_layers(run, None) == ["lift", "pool", "fc"]


def test_store_being_written_is_refused(tmp_path):
    import latentgeo
    from latentgeo.actions import ImageRotations
    from latentgeo.groups import Cyclic
    from latentgeo.models import SmallCNN
    from latentgeo.pipeline import StoreBusyError, info, open_store

    x = torch.rand(8, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    path = tmp_path / "busy.zarr"
    with latentgeo.LatentRecorder(
        SmallCNN(width=2, seed=0),
        layers=["fc"],
        action=ImageRotations(Cyclic(4)),
        probe_inputs=x,
        store=str(path),
        mode="w",
    ) as rec:
        rec.record(0)
        with pytest.raises(StoreBusyError, match="being written"):
            open_store(path)
        assert info(path)["writer_active"] is True  # info still describes a live store
    assert open_store(path).layers == ["fc"]  # closed: readable
    assert info(path)["writer_active"] is False


# -- info ------------------------------------------------------------------------------------


def test_info_describes_store(p4_store):
    from latentgeo.pipeline import format_info, info

    d = info(p4_store)
    assert d["group"] == "C4"
    assert d["steps"] == STEPS and d["committed_steps"] == len(STEPS)
    assert list(d["layers"]) == ["lift", "pool", "fc"]
    fc = d["layers"]["fc"]
    assert fc["shape"] == {"step": len(STEPS), "element": 4, "sample": 48, "unit": 10}
    assert d["n_samples"] == 48
    total = sum(f.stat().st_size for f in p4_store.rglob("*") if f.is_file())
    assert d["size_bytes"] == total > 0
    text = format_info(d)
    assert "C4" in text and "fc" in text and "unit=10" in text
    json.dumps(d)  # JSON-serialisable


# -- analyze ---------------------------------------------------------------------------------


def test_analyze_outputs(p4_analysis):
    summary, out = p4_analysis
    assert set(summary["layers"]) == {"lift", "pool", "fc"}
    assert summary["group"] == "C4" and summary["steps"] == STEPS
    on_disk = json.loads((out / "summary.json").read_text())
    assert on_disk["layers"] == json.loads(json.dumps(summary["layers"]))
    for path in summary["figures"].values():
        with open(path, "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") == len(summary["figures"])
    for layer, e in summary["layers"].items():
        assert -1.0 <= e["r2"] <= 1.0, layer
        assert 0.0 <= e["invariance"] <= 1.0 + 1e-12, layer
        np.testing.assert_allclose(sum(e["spectrum"].values()), 1.0, rtol=1e-6)
        assert e["path_length"] >= 0.0 and e["tortuosity"] >= 1.0 - 1e-9


def test_analyze_finds_exact_symmetry_of_p4cnn(p4_analysis):
    """A P4CNN is exactly C4-equivariant at every step: its logits are invariant and the
    rotation-pooled features are permuted, so the probes must report it from step 0."""
    summary, _ = p4_analysis
    fc, pool = summary["layers"]["fc"], summary["layers"]["pool"]
    # float32 latents: invariance to float32 rounding of the conv sums.
    assert fc["invariance"] == pytest.approx(1.0, abs=1e-5)
    assert fc["r2"] > 0.99 and pool["r2"] > 0.99
    assert fc["onset_step"] == STEPS[0] and pool["onset_step"] == STEPS[0]
    assert fc["r2"] > fc["null_r2"] + 0.5


def test_analyze_summary_matches_probe_results(p4_store, p4_analysis):
    import latentgeo
    from latentgeo.plot import mean_r2

    summary, _ = p4_analysis
    cached = latentgeo.open_run(p4_store).load_analysis("probes")
    assert cached is not None  # probes cached in the store
    final = mean_r2(cached).isel(step=-1)
    for layer, e in summary["layers"].items():
        np.testing.assert_allclose(e["r2"], float(final.sel(layer=layer)), rtol=1e-12)


def test_analyze_reuses_cached_geometry(p4_store, p4_analysis, monkeypatch):
    import trajectories
    from latentgeo.pipeline import analyze_run, open_store

    summary, _ = p4_analysis

    def boom(*args, **kwargs):
        raise AssertionError("geometry recomputed although cached in the store")

    monkeypatch.setattr(trajectories, "subspace", boom)
    again = analyze_run(open_store(p4_store), progress=False, layers=["fc", "lift"])
    assert again.layers == ["fc", "lift"]
    assert list(again.geometry["layer"].values) == ["fc", "lift"]
    for layer in ("fc", "lift"):
        assert again.summary["layers"][layer] == summary["layers"][layer]


def test_figure_formats_checked_before_work(p4_store, tmp_path, monkeypatch):
    import probes
    from latentgeo.pipeline import UsageError, analyze

    monkeypatch.setattr(probes, "run", lambda *a, **k: pytest.fail("probed before the check"))
    with pytest.raises(UsageError, match="'jpg'"):
        analyze(p4_store, tmp_path, formats=["png", "jpg"], progress=False)


def test_analyze_unknown_layer(p4_store, tmp_path):
    from latentgeo.pipeline import UsageError, analyze

    with pytest.raises(UsageError, match="'conv1'"):
        analyze(p4_store, tmp_path, layers=["conv1"], progress=False)


def test_checkpoint_steps_log_spaced():
    from latentgeo.pipeline import checkpoint_steps
    from latentgeo.plot import is_log_spaced

    steps = checkpoint_steps(1000, 12)
    assert steps[0] == 0 and steps[-1] == 1000
    assert np.all(np.diff(steps) > 0) and is_log_spaced(steps)
    with pytest.raises(ValueError, match="total"):
        checkpoint_steps(0, 5)


def test_geometry_cache_key_holds_its_settings(p4_store, p4_analysis, tmp_path, monkeypatch):
    # The geometry cache is reused only under the same key (subspace size rule, metric,
    # version): a changed rule recomputes instead of returning the old subspaces' distances.
    import shutil

    import trajectories
    from latentgeo.pipeline import _analyze_compute as compute
    from latentgeo.pipeline import analyze_run, open_store

    copy = tmp_path / "copy.zarr"
    shutil.copytree(p4_store, copy)
    cached = open_store(copy).load_analysis("geometry")
    assert cached.attrs["cache_key"] == compute.geometry_cache_key()
    calls = []
    real = trajectories.subspace

    def counting(run, layer, k, **kwargs):
        calls.append(k)
        return real(run, layer, k, **kwargs)

    monkeypatch.setattr(trajectories, "subspace", counting)
    analyze_run(open_store(copy), progress=False, layers=["fc"])
    assert calls == []  # same key: reused
    monkeypatch.setattr(compute, "SUBSPACE_K", 2)
    again = analyze_run(open_store(copy), progress=False, layers=["fc"])
    assert calls == [2] and int(again.geometry["k"].sel(layer="fc")) == 2
    assert again.geometry.attrs["cache_key"] == compute.geometry_cache_key()
