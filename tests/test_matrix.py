"""Every kind of store through every entry point.

Store kinds (rows): a finite whole orbit (D4 on images), an element subset of D4 (with a
named subgroup, and without), a user-registered group whose spec starts like a built-in's
(``Dic3()``, the dicyclic group of order 12, next to the built-in dihedral ``D3``), SO(2) image
angles, SO(3) and O(3) point clouds.

Entry points (columns): in-process ``probes.run`` (the reference), ``latentgeo analyze``
(the report with the sections that apply), live metrics (``LiveProbes``), ``probes.run``
with a dask client of worker *processes*, and a store on a real S3-compatible server (moto).

Each cell gives the numbers in-process ``probes.run`` gives (to the computation dtype's
tolerance: float64 here), or is refused at construction or call with a message naming why.
Nothing is accepted and then dropped.
"""

from __future__ import annotations

import functools
import json
import logging
import sys
import uuid
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import latentgeo
import probes
from latentgeo.actions import (
    ElementSubset,
    ImageRotationAngles,
    ImageRotations,
    PointCloudRotations,
)
from latentgeo.groups import O3, SO3, Dihedral
from latentgeo.pipeline._analyze_plan import plan_analysis

# float64 results of the same computation on the same latents: only summation order may
# differ between processes/threads (none does here), so the dtype's rounding level.
RTOL, ATOL = 1e-10, 1e-12
STEPS = (0, 1)


# The user's group (Dic3(), next to the built-in dihedral D3) lives in a module of its own, as
# in a user's package: worker processes import it to rebuild the group (it registers itself).
sys.path.insert(0, str(Path(__file__).parent))
from _user_dicyclic import Dic3, RegularShift  # noqa: E402


@pytest.fixture(scope="module")
def _registered():
    return Dic3


# -- the stores ---------------------------------------------------------------------------


@dataclass
class Store:
    """One recorded store kind and what the in-process reference gives for it."""

    path: Path
    kwargs: dict[str, Any]  # the probes.run arguments that apply to this kind
    live: Any = None
    refused: dict[str, str] = field(default_factory=dict)  # probe kind -> message pattern


def _model(kind: str) -> torch.nn.Module:
    torch.manual_seed(0)
    if kind == "image":
        return torch.nn.Sequential(
            torch.nn.Conv2d(1, 2, 3, padding=1),
            torch.nn.Tanh(),
            torch.nn.Flatten(),
            torch.nn.Linear(2 * 36, 3),
        )
    if kind == "cloud":
        return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 4), torch.nn.Tanh())
    return torch.nn.Sequential(torch.nn.Linear(12, 4), torch.nn.Tanh(), torch.nn.Linear(4, 3))


KINDS = {
    "d4_orbit": lambda: (ImageRotations(Dihedral(4)), "image", ["1", "3"]),
    "d4_subset_named": lambda: (
        ElementSubset(ImageRotations(Dihedral(4)), n_elements=5, seed=0),
        "image",
        ["1", "3"],
    ),
    "d4_subset": lambda: (
        ElementSubset(ImageRotations(Dihedral(4)), n_elements=5, seed=0),
        "image",
        ["1", "3"],
    ),
    "dic3_user": lambda: (RegularShift(), "vector", ["1", "2"]),
    "so2_angles": lambda: (ImageRotationAngles(8, group="SO2"), "image", ["1", "3"]),
    "so3_cloud": lambda: (PointCloudRotations(SO3(), n_elements=12), "cloud", ["1", "2"]),
    "o3_cloud": lambda: (PointCloudRotations(O3(), n_elements=12), "cloud", ["1", "2"]),
}
SUBSET = ("d4_subset_named", "d4_subset")
CONTINUOUS = ("so2_angles", "so3_cloud", "o3_cloud")


def _inputs(kind: str) -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    shape = {"image": (16, 1, 6, 6), "cloud": (16, 4, 3), "vector": (16, 12)}[kind]
    return torch.randn(shape, generator=g, dtype=torch.float32)


@pytest.fixture(scope="module")
def stores(tmp_path_factory, _registered) -> dict[str, Store]:
    from probes import LiveProbes

    root = tmp_path_factory.mktemp("matrix")
    out: dict[str, Store] = {}
    for name, make in KINDS.items():
        action, kind, layers = make()
        model = _model(kind)
        path = root / f"{name}.zarr"
        # The live spectrum of a subset orbit is refused when the recorder binds it (a
        # "refused" cell, test_live_spectrum_of_a_subset_is_refused); invariance and r2 are
        # accepted there.
        kinds = ("invariance", "r2") if name in SUBSET else ("invariance", "spectrum", "r2")
        live = LiveProbes(kinds, r2_samples=16)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with latentgeo.LatentRecorder(
                model, layers, action, _inputs(kind), path, schedule=list(STEPS), live=live
            ) as rec:
                for s in STEPS:
                    with torch.no_grad():
                        for p in model.parameters():
                            p.add_(0.2 * torch.randn_like(p))
                    rec.record(s)
        live.caught = [str(w.message) for w in caught]  # type: ignore[attr-defined]
        run = latentgeo.open_run(path)
        plan = plan_analysis(run)
        kwargs: dict[str, Any] = {"probes": tuple(plan.probes)}
        if name == "d4_subset_named":
            kwargs["subgroup"] = plan.subgroup
            assert plan.subgroup is not None
        if name == "d4_subset":
            kwargs["probes"] = ("linear", "invariance")
        if name == "d4_orbit":
            # consistent: its interval (consistent_r2_low/high) goes through every column too.
            kwargs["probes"] = ("linear", "spectrum", "invariance", "homomorphism", "consistent")
        refused = {}
        if name in CONTINUOUS:
            refused = {
                kind: "need a finite group" for kind in ("homomorphism", "characters", "consistent")
            }
        out[name] = Store(path, kwargs, live, refused)
    return out


@pytest.fixture(scope="module")
def reference(stores) -> dict[str, Any]:
    """In-process ``probes.run`` of every store kind (the numbers every cell must give)."""
    return {
        name: probes.run(str(s.path), cache=False, progress=False, **s.kwargs)
        for name, s in stores.items()
    }


def _assert_same(got, want) -> None:
    assert set(got.data_vars) == set(want.data_vars)
    for var in want.data_vars:
        np.testing.assert_allclose(
            np.asarray(got[var].values, dtype=np.float64),
            np.asarray(want[var].values, dtype=np.float64),
            rtol=RTOL,
            atol=ATOL,
            err_msg=var,
        )
    for dim in want.dims:
        assert list(got[dim].values) == list(want[dim].values), dim


# -- column 1: in-process probes.run ------------------------------------------------------


@pytest.mark.parametrize("name", list(KINDS))
def test_in_process_probes_run(stores, reference, name):
    s, ref = stores[name], reference[name]
    assert ref.sizes["layer"] == 2 and ref.sizes["step"] == len(STEPS)
    assert int(ref["nonfinite"].sum()) == 0
    assert np.isfinite(ref["invariance"].values).all()
    r2 = ref["r2"].values
    assert np.isfinite(r2).all() and (r2 <= 1 + 1e-12).all()
    for var in ("r2", "consistent_r2"):  # every printed R² comes with its interval
        if var in ref:
            lo, hi = ref[f"{var}_low"].values, ref[f"{var}_high"].values
            assert np.isfinite(lo).all() and (lo <= ref[var].values).all()
            assert (ref[var].values <= hi).all()
    if "spectrum" in ref:  # shares of the orbit variance: in [0, 1], summing to 1
        spec = ref["spectrum"].values
        assert (spec >= -1e-12).all()
        np.testing.assert_allclose(spec.sum(-1), 1.0, rtol=1e-10)
    if name in SUBSET:
        assert ref.sizes["element"] == 5
    for kind, why in s.refused.items():
        with pytest.raises(ValueError, match=why):
            probes.run(str(s.path), probes=(kind,), cache=False, progress=False)


def test_named_subgroup_spectrum_is_the_subgroups(stores, reference):
    ref = reference["d4_subset_named"]
    sub = stores["d4_subset_named"].kwargs["subgroup"]
    assert ref.sizes["irrep"] == len(sub)  # an abelian subgroup: one irrep per element
    assert "spectrum" not in reference["d4_subset"]


def test_user_group_spec_sharing_a_builtin_prefix_round_trips(stores):
    run = latentgeo.open_run(stores["dic3_user"].path)
    assert run.attrs["group"] == "Dic3()"
    assert isinstance(run.group, Dic3) and run.group.order == 12


# -- column 2: latentgeo analyze ----------------------------------------------------------


# One subset store: analyze names the largest recorded subgroup itself (the d4_subset row's
# store is the d4_subset_named row's).
@pytest.mark.parametrize("name", [n for n in KINDS if n != "d4_subset_named"])
def test_analyze(stores, reference, name, tmp_path):
    from latentgeo import pipeline

    s, ref = stores[name], reference[name]
    summary = pipeline.analyze(s.path, tmp_path / "out", progress=False)
    report = (tmp_path / "out" / "report.html").read_text()
    assert json.loads((tmp_path / "out" / "summary.json").read_text())["layers"]
    last = ref.isel(step=-1)
    for layer, entry in summary["layers"].items():
        np.testing.assert_allclose(
            entry["invariance"], float(last["invariance"].sel(layer=layer)), rtol=RTOL
        )
        if name not in SUBSET:
            spec = last["spectrum"].sel(layer=layer)
            got = [entry["spectrum"][str(k)] for k in ref["irrep"].values]
            np.testing.assert_allclose(got, spec.values, rtol=RTOL, atol=ATOL)
    omitted = summary["omitted"]
    if name in CONTINUOUS:
        assert {"homomorphism error", "orbit figure", "rho heat maps"} <= set(omitted)
        assert "continuous" in omitted["homomorphism error"]
        assert "spectra" in summary["figures"] and "orbits" not in summary["figures"]
    elif name in SUBSET:
        assert "needs every element" in omitted["homomorphism error"]
        assert "spectra" in summary["figures"] and summary["spectrum_group"]
    else:
        assert {"orbits", "spectra", "homomorphism_error"} <= set(summary["figures"])
    for why in omitted.values():  # each omission is explained in the report
        assert why.split(":")[0] in report


# -- column 3: live metrics ---------------------------------------------------------------


@pytest.mark.parametrize("name", list(KINDS))
def test_live_metrics(stores, reference, name):
    s, ref = stores[name], reference[name]
    history = dict(s.live.history)
    assert sorted(history) == list(STEPS), s.live.caught
    for step in STEPS:
        metrics = history[step]
        for layer in ref["layer"].values:
            at = ref.sel(layer=layer, step=step)
            key = f"{s.live.prefix}/{layer}"
            np.testing.assert_allclose(
                metrics[f"{key}/invariance"], float(at["invariance"]), rtol=1e-5, atol=1e-6
            )
            if "spectrum" in ref and "spectrum" in s.live.probes:
                for irrep in ref["irrep"].values:
                    np.testing.assert_allclose(
                        metrics[f"{key}/spectrum/{irrep}"],
                        float(at["spectrum"].sel(irrep=irrep)),
                        rtol=1e-5,
                        atol=1e-6,
                    )


def test_live_spectrum_of_a_subset_is_refused(tmp_path):
    from probes import LiveProbes

    action, kind, layers = KINDS["d4_subset"]()
    with pytest.raises(ValueError, match="needs the orbit of a finite group or of a subgroup"):
        with latentgeo.LatentRecorder(
            _model(kind),
            layers,
            action,
            _inputs(kind),
            tmp_path / "x.zarr",
            live=LiveProbes(("spectrum",)),
        ) as rec:
            rec.record(0)


# -- column 4: probes.run with a dask client of worker processes --------------------------


@pytest.fixture(scope="module")
def dask_client(tmp_path_factory):
    distributed = pytest.importorskip("distributed")
    import dask

    with dask.config.set({"temporary-directory": str(tmp_path_factory.mktemp("dask"))}):
        cluster = distributed.LocalCluster(
            processes=True, n_workers=2, threads_per_worker=1, dashboard_address=None
        )
        client = distributed.Client(cluster)
        # The user's group module is importable on the workers, as a user's package would be.
        here = str(Path(__file__).parent)
        client.run(functools.partial(exec, f"import sys; sys.path.insert(0, {here!r})"))
        yield client
        client.close()
        cluster.close()


@pytest.mark.slow
@pytest.mark.parametrize("name", list(KINDS))
def test_dask_worker_processes(stores, reference, dask_client, name):
    s = stores[name]
    got = probes.run(str(s.path), cache=False, progress=False, client=dask_client, **s.kwargs)
    _assert_same(got, reference[name])
    for kind, why in s.refused.items():  # refused before any task is sent
        with pytest.raises(ValueError, match=why):
            probes.run(str(s.path), probes=(kind,), cache=False, client=dask_client)


# -- column 5: a store on an S3-compatible server (moto) ----------------------------------


@pytest.fixture(scope="module")
def s3_stores(stores):
    """Every store copied into a bucket of one moto server: {name: (url, options)}."""
    pytest.importorskip("moto.server")
    s3fs = pytest.importorskip("s3fs")
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    options = {"endpoint_url": f"http://{host}:{port}", "key": "testing", "secret": "testing"}
    fs = s3fs.S3FileSystem(**options)
    bucket = f"matrix-{uuid.uuid4().hex[:10]}"
    fs.mkdir(bucket)
    urls = {}
    for name, s in stores.items():
        fs.put(str(s.path), f"{bucket}/{name}.zarr", recursive=True)
        urls[name] = (f"s3://{bucket}/{name}.zarr", options)
    yield urls
    server.stop()


@pytest.mark.slow
@pytest.mark.parametrize("name", list(KINDS))
def test_store_on_s3(stores, reference, s3_stores, name):
    s = stores[name]
    url, options = s3_stores[name]
    run = latentgeo.open_run(url, storage_options=options)
    _assert_same(probes.run(run, progress=False, **s.kwargs), reference[name])  # cache written
    _assert_same(probes.run(run, progress=False, **s.kwargs), reference[name])  # cache read
    assert run.load_analysis("probes") is not None
    for kind, why in s.refused.items():
        with pytest.raises(ValueError, match=why):
            probes.run(run, probes=(kind,), cache=False)


@pytest.mark.slow
def test_s3_store_through_worker_processes_keeps_its_storage_options(
    stores, reference, s3_stores, dask_client
):
    """The workers open the S3 store with the caller's endpoint and keys, not their own."""
    import concurrent.futures

    name = "so3_cloud"
    url, options = s3_stores[name]
    run = latentgeo.open_run(url, storage_options=options)
    kw = dict(stores[name].kwargs, cache=False, progress=False)
    _assert_same(probes.run(run, client=dask_client, **kw), reference[name])
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        _assert_same(probes.run(run, client=pool, **kw), reference[name])
    assert options["secret"] not in repr(run.open_spec())  # credentials travel, unprinted
