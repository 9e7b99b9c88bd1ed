"""Run store: schema, commit protocol, resume, stale files, locking, readers, analysis cache."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import warnings

import numpy as np
import pytest
import xarray as xr
import zarr

from latentgeo.store import RunWriter, StoreLockedError, open_run

ELEMENTS = ["e", "r", "r2", "r3"]
N = 5
META = {"group": "C4", "elements": ELEMENTS, "probe": {"n_samples": N}}
SPECS = {
    "conv": {"feature_shape": [2, 3, 3], "n_units": 18, "dtype": "float32", "reducer": "flatten"},
    "fc": {"feature_shape": [3], "n_units": 3, "dtype": "float64", "reducer": "flatten"},
}


def _latents(step: int) -> dict[str, np.ndarray]:
    # Deterministic, step-dependent contents: a reader can check any step it sees.
    rng = np.random.default_rng(step)
    return {
        "conv": rng.standard_normal((4, N, 18)).astype(np.float32),
        "fc": rng.standard_normal((4, N, 3)),
    }


def _write(path, steps, mode="w-", metrics=None):
    with RunWriter(path, mode, meta=META) as w:
        w.ensure_layers(SPECS)
        for s in steps:
            w.append(s, _latents(s), epoch=s // 10, metrics=(metrics or {}).get(s))
    return path


def _check_contents(run, steps):
    np.testing.assert_array_equal(run.steps, steps)
    for layer in ("conv", "fc"):
        lat = run.latents(layer)
        assert lat.dims == ("step", "element", "sample", "unit")
        assert list(lat.coords["element"].values) == ELEMENTS
        for i, s in enumerate(steps):
            np.testing.assert_array_equal(lat.isel(step=i).values, _latents(s)[layer])


def test_roundtrip_schema_and_metrics(tmp_path):
    path = tmp_path / "run.zarr"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # writing and reading emit no zarr/xarray warning
        with RunWriter(path, meta=META) as w:
            w.ensure_layers(SPECS)
            w.write_probe(np.arange(N * 2.0).reshape(N, 2), np.arange(N))
            w.append(0, _latents(0), epoch=0)
            w.append(5, _latents(5), epoch=0, metrics={"loss": 0.5})
            w.append(9, _latents(9), epoch=1, metrics={"loss": 0.25, "acc": 1.0})
        run = open_run(path)
        _check_contents(run, [0, 5, 9])
        assert run.layers == ["conv", "fc"]
        assert run.feature_shape("conv") == (2, 3, 3)
        assert run.latents("fc").dtype == np.float64 and run.latents("conv").dtype == np.float32
        m = run.metrics
        np.testing.assert_array_equal(m["epoch"].values, [0, 0, 1])
        np.testing.assert_array_equal(m["loss"].values, [np.nan, 0.5, 0.25])
        np.testing.assert_array_equal(m["acc"].values, [np.nan, np.nan, 1.0])
        assert np.all(np.diff(m["wall_time"].values) >= 0)
        np.testing.assert_array_equal(run.nonfinite.values, np.zeros((3, 2)))
        np.testing.assert_array_equal(run.inputs.values, np.arange(N * 2.0).reshape(N, 2))
        np.testing.assert_array_equal(run.labels.values, np.arange(N))
        ds = run.dataset
        assert ds["conv"].dims == ("step", "element", "sample", "conv/unit")
        assert ds.attrs["latentgeo"]["committed_steps"] == 3
    # one checkpoint per chunk along step, and consolidated metadata after close
    g = zarr.open_group(path, mode="r")
    assert g["conv"].chunks[0] == 1 and g["step"].chunks == (1,)
    assert g.metadata.consolidated_metadata is not None


def test_plain_xarray_opens_store_without_latentgeo(tmp_path):
    path = _write(tmp_path / "run.zarr", [0, 3])
    code = (
        "import sys, json, xarray\n"
        f"ds = xarray.open_zarr({str(path)!r})\n"
        "assert not any(m.startswith('latentgeo') for m in sys.modules), 'latentgeo imported'\n"
        "print(json.dumps({'steps': ds['step'].values.tolist(), 'dims': list(ds['fc'].dims),"
        " 'sum': float(ds['fc'].sum()), 'committed': ds.attrs['latentgeo']['committed_steps']}))\n"
    )
    env = {**os.environ, "PYTHONPATH": "", "OMP_NUM_THREADS": "1"}
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        check=True,
    )
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["steps"] == [0, 3] and got["committed"] == 2
    assert got["dims"] == ["step", "element", "sample", "fc/unit"]
    assert got["sum"] == pytest.approx(float(_latents(0)["fc"].sum() + _latents(3)["fc"].sum()))


def test_modes(tmp_path):
    path = _write(tmp_path / "run.zarr", [0, 1])
    with pytest.raises(FileExistsError, match="already exists"):
        RunWriter(path, "w-", meta=META)
    with pytest.raises(ValueError, match="mode"):
        RunWriter(path, "x", meta=META)
    # "a" resumes and appends; "w" starts over
    _write(path, [4], mode="a")
    _check_contents(open_run(path), [0, 1, 4])
    _write(path, [7], mode="w")
    _check_contents(open_run(path), [7])


def test_resume_refuses_a_different_run(tmp_path):
    path = _write(tmp_path / "run.zarr", [0])
    with pytest.raises(ValueError, match="another probe set"):
        RunWriter(path, "a", meta={**META, "probe": {"n_samples": N + 1}})
    with RunWriter(path, "a", meta=META) as w:
        other = {"fc": SPECS["fc"]}
        with pytest.raises(ValueError, match="different layers"):
            w.ensure_layers(other)
        w.ensure_layers(SPECS)
        with pytest.raises(ValueError, match="not after the last committed step 0"):
            w.append(0, _latents(0))
    zarr.open_group(tmp_path / "plain.zarr", mode="w")
    with pytest.raises(ValueError, match="not a latentgeo run store"):
        RunWriter(tmp_path / "plain.zarr", "a", meta=META)


def test_bad_input_is_rejected(tmp_path):
    with RunWriter(tmp_path / "run.zarr", meta=META) as w:
        with pytest.raises(ValueError, match="reserved"):
            w.ensure_layers({"step": SPECS["fc"]})
        with pytest.raises(ValueError, match="'a/b'"):
            w.ensure_layers({"a/b": SPECS["fc"]})
        with pytest.raises(ValueError, match="'int8'"):
            w.ensure_layers({"fc": {**SPECS["fc"], "dtype": "int8"}})
        w.ensure_layers(SPECS)
        bad = _latents(0)
        bad["fc"] = bad["fc"][:, :2]
        with pytest.raises(ValueError, match=r"shape \(4, 5, 3\)"):
            w.append(0, bad)
        with pytest.raises(ValueError, match="exactly the layers"):
            w.append(0, {"fc": _latents(0)["fc"]})
        with pytest.raises(ValueError, match="collides"):
            w.append(0, _latents(0), metrics={"fc": 1.0})
        assert w.committed_steps == 0  # nothing committed by the failed calls
    with pytest.raises(ValueError, match="meta must hold"):
        RunWriter(tmp_path / "other.zarr", meta={"elements": ELEMENTS})
    with pytest.raises(TypeError, match="store must be"):
        RunWriter(12, meta=META)


def _torn_checkpoint(path, step):
    """Grow every per-step array by one and write garbage, as a writer killed before its
    commit would (the root attrs still say the old committed_steps)."""
    g = zarr.open_group(path, mode="r+", use_consolidated=False)
    for _name, arr in g.arrays():
        if (arr.metadata.dimension_names or ("",))[0] == "step":
            arr.resize((arr.shape[0] + 1, *arr.shape[1:]))
    n = g["step"].shape[0]
    g["step"][n - 1] = step
    g["fc"][n - 1] = np.full((4, N, 3), 1e30)


def test_uncommitted_tail_is_invisible_and_discarded_on_resume(tmp_path):
    path = _write(tmp_path / "run.zarr", [0, 2])
    _torn_checkpoint(path, 3)
    run = open_run(path)
    _check_contents(run, [0, 2])  # the reader sees only the committed prefix
    assert run.dataset.sizes["step"] == 2
    with RunWriter(path, "a", meta=META) as w:
        assert w.steps == [0, 2] and w.last_step == 2
        w.ensure_layers(SPECS)
        w.append(3, _latents(3))
    _check_contents(open_run(path), [0, 2, 3])  # step 3 written once, garbage gone
    assert xr.open_zarr(path)["fc"].sizes["step"] == 3


def test_orphan_chunks_past_the_shape_are_removed_on_resume(tmp_path):
    # A writer killed after writing chunks of step 2 but before growing the arrays.
    path = _write(tmp_path / "run.zarr", [0, 5])
    g = zarr.open_group(path, mode="r+", use_consolidated=False)
    g["fc"].resize((3, 4, N, 3))
    g["fc"][2] = np.full((4, N, 3), 7.0)
    g["step"].resize((3,))
    g["step"][2] = 9
    g["fc"].resize((2, 4, N, 3))  # as if the grow never landed: put chunks back by hand
    g["step"].resize((2,))
    (path / "fc" / "c" / "2" / "0" / "0").mkdir(parents=True, exist_ok=True)
    (path / "fc" / "c" / "2" / "0" / "0" / "0").write_bytes(b"\0" * 8)
    (path / "step" / "c" / "2").write_bytes(b"\0" * 8)
    _check_contents(open_run(path), [0, 5])
    with RunWriter(path, "a", meta=META) as w:
        assert not [p for p in (path / "fc" / "c" / "2").rglob("*") if p.is_file()]
        assert not (path / "step" / "c" / "2").exists()
        assert (path / "fc" / "c" / "1").exists()
        w.ensure_layers(SPECS)
        w.append(6, _latents(6))
    _check_contents(open_run(path), [0, 5, 6])


def test_stale_partial_files_are_cleaned_by_writers_never_by_readers(tmp_path):
    path = _write(tmp_path / "run.zarr", [0])
    stale = [path / "zarr.0123abcd.partial", path / "fc" / "c" / "1.deadbeef.partial"]
    for f in stale:
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_bytes(b"torn")
    with RunWriter(path, "a", meta=META) as w:
        assert not any(f.exists() for f in stale)  # the writer cleans on open
        live = path / "fc" / "c" / "2.cafef00d.partial"
        live.parent.mkdir(parents=True, exist_ok=True)
        live.write_bytes(b"in flight")
        open_run(path)  # a reader must not remove a live writer's temporary file
        assert live.exists()
        w.ensure_layers(SPECS)
    open_run(path)  # a reader is read-only: it ignores temporary files, removes none
    assert live.exists()
    _check_contents(open_run(path), [0])
    RunWriter(path, "a", meta=META).close()  # the next writer cleans them under its lock
    assert not live.exists()
    _check_contents(open_run(path), [0])


def test_single_writer_lock(tmp_path):
    path = tmp_path / "run.zarr"
    with RunWriter(path, meta=META):
        assert open_run(path).writer_active
        with pytest.raises(StoreLockedError, match="another writer"):
            RunWriter(path, "a", meta=META, lock_timeout=0.0)
        with pytest.raises(StoreLockedError):
            RunWriter(path, "w", meta=META, lock_timeout=0.0)
    RunWriter(path, "a", meta=META).close()  # released on close
    assert not open_run(path).writer_active


def test_reader_sees_consistent_prefix_while_writer_appends(tmp_path):
    path = tmp_path / "run.zarr"
    steps = list(range(0, 45, 3))
    writer = RunWriter(path, meta=META)
    writer.ensure_layers(SPECS)
    errors: list[BaseException] = []

    def append_all():
        try:
            for s in steps:
                writer.append(s, _latents(s), metrics={"loss": float(s)})
        except BaseException as err:  # pragma: no cover - reported below
            errors.append(err)

    t = threading.Thread(target=append_all)
    t.start()
    seen = []
    while t.is_alive() or not seen or len(seen[-1]) < len(steps):
        run = open_run(path)
        k = run.committed_steps
        # every committed step is complete and correct, and nothing else is visible
        np.testing.assert_array_equal(run.steps, steps[:k])
        if k:
            np.testing.assert_array_equal(
                run.latents("fc").isel(step=-1).values, _latents(steps[k - 1])["fc"]
            )
            np.testing.assert_array_equal(run.metrics["loss"].values, np.asarray(steps[:k], float))
        seen.append(list(run.steps))
        if not t.is_alive() and k == len(steps):
            break
    t.join()
    writer.close()
    assert not errors
    assert len({len(s) for s in seen}) > 2  # the reader really overlapped the writer


def test_nonfinite_counts(tmp_path):
    path = tmp_path / "run.zarr"
    with RunWriter(path, meta=META) as w:
        w.ensure_layers(SPECS)
        lat = _latents(0)
        lat["fc"][0, 0, :2] = np.nan
        lat["fc"][1, 2, 0] = np.inf
        w.append(0, lat)
    run = open_run(path)
    np.testing.assert_array_equal(run.nonfinite.sel(layer="fc").values, [3])
    np.testing.assert_array_equal(run.nonfinite.sel(layer="conv").values, [0])
    assert np.isnan(run.latents("fc").values[0, 0, 0, :2]).all()  # NaN stays NaN


def test_analysis_cache(tmp_path):
    path = _write(tmp_path / "run.zarr", [0, 1])
    run = open_run(path)
    assert run.load_analysis("probes") is None and run.analyses() == []
    ds = xr.Dataset(
        {"r2": (("layer", "step", "irrep"), np.arange(8.0).reshape(2, 2, 2))},
        coords={"layer": ["conv", "fc"], "step": [0, 1], "irrep": ["A", "E"]},
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        run.save_analysis("probes", ds)
        back = run.load_analysis("probes")
    xr.testing.assert_equal(back.astype(float), ds)
    assert [str(v) for v in back["irrep"].values] == ["A", "E"]
    run.save_analysis("probes", ds * 2)  # overwrite
    xr.testing.assert_equal(run.load_analysis("probes"), ds * 2)
    loaded = xr.open_zarr(path, group="analysis/probes")  # carries zarr encodings
    encoding = dict(loaded["r2"].encoding)
    run.save_analysis("copy", loaded)
    assert loaded["r2"].encoding == encoding  # the caller's dataset is left alone
    xr.testing.assert_equal(run.load_analysis("copy"), ds * 2)
    assert open_run(path).analyses() == ["copy", "probes"]
    # consolidated metadata stays in sync: plain zarr sees the cached group
    assert "analysis" in dict(zarr.open_group(path, mode="r").groups())
    xr.open_zarr(path)  # the root dataset still opens
    with pytest.raises(ValueError, match="analysis name"):
        run.save_analysis("../x", ds)
    with pytest.raises(TypeError, match=r"xarray\.Dataset"):
        run.save_analysis("probes", ds["r2"])


def test_fsspec_url_roundtrip():
    url = f"memory://latentgeo-test-{time.time_ns()}.zarr"
    _write(url, [0, 1])
    _check_contents(open_run(url), [0, 1])


def test_open_run_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no run store"):
        open_run(tmp_path / "missing.zarr")
    run = open_run(_write(tmp_path / "run.zarr", [0]))
    with pytest.raises(KeyError, match="'nope'"):
        run.latents("nope")


@pytest.mark.parametrize("compressors", [None, "auto"])
def test_chunk_layout_and_both_write_paths(tmp_path, monkeypatch, compressors):
    # Small chunks: 2 samples of 18 float32 units per chunk, so 5 samples leave an edge chunk
    # that must be padded exactly as zarr pads it.  None takes the raw path, "auto" zarr's.
    import latentgeo.store._writer as writer_module

    monkeypatch.setattr(writer_module, "_CHUNK_BYTES", 2 * 18 * 4)
    path = tmp_path / f"run-{compressors}.zarr"
    with RunWriter(path, meta=META, compressors=compressors) as w:
        w.ensure_layers(SPECS)
        for s in (0, 1):
            w.append(s, _latents(s), metrics={"loss": s + 0.5})
    g = zarr.open_group(path, mode="r")
    assert g["conv"].chunks == (1, 1, 2, 18)
    assert g["conv"].nchunks_initialized == 2 * 4 * 3
    for s in (0, 1):  # read back through zarr itself, not latentgeo
        np.testing.assert_array_equal(g["conv"][s], _latents(s)["conv"])
        np.testing.assert_array_equal(g["fc"][s], _latents(s)["fc"])
    np.testing.assert_array_equal(g["loss"][:], [0.5, 1.5])
    np.testing.assert_array_equal(g["step"][:], [0, 1])


def test_count_nonfinite():
    from latentgeo.store._writer import count_nonfinite

    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 4, 5)).astype(np.float32)
    assert count_nonfinite(x) == 0
    x[0, 1, 2], x[2, 3, 4], x[1, 0, 0] = np.nan, np.inf, -np.inf
    assert count_nonfinite(x) == 3
    big = np.full(10, np.finfo(np.float64).max)  # the sum overflows, the entries are finite
    assert count_nonfinite(big) == 0
    y = np.ones((2, 3), np.float64)
    y[1, 0], y[1, 2] = np.inf, -np.inf  # the row sum is NaN, the count is exact
    assert count_nonfinite(y) == 2
    half = np.ones(7, np.float16)
    half[3] = np.nan
    assert count_nonfinite(half) == 1
    assert count_nonfinite(np.float32(np.nan).reshape(())) == 1
    assert count_nonfinite(np.arange(4)) == 0


def test_store_import_is_light():
    code = (
        "import sys, latentgeo.store, latentgeo.schedules\n"
        "heavy = [m for m in ('zarr', 'xarray', 'dask', 'torch') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=os.getcwd())


def test_element_values_roundtrip_resume_and_legacy(tmp_path):
    # Finite subset (indices) and continuous values (rotation matrices) both round-trip.
    rots = np.stack(
        [np.eye(3)]
        + [np.linalg.qr(np.random.default_rng(i).normal(size=(3, 3)))[0] for i in range(3)]
    )
    for values in (np.array([0, 3, 1, 2]), rots):
        path = tmp_path / f"ev{values.ndim}.zarr"
        with RunWriter(path, meta=META) as w:
            w.write_element_values(values)
            w.ensure_layers(SPECS)
            w.append(0, _latents(0))
        run = open_run(path)
        np.testing.assert_array_equal(run.element_values, values)
        assert run.element_values.dtype == (np.int64 if values.ndim == 1 else np.float64)
        ds = xr.open_zarr(path)  # plain xarray sees it along the element axis
        np.testing.assert_array_equal(ds["element_values"].values, values)
        assert ds["element_values"].dims[0] == "element"
        assert "element_values" in run.dataset
        # A resumed writer given other element values is refused, the same values accepted.
        with RunWriter(path, "a", meta=META) as w:
            w.write_element_values(values)
            with pytest.raises(ValueError, match="other element values"):
                w.write_element_values(values[::-1].copy())
    with RunWriter(tmp_path / "bad.zarr", meta=META) as w:
        with pytest.raises(ValueError, match="n_elements=4"):
            w.write_element_values(np.arange(3))
        with pytest.raises(TypeError, match="numeric"):
            w.write_element_values(np.array(list("abcd")))
    # A store written without the array (older writers) reads as the element indices.
    legacy = _write(tmp_path / "legacy.zarr", [0])
    np.testing.assert_array_equal(open_run(legacy).element_values, np.arange(4))
