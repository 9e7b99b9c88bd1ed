"""probes.run over real run stores: results, cache reuse, streaming, clients, bad names."""

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch

import probes
import probes._kinds as blocks
from latentgeo.actions import ImageRotations
from latentgeo.datasets.planted import planted_latents
from latentgeo.groups import Cyclic, Dihedral
from latentgeo.store import RunWriter, open_run

G = Dihedral(3)
STEPS = [0, 5, 10]
NOISE = [0.0, 0.1, 0.3]


@pytest.fixture
def planted_store(tmp_path):
    """A store written by the store's writer whose latents have planted structure per step."""
    path = tmp_path / "planted.zarr"
    meta = {"elements": list(G.elements), "group": G.spec, "probe": {"n_samples": 600}}
    truth = {}
    with RunWriter(path, meta=meta) as w:
        w.ensure_layers(
            {
                "enc": {"feature_shape": [6], "n_units": 6, "dtype": "float64"},
                "head": {"feature_shape": [4], "n_units": 4, "dtype": "float64"},
            }
        )
        for step, noise in zip(STEPS, NOISE):
            a = planted_latents(G, {"A1": 1, "A2": 1, "E1": 2}, 600, noise, seed=step)
            b = planted_latents(G, {"A1": 2, "E1": 1}, 600, noise / 2, seed=step + 1)
            w.append(step, {"enc": a.Z, "head": b.Z})
            truth[step] = (a, b)
    return path, truth


def test_run_recovers_planted_structure(planted_store):
    path, truth = planted_store
    ds = probes.run(
        path,
        probes=("linear", "spectrum", "invariance", "homomorphism", "characters", "rho"),
        progress=False,
        cache=False,
    )
    assert ds.sizes == {
        "layer": 2,
        "step": 3,
        "element": 6,
        "irrep": 3,
        "unit_out": 6,
        "unit_in": 6,
    }
    assert list(ds.layer.values) == ["enc", "head"] and list(ds.step.values) == STEPS
    assert list(ds.element.values) == list(G.elements)
    for step, (a, b) in truth.items():
        for layer, p in (("enc", a), ("head", b)):
            sel = ds.sel(layer=layer, step=step)
            np.testing.assert_allclose(sel.spectrum.values, p.spectrum.values, atol=0.02)
            np.testing.assert_allclose(sel.invariance, sel.spectrum.sel(irrep="A1"), atol=1e-12)
            np.testing.assert_allclose(sel.r2.values, p.r2, atol=0.03)
            assert bool((sel.r2_low <= sel.r2_high).all())
        if step == 0:
            assert float(ds.homomorphism_error.sel(layer="enc", step=0)) < 1e-6
            np.testing.assert_allclose(
                ds.multiplicity.sel(layer="enc", step=0).values, a.multiplicities, atol=1e-6
            )
            np.testing.assert_allclose(ds.rho.sel(layer="enc", step=0).values, a.rho, atol=1e-6)
    # The narrower layer's maps are padded with NaN to the widest layer.
    assert np.isnan(ds.rho.sel(layer="head").values[..., 4:, :]).all()


def test_cache_reuse_and_incremental(planted_store, monkeypatch):
    path, _ = planted_store
    calls = []
    real = blocks.probe_block

    def counting(Z, *args, **kwargs):
        calls.append(Z.shape)
        return real(Z, *args, **kwargs)

    monkeypatch.setattr(blocks, "probe_block", counting)
    first = probes.run(path, steps=[0, 5], progress=False)
    assert len(calls) == 4
    again = probes.run(path, steps=[0, 5], progress=False)
    assert len(calls) == 4  # nothing recomputed
    np.testing.assert_array_equal(again.r2.values, first.r2.values)
    # A new step computes only the missing (layer, step)s and keeps the cached ones.
    more = probes.run(path, progress=False)
    assert len(calls) == 6
    np.testing.assert_array_equal(more.r2.sel(step=[0, 5]).values, first.r2.values)
    # Other settings are another cache key: recomputed.
    probes.run(path, steps=[0], progress=False, linear={"test_size": 0.5})
    assert len(calls) == 8
    # The cache is in the store, readable by a fresh Run.
    cached = open_run(path).load_analysis("probes")
    assert cached.attrs["cache_key"]
    assert probes.run(path, steps=[0], progress=False, linear={"test_size": 0.5}) is not None
    assert len(calls) == 8


def test_direct_block_read_matches_lazy_view(planted_store):
    path, _ = planted_store
    r = open_run(path)
    for layer in r.layers:
        for i in range(len(r.steps)):
            np.testing.assert_array_equal(
                r.read_block(layer, i), r.latents(layer).isel(step=i).values
            )


def test_executor_client_matches_serial(planted_store):
    path, _ = planted_store
    serial = probes.run(path, progress=False, cache=False)
    with ThreadPoolExecutor(2) as pool:
        mapped = probes.run(path, progress=False, cache=False, client=pool)
    np.testing.assert_allclose(mapped.r2.values, serial.r2.values, rtol=1e-12)
    np.testing.assert_allclose(mapped.spectrum.values, serial.spectrum.values, rtol=1e-12)


def test_dask_distributed_client_matches_serial(planted_store):
    distributed = pytest.importorskip("distributed")
    path, _ = planted_store
    serial = probes.run(path, progress=False, cache=False)
    with distributed.Client(
        processes=False, n_workers=1, threads_per_worker=2, dashboard_address=None
    ) as client:
        mapped = probes.run(path, progress=False, cache=False, client=client)
    np.testing.assert_allclose(mapped.r2.values, serial.r2.values, rtol=1e-12)
    np.testing.assert_allclose(mapped.spectrum.values, serial.spectrum.values, rtol=1e-12)


def test_distributed_missing_is_named(planted_store, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_distributed(name, *args, **kwargs):
        if name == "distributed" or name.startswith("distributed."):
            raise ImportError("No module named 'distributed'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_distributed)
    with pytest.raises(ImportError, match=r"distributed.*latentgeo\[distributed\]"):
        probes.run(planted_store[0], progress=False, cache=False, client="tcp://127.0.0.1:1")
    with pytest.raises(TypeError, match="client"):
        probes.run(planted_store[0], progress=False, cache=False, client=object())


def test_bad_names(planted_store):
    path, _ = planted_store
    with pytest.raises(ValueError, match=r"unknown layers? \['dec'\].*'enc', 'head'"):
        probes.run(path, layers=["dec"], progress=False)
    with pytest.raises(ValueError, match=r"unknown steps? \[7\].*\[0, 5, 10\]"):
        probes.run(path, steps=[7], progress=False)
    with pytest.raises(ValueError, match="unknown probes"):
        probes.run(path, probes=("lienar",), progress=False)
    with pytest.raises(ValueError, match="LinearProbe settings"):
        probes.run(path, progress=False, linear={"alpha": 1.0})
    with pytest.raises(TypeError, match="run store path or a latentgeo Run"):
        probes.run(42, progress=False)


def test_nonfinite_step_is_masked_and_counted(tmp_path):
    path = tmp_path / "diverged.zarr"
    meta = {"elements": list(G.elements), "group": G.spec, "probe": {"n_samples": 100}}
    with RunWriter(path, meta=meta) as w:
        w.ensure_layers({"fc": {"feature_shape": [4], "n_units": 4, "dtype": "float32"}})
        p = planted_latents(G, {"A1": 2, "E1": 1}, 100)
        w.append(0, {"fc": p.Z.astype(np.float32)})
        bad = p.Z.astype(np.float32)
        bad[2, :3, 1] = np.nan
        w.append(1, {"fc": bad})
    with pytest.warns(RuntimeWarning, match="1 \\(layer, step\\)s hold non-finite"):
        ds = probes.run(path, progress=False)
    assert ds.nonfinite.sel(layer="fc").values.tolist() == [0, 3]
    assert np.isnan(ds.r2.sel(step=1)).all() and np.isnan(ds.invariance.sel(step=1)).all()
    assert float(ds.r2.sel(step=0).min()) > 0.999


def test_wrong_group_for_store(planted_store):
    with pytest.raises(ValueError, match="order"):
        probes.run(planted_store[0], progress=False, cache=False, group=Dihedral(4))


def test_run_on_recorded_equivariant_model(tmp_path):
    # End to end with the real recorder: an exactly C4-equivariant model recorded at two
    # "training" steps; every layer is linearly equivariant.
    from latentgeo.record import LatentRecorder

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            w = torch.randn(2, 1, 3, 3, generator=torch.Generator().manual_seed(0))
            self.register_buffer(
                "w", torch.cat([torch.rot90(w, k, dims=(-2, -1)) for k in range(4)])
            )
            self.conv = torch.nn.Identity()
            self.pool = torch.nn.Identity()

        def forward(self, x):
            h = self.conv(torch.relu(torch.nn.functional.conv2d(x, self.w.to(x.dtype), padding=1)))
            return self.pool(h.mean(dim=(-2, -1)))

    x = torch.randn(300, 1, 5, 5, generator=torch.Generator().manual_seed(1))
    action = ImageRotations(Cyclic(4))
    rec = LatentRecorder(Net(), ["conv", "pool"], action, x, tmp_path / "net.zarr", dtype="float32")
    for step in (0, 1):
        rec.record(step)
    rec.close()
    ds = probes.run(tmp_path / "net.zarr", progress=False)
    assert set(ds.layer.values) == {"conv", "pool"}
    assert float(ds.r2.min()) > 0.999
    assert float(ds.null_r2.max()) < 0.05
    assert float(ds.homomorphism_error.max()) < 1e-2  # float32 latents, ridge-shrunk maps


@pytest.fixture
def c4_store(tmp_path):
    """A C4 store whose latents carry a planted C4 spectrum (A, B, E1)."""
    G4 = Cyclic(4)
    path = tmp_path / "c4.zarr"
    meta = {"elements": list(G4.elements), "group": G4.spec, "probe": {"n_samples": 300}}
    with RunWriter(path, meta=meta) as w:
        w.ensure_layers({"fc": {"feature_shape": [5], "n_units": 5, "dtype": "float64"}})
        p = planted_latents(G4, {"A": 1, "B": 2, "E1": 1}, 300, 0.05, seed=3)
        w.append(0, {"fc": p.Z})
    return path


def test_cache_key_holds_the_group(c4_store):
    # Regression: the cache ignored the group, so a second call with another group of the
    # same order returned the first group's spectrum (NaN-padded to the new irreps).
    from latentgeo.groups import parse

    kinds = ("spectrum", "invariance")
    first = probes.run(c4_store, probes=kinds, progress=False)
    assert list(first.irrep.values) == ["A", "B", "E1"]
    other = parse("C2xC2")
    second = probes.run(c4_store, probes=kinds, progress=False, group=other)
    fresh = probes.run(c4_store, probes=kinds, progress=False, group=other, cache=False)
    assert list(second.irrep.values) == [irrep.name for irrep in other.irreps()]
    assert second.attrs["cache_key"] != first.attrs["cache_key"]
    np.testing.assert_array_equal(second.spectrum.values, fresh.spectrum.values)
    assert np.isfinite(second.spectrum.values).all()
    np.testing.assert_allclose(second.spectrum.sum("irrep").values, 1.0, rtol=1e-10)
    # And back: the first group's results again, equal to a fresh computation.
    again = probes.run(c4_store, probes=kinds, progress=False)
    np.testing.assert_allclose(again.spectrum.values, first.spectrum.values, rtol=1e-12)


def test_cache_key_holds_every_setting_and_reuses_an_unchanged_call(c4_store, monkeypatch):
    from probes._settings import cache_key, make_settings

    calls = []
    real = blocks.probe_block

    def counting(Z, *args, **kwargs):
        calls.append(1)
        return real(Z, *args, **kwargs)

    monkeypatch.setattr(blocks, "probe_block", counting)
    probes.run(c4_store, probes=("linear",), progress=False, linear={"n_bootstrap": 0})
    probes.run(c4_store, probes=("linear",), progress=False, linear={"n_bootstrap": 0})
    assert len(calls) == 1  # unchanged call: cached
    probes.run(c4_store, probes=("linear",), progress=False, linear={"n_bootstrap": 5})
    assert len(calls) == 2
    probes.run(
        c4_store,
        probes=("linear",),
        progress=False,
        linear={"n_bootstrap": 5},
        dtype=torch.float32,
    )
    assert len(calls) == 3
    # Every ingredient of a result changes the key.
    base = make_settings(("linear",), {}, torch.float64)
    action = ImageRotations(Cyclic(4)).to_spec()
    key = cache_key(base, Cyclic(4), action)
    assert key == cache_key(make_settings(("linear",), {}, torch.float64), Cyclic(4), action)
    variants = [
        cache_key(make_settings(("spectrum",), {}, torch.float64), Cyclic(4), action),
        cache_key(make_settings(("linear",), {"alphas": [1.0]}, torch.float64), Cyclic(4), action),
        cache_key(make_settings(("linear",), {}, torch.float32), Cyclic(4), action),
        cache_key(base, Dihedral(2), action),
        cache_key(base, Cyclic(4), None),
        cache_key(base, Cyclic(4), ImageRotations(Dihedral(4)).to_spec()),
    ]
    assert len({key, *variants}) == len(variants) + 1
    import latentgeo

    monkeypatch.setattr(latentgeo, "__version__", "99.0")
    assert cache_key(base, Cyclic(4), action) != key


def test_read_block_is_the_stored_block(planted_store):
    path, truth = planted_store
    r = open_run(path)
    for i, step in enumerate(STEPS):
        a, b = truth[step]
        np.testing.assert_array_equal(r.read_block("enc", i), a.Z)
        np.testing.assert_array_equal(r.read_block("head", i), b.Z)
    np.testing.assert_array_equal(r.read_block("enc", -1), truth[STEPS[-1]][0].Z)
    with pytest.raises(IndexError, match="step_index 3 is out of range"):
        r.read_block("enc", 3)
    with pytest.raises(KeyError, match="'dec'"):
        r.read_block("dec", 0)
    with pytest.raises(TypeError, match="step_index"):
        r.read_block("enc", 1.0)


def test_a_new_probe_kind_is_one_registered_function(planted_store, monkeypatch):
    # A kind with its own labelled dim and an unlabelled (padded) one, registered in a test
    # through the public names (and removed again at the end).
    assert probes.register_probe is blocks.register_probe
    monkeypatch.setattr(blocks.PROBE_KINDS, "_items", dict(blocks.PROBE_KINDS._items))
    monkeypatch.setattr(blocks.DIMS, "_items", dict(blocks.DIMS._items))

    @probes.register_dim("half")
    def _halves(group, elements):
        return ["first", "second"]

    @probes.register_probe("unit_norms", {"unit_norm": ("half", "unit")}, requires=("linear",))
    def _unit_norms(block):
        Z = block.Z
        k = Z.shape[0] // 2
        return {
            "unit_norm": torch.stack([Z[:k].pow(2).sum(dim=(0, 1)), Z[k:].pow(2).sum(dim=(0, 1))])
            .cpu()
            .numpy()
        }

    ds = probes.run(path := planted_store[0], probes=("unit_norms",), progress=False, cache=False)
    assert ds.unit_norm.dims == ("layer", "step", "half", "unit")
    assert list(ds.half.values) == ["first", "second"] and ds.sizes["unit"] == 6
    assert "r2" in ds  # required kinds come along
    r = open_run(path)
    Z = r.read_block("head", 1)
    Z = Z - Z.mean(axis=(0, 1))
    np.testing.assert_allclose(
        ds.unit_norm.sel(layer="head", step=5, half="second").values[:4],
        (Z[3:] ** 2).sum(axis=(0, 1)),
        rtol=1e-12,
    )
    assert np.isnan(ds.unit_norm.sel(layer="head").values[..., 4:]).all()
    with pytest.raises(ValueError, match="already registered"):
        blocks.register_probe("unit_norms", {"x": ()})(_unit_norms)
    with pytest.raises(ValueError, match="already registered"):
        blocks.register_probe("other", {"r2": ("element",)})(_unit_norms)


def test_client_workers_use_the_group_override(c4_store):
    # The workers open the store by path; the caller's group must travel with the task.
    from latentgeo.groups import parse

    other = parse("C2xC2")
    serial = probes.run(c4_store, probes=("spectrum",), progress=False, cache=False, group=other)
    with ThreadPoolExecutor(2) as pool:
        mapped = probes.run(
            c4_store, probes=("spectrum",), progress=False, cache=False, group=other, client=pool
        )
    np.testing.assert_array_equal(mapped.spectrum.values, serial.spectrum.values)
    assert list(mapped.irrep.values) == [irrep.name for irrep in other.irreps()]
