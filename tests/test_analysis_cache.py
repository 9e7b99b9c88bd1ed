"""The analysis cache under concurrent analyses: whole or absent, never a mixture.

Processes (``multiprocessing`` spawn) race to write ``analysis/<name>`` of one store while
others read it, on a local folder (``flock``) and on a moto S3 server (the lease object, where
there is no ``flock``).  Every write is a dataset whose every variable and attribute carry its
writer's id; a reader that ever sees two ids in one dataset, or a variable missing, has seen
a partial cache.
"""

from __future__ import annotations

import logging
import multiprocessing
import time
import uuid

import numpy as np
import pytest
import xarray as xr

from latentgeo.store import RunWriter, StoreBusyError, open_run
from latentgeo.store._analysis import WRITE_TOKEN, analysis_lock

META = {"elements": ["e", "r"], "probe": {"n_samples": 3}}
SPECS = {"fc": {"feature_shape": [2], "n_units": 2, "dtype": "float64"}}
N_VARS = 12
ROUNDS = 4


def _make_store(url, options=None):
    with RunWriter(url, meta=META, storage_options=options) as w:
        w.ensure_layers(SPECS)
        w.append(0, {"fc": np.zeros((2, 3, 2))})


def _result(writer: int, round_: int) -> xr.Dataset:
    value = 1000 * writer + round_
    ds = xr.Dataset(
        {f"v{i}": (("layer", "step"), np.full((2, 3), float(value))) for i in range(N_VARS)},
        coords={"layer": ["a", "b"], "step": [0, 1, 2]},
    )
    ds.attrs["cache_key"] = str(value)
    return ds


def _check_whole(ds: xr.Dataset) -> int:
    """The writer's value of a whole result (AssertionError for a mixture)."""
    assert set(ds.data_vars) == {f"v{i}" for i in range(N_VARS)}, sorted(ds.data_vars)
    values = {float(v) for var in ds.data_vars for v in np.ravel(ds[var].values)}
    assert values == {float(ds.attrs["cache_key"])}, (values, ds.attrs)
    assert WRITE_TOKEN not in ds.attrs
    return int(ds.attrs["cache_key"])


def _writer(url, options, writer, start):
    while time.time() < start:
        time.sleep(0.005)
    run = open_run(url, storage_options=options)
    for round_ in range(ROUNDS):
        run.save_analysis("probes", _result(writer, round_))


def _reader(url, options, start, done, queue):
    while time.time() < start:
        time.sleep(0.005)
    run = open_run(url, storage_options=options)
    seen, errors = 0, []
    last = False
    while not last:
        last = done.is_set()  # one more read after the writers finished
        try:
            ds = run.load_analysis("probes")
            if ds is not None:
                _check_whole(ds)
                seen += 1
        except AssertionError as err:
            errors.append(repr(err)[:300])
    queue.put((seen, errors))


def _race(url, options, n_writers=3, n_readers=1):
    ctx = multiprocessing.get_context("spawn")
    start = time.time() + 8.0  # every process imported and waiting when the race starts
    queue, done = ctx.Queue(), ctx.Event()
    writers = [ctx.Process(target=_writer, args=(url, options, w, start)) for w in range(n_writers)]
    readers = [
        ctx.Process(target=_reader, args=(url, options, start, done, queue))
        for _ in range(n_readers)
    ]
    for p in writers + readers:
        p.start()
    for p in writers:
        p.join(timeout=300)
        assert p.exitcode == 0, f"a racing writer failed with exit code {p.exitcode}"
    done.set()
    results = [queue.get(timeout=300) for _ in range(n_readers)]
    for p in readers:
        p.join(timeout=60)
        assert p.exitcode == 0, f"a racing reader failed with exit code {p.exitcode}"
    return results


def _assert_race_left_whole_cache(url, options, results):
    for seen, errors in results:
        assert not errors, errors[:3]
        assert seen > 0  # the reader read whole results while the writers raced
    final = open_run(url, storage_options=options).load_analysis("probes")
    assert final is not None
    assert _check_whole(final) % 1000 == ROUNDS - 1  # some writer's last round


def test_processes_racing_on_a_local_store(tmp_path):
    url = str(tmp_path / "run.zarr")
    _make_store(url)
    results = _race(url, None)
    _assert_race_left_whole_cache(url, None, results)
    assert open_run(url).analyses() == ["probes"]


@pytest.fixture(scope="module")
def s3_options():
    pytest.importorskip("moto.server")
    s3fs = pytest.importorskip("s3fs")
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    options = {"endpoint_url": f"http://{host}:{port}", "key": "testing", "secret": "testing"}
    bucket = f"cache-{uuid.uuid4().hex[:10]}"
    s3fs.S3FileSystem(**options).mkdir(bucket)
    yield options, bucket
    server.stop()


@pytest.mark.slow
def test_processes_racing_on_an_s3_store(s3_options):
    options, bucket = s3_options
    url = f"s3://{bucket}/race.zarr"
    _make_store(url, options)
    results = _race(url, options, n_writers=2)
    _assert_race_left_whole_cache(url, options, results)


def test_a_torn_write_reads_as_no_cache_and_is_replaced(tmp_path):
    url = str(tmp_path / "run.zarr")
    _make_store(url)
    run = open_run(url)
    run.save_analysis("probes", _result(1, 0))
    # A writer killed before its completion mark: the data is there, the token is not.
    torn = _result(2, 0).assign_coords(layer=np.array(["a", "b"], dtype=object))
    torn.to_zarr(url, group="analysis/probes", mode="w", consolidated=False)
    assert run.load_analysis("probes") is None
    run.save_analysis("probes", _result(3, 0))
    assert _check_whole(run.load_analysis("probes")) == 3000


def test_a_writer_waits_for_the_lock_then_reports_a_busy_store(tmp_path):
    url = str(tmp_path / "run.zarr")
    _make_store(url)
    run = open_run(url)
    with analysis_lock(url, timeout=0.0):
        t0 = time.monotonic()
        with pytest.raises(StoreBusyError, match=r"analysis cache .* stayed locked"):
            from latentgeo.store._analysis import save_analysis

            save_analysis(url, None, "probes", _result(1, 0), timeout=0.3)
        assert time.monotonic() - t0 >= 0.3
    run.save_analysis("probes", _result(1, 0))  # free again
    assert _check_whole(run.load_analysis("probes")) == 1000


def test_busy_and_corrupt_store_errors_are_one_class_each():
    from latentgeo import pipeline, store

    assert store.StoreLockedError is store.StoreBusyError is pipeline.StoreBusyError
    assert store.CorruptStoreError is pipeline.CorruptStoreError
    assert issubclass(store.CorruptStoreError, ValueError)
    assert issubclass(store.StoreBusyError, RuntimeError)
