"""Run stores on object storage, for real: a moto S3 server on 127.0.0.1, reached through s3fs.

Recording, reading with plain ``xarray.open_zarr``, the analysis cache (``probes.run``),
resuming after a SIGKILLed writer, and the lease that keeps a second writer out where there is
no ``flock``.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

pytest.importorskip("moto.server")
pytest.importorskip("s3fs")

import latentgeo

# A real server over HTTP: each request costs milliseconds, so these are integration tests.
pytestmark = pytest.mark.slow
from latentgeo.store import RunWriter, StoreLockedError, open_run  # noqa: E402

META = {"elements": ["e", "r"], "probe": {"n_samples": 5}}
SPECS = {"fc": {"feature_shape": [3], "n_units": 3, "dtype": "float64"}}


def _latents(step: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(step)
    return {"fc": rng.standard_normal((2, 5, 3))}


@pytest.fixture(scope="module")
def s3_server():
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def s3(s3_server):
    """A fresh bucket: (url of a store in it, storage_options)."""
    import s3fs

    options = {"endpoint_url": s3_server, "key": "testing", "secret": "testing"}
    bucket = f"latentgeo-{uuid.uuid4().hex[:12]}"
    s3fs.S3FileSystem(**options).mkdir(bucket)
    return f"s3://{bucket}/run.zarr", options


def _write(url, options, steps, **kwargs):
    with RunWriter(url, meta=META, storage_options=options, **kwargs) as w:
        w.ensure_layers(SPECS)
        for s in steps:
            w.append(s, _latents(s), metrics={"loss": float(s)})


def test_write_and_read_back_with_plain_xarray(s3):
    url, options = s3
    _write(url, options, [0, 3, 7])
    run = open_run(url, storage_options=options)
    assert run.committed_steps == 3 and run.steps.tolist() == [0, 3, 7]
    for i, s in enumerate([0, 3, 7]):
        np.testing.assert_array_equal(run.latents("fc")[i].values, _latents(s)["fc"])
    # Plain xarray, no latentgeo: the same arrays, through the consolidated metadata.
    ds = xr.open_zarr(url, storage_options=options)
    assert ds["fc"].dims == ("step", "element", "sample", "fc/unit")
    np.testing.assert_array_equal(ds["fc"].values[1], _latents(3)["fc"])
    np.testing.assert_array_equal(ds["loss"].values, [0.0, 3.0, 7.0])
    # The writer's lease is gone once it closed: no live writer, nothing beside the store.
    assert not run.writer_active
    import s3fs

    fs = s3fs.S3FileSystem(**options)
    assert not fs.exists(url.removeprefix("s3://") + ".lease")


def test_a_second_writer_is_refused_while_the_lease_lives(s3):
    url, options = s3
    first = RunWriter(url, meta=META, storage_options=options, lease_ttl=1.5)
    try:
        first.ensure_layers(SPECS)
        first.append(0, _latents(0))
        assert open_run(url, storage_options=options).writer_active
        t0 = time.monotonic()
        with pytest.raises(StoreLockedError, match="another writer"):
            RunWriter(url, mode="a", meta=META, storage_options=options, lock_timeout=0.3)
        assert time.monotonic() - t0 < 5
        # Renewal keeps the lease alive well past its ttl while the writer lives.
        time.sleep(3.5)
        with pytest.raises(StoreLockedError, match="another writer"):
            RunWriter(url, mode="a", meta=META, storage_options=options, lock_timeout=0.0)
        first.append(1, _latents(1))
    finally:
        first.close()
    # Released at close: the next writer gets it at once.
    with RunWriter(url, mode="a", meta=META, storage_options=options, lock_timeout=0.0) as w:
        assert w.steps == [0, 1]


def test_a_writer_that_lost_its_lease_writes_nothing(s3):
    import s3fs

    url, options = s3
    w = RunWriter(url, meta=META, storage_options=options, lease_ttl=30.0)
    try:
        w.ensure_layers(SPECS)
        w.append(0, _latents(0))
        # Another writer took the store over (e.g. after a clock jump expired the lease).
        fs = s3fs.S3FileSystem(**options)
        fs.pipe_file(url.removeprefix("s3://") + ".lease", b'{"owner": "x", "expires": 1e12}')
        with pytest.raises(StoreLockedError, match="lost its lease"):
            w.append(1, _latents(1))
    finally:
        w.close(consolidate_metadata=False)
    assert open_run(url, storage_options=options).steps.tolist() == [0]


def test_two_writers_racing_for_a_free_store_one_wins(s3):
    # Taking the lease is an exclusive create (If-None-Match: *): of writers racing for the
    # same free store, exactly one gets it, however their requests interleave.
    import threading

    from latentgeo.store._lease import StoreLease

    url, options = s3
    for _ in range(3):
        leases = [StoreLease(url, options, ttl=30.0) for _ in range(4)]
        start = threading.Barrier(len(leases))
        won = [False] * len(leases)

        def take(i, leases=leases, start=start, won=won):
            start.wait()
            won[i] = leases[i].acquire(timeout=0.0)

        threads = [threading.Thread(target=take, args=(i,)) for i in range(len(leases))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sum(won) == 1, won
        winner = leases[won.index(True)]
        assert winner.read()["owner"] == winner.owner
        winner.release()
        assert winner.read() is None


_KILLED_WRITER = """
import sys, time
import numpy as np
from latentgeo.store import RunWriter
url, endpoint = sys.argv[1], sys.argv[2]
options = {"endpoint_url": endpoint, "key": "testing", "secret": "testing"}
w = RunWriter(url, mode="a", meta={"elements": ["e", "r"], "probe": {"n_samples": 5}},
              storage_options=options, lease_ttl=6.0)
w.ensure_layers({"fc": {"feature_shape": [3], "n_units": 3, "dtype": "float64"}})
step = w.last_step + 1 if w.last_step is not None else 0
while True:
    w.append(step, {"fc": np.random.default_rng(step).standard_normal((2, 5, 3))},
             metrics={"loss": float(step)})
    print(step, flush=True)
    step += 1
"""


def test_resume_after_a_killed_writer(s3, s3_server, tmp_path):
    url, options = s3
    script = tmp_path / "writer.py"
    script.write_text(_KILLED_WRITER)
    env = {**os.environ, "PYTHONPATH": str(Path(latentgeo.__file__).parents[1])}
    proc = subprocess.Popen(
        [sys.executable, str(script), url, s3_server], stdout=subprocess.PIPE, text=True, env=env
    )
    assert proc.stdout is not None
    for _ in range(3):
        assert proc.stdout.readline(), "the writer died before committing"
    time.sleep(0.1)  # land somewhere in the next checkpoint's writes
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    # The killed writer's lease lives on until it expires: a writer that does not wait is
    # refused, and readers see the store as being written.
    with pytest.raises(StoreLockedError, match="another writer"):
        RunWriter(url, mode="a", meta=META, storage_options=options, lock_timeout=0.0)
    run = open_run(url, storage_options=options)
    assert run.writer_active
    # Readers see a consistent prefix of complete checkpoints.
    n = run.committed_steps
    assert n >= 3
    assert run.steps.tolist() == list(range(n))
    for s in range(n):
        np.testing.assert_array_equal(run.latents("fc")[s].values, _latents(s)["fc"])
    # A writer that waits longer than the ttl takes the expired lease and resumes.
    with RunWriter(url, mode="a", meta=META, storage_options=options, lock_timeout=30.0) as w:
        resumed = w.committed_steps
        w.ensure_layers(SPECS)
        for s in range(resumed, resumed + 2):
            w.append(s, _latents(s), metrics={"loss": float(s)})
    final = list(range(resumed + 2))
    run = open_run(url, storage_options=options)
    assert run.steps.tolist() == final and not run.writer_active
    ds = xr.open_zarr(url, storage_options=options)  # no torn step for plain readers either
    assert ds.sizes["step"] == len(final)
    for s in final:
        np.testing.assert_array_equal(ds["fc"].values[s], _latents(s)["fc"])
    np.testing.assert_array_equal(ds["loss"].values, np.asarray(final, dtype=float))


def test_record_and_probe_cache_on_s3_match_a_local_store(s3, tmp_path):
    import torch
    from torch import nn

    import probes
    from latentgeo.actions import ImageRotations
    from latentgeo.groups import Cyclic

    url, options = s3
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(36, 6), nn.ReLU(), nn.Linear(6, 4))
    x = torch.randn(16, 6, 6, generator=torch.Generator().manual_seed(1))
    action = ImageRotations(Cyclic(4))
    for store, extra in ((url, {"storage_options": options}), (tmp_path / "l.zarr", {})):
        with latentgeo.LatentRecorder(model, ["1", "3"], action, x, store, **extra) as rec:
            for step in (0, 5):
                rec.record(step)
    remote = open_run(url, storage_options=options)
    local = open_run(tmp_path / "l.zarr")
    assert remote.layers == local.layers == ["1", "3"]
    xr.testing.assert_equal(remote.latents("1").load(), local.latents("1").load())
    # The analysis cache: computed and stored on S3, then read back from it.
    fresh = probes.run(remote, progress=False)
    assert remote.analyses() == ["probes"]
    cached = probes.run(open_run(url, storage_options=options), progress=False)
    xr.testing.assert_identical(cached, fresh)
    xr.testing.assert_allclose(fresh, probes.run(local, progress=False), rtol=1e-10)
    # Plain xarray sees the cached group (the closed store's metadata was reconsolidated).
    plain = xr.open_zarr(url, group="analysis/probes", storage_options=options)
    assert "r2" in plain.data_vars
