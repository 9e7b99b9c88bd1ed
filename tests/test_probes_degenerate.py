"""Failure isolation in ``probes.run``: a degenerate (layer, step) block never costs the others.

Degenerate kinds: a dead layer (all-zero latents, a ReLU after a huge negative bias), constant
non-zero latents (zero variance over elements and samples), non-finite values, and a layer
with one unit.  Each appears at one step of one layer of a D3 store; every probe kind is run
on it, in process and through a client.  The degenerate block gets defined values or NaN and
one warning naming its layer and step; every other block equals a run that never saw it.
"""

from __future__ import annotations

import concurrent.futures
import re
import warnings

import numpy as np
import pytest

import probes
from latentgeo.datasets.planted import planted_latents
from latentgeo.groups import Dihedral
from latentgeo.store import RunWriter

G = Dihedral(3)
STEPS = [0, 1, 2]
BAD_STEP = 1
N = 40
KINDS = [
    "linear",
    "spectrum",
    "invariance",
    "homomorphism",
    "characters",
    "consistent",
    "rho",
    "subgroups",
]
DEGENERATE = ["dead", "constant", "nonfinite"]
# Small estimator settings: the same for every run compared, so the numbers are comparable.
LINEAR = {"n_null": 2, "n_bootstrap": 10}


def _degenerate(kind: str, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    if kind == "dead":
        return np.zeros(shape)
    if kind == "constant":
        return np.broadcast_to(rng.standard_normal(shape[-1]), shape).copy()
    Z = rng.standard_normal(shape)
    Z[1, 3, 0] = np.nan
    Z[2, 0, 1] = np.inf
    return Z


def _store(path, kind: str):
    meta = {"elements": list(G.elements), "group": G.spec, "probe": {"n_samples": N}}
    rng = np.random.default_rng(0)
    with RunWriter(path, meta=meta) as w:
        w.ensure_layers(
            {
                "ok": {"feature_shape": [3], "n_units": 3, "dtype": "float64"},
                "deg": {"feature_shape": [3], "n_units": 3, "dtype": "float64"},
                "one": {"feature_shape": [1], "n_units": 1, "dtype": "float64"},
            }
        )
        for step in STEPS:
            ok = planted_latents(G, {"A1": 1, "E1": 1}, N, 0.1, seed=step).Z
            deg = planted_latents(G, {"A2": 1, "E1": 1}, N, 0.1, seed=step + 10).Z
            if step == BAD_STEP:
                deg = _degenerate(kind, deg.shape, rng)
            one = planted_latents(G, {"A2": 1}, N, 0.1, seed=step + 20).Z
            w.append(step, {"ok": ok, "deg": deg, "one": one})
    return path


@pytest.fixture(scope="module", params=DEGENERATE)
def store(request, tmp_path_factory):
    kind = request.param
    return kind, _store(tmp_path_factory.mktemp(kind) / "run.zarr", kind)


def _run(path, kind, **kw):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ds = probes.run(path, probes=(kind,), cache=False, progress=False, linear=LINEAR, **kw)
    return ds, [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]


def _close(a, b) -> None:
    # Same computation on the same block, one process: identical up to float64 rounding.
    np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12, equal_nan=True)


@pytest.mark.parametrize("kind", KINDS)
def test_degenerate_block_is_isolated(store, kind):
    degenerate, path = store
    ds, messages = _run(path, kind)
    clean, _ = _run(path, kind, steps=[s for s in STEPS if s != BAD_STEP])
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        pooled, pooled_messages = _run(path, kind, client=pool)
    # Every block is there; the ones that never saw the degenerate block are unchanged.
    for var in clean.data_vars:
        for layer in ("ok", "deg", "one"):
            for step in clean["step"].values:
                _close(ds[var].sel(layer=layer, step=step), clean[var].sel(layer=layer, step=step))
        _close(ds[var], pooled[var])  # the client gives the same numbers and the same NaNs
    bad = ds.sel(layer="deg", step=BAD_STEP)
    if degenerate == "nonfinite":
        assert int(bad["nonfinite"]) == 2
        assert all(np.isnan(bad[v]).all() for v in ds.data_vars if v != "nonfinite")
        assert any("('deg', 1)" in m for m in messages), messages
    else:
        if "invariance" in ds:  # constant latents: no variance to lose, defined as 1
            assert float(bad["invariance"]) == 1.0
        for v in ds.data_vars:  # defined or NaN: never a made-up number outside the range
            values = np.asarray(bad[v], dtype=float)
            assert np.isnan(values).all() or np.isfinite(values).all(), v
    # One warning per degenerate block at most, naming its layer and step.
    for layer in ("ok", "deg", "one"):
        for step in STEPS:
            named = [m for m in messages if f"layer {layer!r}, step {step}:" in m]
            assert len(named) <= 1, named
    assert not [m for m in messages if "layer 'ok'" in m]
    assert sorted(messages) == sorted(pooled_messages)
    for m in messages:
        if "degenerate" in m:
            assert re.search(r"layer '(deg|one)', step \d+: degenerate latents", m), m


def test_homomorphism_of_a_dead_layer_is_nan_with_one_warning(tmp_path):
    path = _store(tmp_path / "dead.zarr", "dead")
    ds, messages = _run(path, "homomorphism")
    assert np.isnan(float(ds["homomorphism_error"].sel(layer="deg", step=BAD_STEP)))
    assert np.isfinite(ds["homomorphism_error"].sel(layer="ok")).all()
    named = [m for m in messages if "layer 'deg', step 1:" in m]
    assert len(named) == 1 and "homomorphism" in named[0] and "zero matrix" in named[0]
