"""Tests of the ``latentgeo`` command line: help, info, demo --quick, exit codes."""

from __future__ import annotations

import json
import re

import pytest

torch = pytest.importorskip("torch")

from latentgeo.cli import main  # noqa: E402


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    import latentgeo
    from latentgeo.actions import ImageRotations
    from latentgeo.groups import Cyclic
    from latentgeo.models import SmallCNN

    path = tmp_path_factory.mktemp("cli") / "cnn.zarr"
    x = torch.rand(16, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    with latentgeo.LatentRecorder(
        SmallCNN(width=2, seed=0),
        layers=["conv1", "fc"],
        action=ImageRotations(Cyclic(4)),
        probe_inputs=x,
        store=str(path),
        mode="w",
    ) as rec:
        for step in (0, 5, 20):
            rec.record(step, metrics={"loss": 1.0 / (step + 1)})
    return path


@pytest.mark.parametrize(
    "argv", [["--help"], ["demo", "--help"], ["analyze", "-h"], ["info", "-h"]]
)
def test_help_exits_zero(argv, capsys):
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "usage: latentgeo" in out and "exit codes" in out


def test_usage_errors_exit_two(capsys):
    assert main([]) == 2
    assert main(["frobnicate"]) == 2
    assert main(["demo", "--quick", "--bogus"]) == 2
    assert "usage:" in capsys.readouterr().err


def test_info(store, capsys):
    assert main(["info", str(store)]) == 0
    out = capsys.readouterr().out
    assert re.search(r"group:\s+C4", out)
    assert re.search(r"steps:\s+3 committed \(0, 5, 20\)", out)
    assert "conv1" in out and "fc" in out
    assert "sample=16" in out and "unit=10" in out and "element=4" in out
    assert "loss" in out and "closed" in out


def test_missing_and_corrupt_store(tmp_path, capsys):
    assert main(["info", str(tmp_path / "nope.zarr")]) == 2
    err = capsys.readouterr().err
    assert "no run store" in err and "Traceback" not in err
    bad = tmp_path / "bad.zarr"
    bad.mkdir()
    (bad / "zarr.json").write_text('{"zarr_format": 3, "node_type": "group", "attributes": {}}')
    assert main(["analyze", str(bad), "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert "not a latentgeo run store" in err and "Traceback" not in err


def test_unknown_layer(store, tmp_path, capsys):
    code = main(["analyze", str(store), "--out", str(tmp_path), "--layers", "conv9"])
    assert code == 2
    err = capsys.readouterr().err
    assert "'conv9'" in err and "'conv1'" in err and "Traceback" not in err


def test_bad_device(store, tmp_path, capsys):
    assert main(["analyze", str(store), "--out", str(tmp_path), "--device", "gpu7"]) == 2
    assert "invalid device 'gpu7'" in capsys.readouterr().err
    if not torch.cuda.is_available():
        assert main(["demo", "--quick", "--out", str(tmp_path), "--device", "cuda"]) == 2
        assert "CUDA is not available" in capsys.readouterr().err


def test_store_being_written(tmp_path, capsys):
    import latentgeo
    from latentgeo.actions import ImageRotations
    from latentgeo.groups import Cyclic
    from latentgeo.models import SmallCNN

    path = tmp_path / "live.zarr"
    with latentgeo.LatentRecorder(
        SmallCNN(width=2, seed=0),
        layers=["fc"],
        action=ImageRotations(Cyclic(4)),
        probe_inputs=torch.rand(8, 1, 8, 8),
        store=str(path),
        mode="w",
    ) as rec:
        rec.record(0)
        assert main(["analyze", str(path), "--no-progress"]) == 1
        assert "being written" in capsys.readouterr().err
        assert main(["info", str(path)]) == 0
        assert "ACTIVE" in capsys.readouterr().out


def test_analyze_command(store, tmp_path, capsys):
    out = tmp_path / "analysis"
    assert main(["analyze", str(store), "--out", str(out), "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert "conv1" in text and "report:" in text
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["layers"]) == {"conv1", "fc"}
    assert (out / "report.html").exists()


@pytest.mark.slow
def test_demo_quick(tmp_path, capsys):
    import time

    rng_before = torch.get_rng_state()
    dtype_before = torch.get_default_dtype()
    t0 = time.perf_counter()
    assert main(["demo", "--quick", "--out", str(tmp_path), "--no-progress"]) == 0
    elapsed = time.perf_counter() - t0
    out = capsys.readouterr().out
    # Global torch state untouched (local generators, forked RNG).
    assert torch.equal(torch.get_rng_state(), rng_before)
    assert torch.get_default_dtype() == dtype_before
    assert "report:" in out and "P4CNN" in out and "final R² per layer" in out

    html = (tmp_path / "report.html").read_text()
    images = re.findall(r'<img[^>]+src="([^"]+)"', html)
    assert len(images) >= 4 and all(s.startswith("data:image/png;base64,") for s in images)
    summary = json.loads((tmp_path / "summary.json").read_text())
    models = summary["models"]
    assert set(models) == {"cnn", "cnn_aug", "cnn_flip", "p4cnn"}
    for name, m in models.items():
        assert len(m["layers"]) == 4, name
        assert 0.3 < m["test_accuracy"] <= 1.0, name  # well above chance (0.1)
        for layer, e in m["layers"].items():
            assert -1.0 <= e["r2"] <= 1.0 and 0.0 <= e["invariance"] <= 1.0 + 1e-9, (name, layer)
    p4 = models["p4cnn"]["layers"]
    # The P4CNN's pooled features are exactly equivariant, its logits exactly invariant.
    assert p4["pool"]["r2"] > 0.99
    assert p4["fc"]["invariance"] > 0.999 and p4["fc"]["r2"] > 0.99
    assert p4["fc"]["onset_step"] == 0
    # A P4CNN classifies rotated digits as well as upright ones; a plain CNN does not.
    p4m, cnn = models["p4cnn"], models["cnn"]
    assert abs(p4m["test_accuracy_rotated"] - p4m["test_accuracy"]) < 1e-6
    assert cnn["test_accuracy_rotated"] < cnn["test_accuracy"]
    # Trained with left-right flips and recorded under D4: its logits are invariant to the
    # flip subgroup and not to D4.
    flip = models["cnn_flip"]["layers"]["fc"]
    assert models["cnn_flip"]["group"] == "D4"
    assert flip["subgroups"]["invariant"] == ["C2<s>"]
    assert "Which part of D4 the flip-trained CNN learned" in html
    assert summary["quick"] is True
    # Hard limit of the brief: --quick under 60 s on 2 CPU cores.
    assert summary["wall_time"] < 60.0 and elapsed < 75.0
