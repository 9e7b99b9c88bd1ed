"""Which irreps runs learn (spectra across runs) and group-aware similarity between runs."""

from __future__ import annotations

import numpy as np
import pytest

import probes
import trajectories
from latentgeo.datasets.planted import planted_latents
from latentgeo.groups import Dihedral, Symmetric
from latentgeo.store import RunWriter, open_run


def _store(path, G, orbits, layer="h"):
    """A run store holding ``orbits`` = {step: Z} for one layer."""
    n = next(iter(orbits.values())).shape[1]
    d = next(iter(orbits.values())).shape[2]
    meta = {"elements": list(G.elements), "group": G.spec, "probe": {"n_samples": n}}
    with RunWriter(path, meta=meta) as w:
        w.ensure_layers({layer: {"feature_shape": [d], "n_units": d, "dtype": "float64"}})
        for step, Z in orbits.items():
            w.append(step, {layer: Z})
    return open_run(path)


def test_spectrum_with_ci_equals_orbit_spectrum_and_covers_truth(rng):
    G = Symmetric(3)
    p = planted_latents(G, {"[3]": 1, "[2,1]": 2}, 400, 0.05, seed=1)
    names, share, ci = trajectories.spectrum_with_ci(p.Z, G, n_bootstrap=300)
    ref = probes.orbit_spectrum(p.Z, G)
    assert names == [str(v) for v in ref.irrep.values]
    np.testing.assert_allclose(share, ref.values, rtol=1e-10, atol=1e-12)
    assert np.all(ci[:, 0] <= share + 1e-12) and np.all(share <= ci[:, 1] + 1e-12)
    # the sign irrep is absent: its interval sits at (almost) zero
    assert ci[names.index("[1,1,1]"), 1] < 0.01


def test_compare_spectra_finds_each_runs_irreps_and_emergence(tmp_path):
    G = Dihedral(4)
    # Run "a" grows E1 from step 10 on; run "b" carries A2 throughout and B1 from step 20.
    plans = {
        "a": {0: {"A1": 1}, 10: {"A1": 1, "E1": 2}, 20: {"A1": 1, "E1": 2}},
        "b": {0: {"A2": 1}, 10: {"A2": 1}, 20: {"A2": 1, "B1": 2}, 30: {"A2": 1, "B1": 2}},
    }
    runs = {}
    for name, plan in plans.items():
        orbits = {}
        for step, m in plan.items():
            Z = planted_latents(G, m, 300, 0.01, seed=step).Z
            orbits[step] = np.pad(Z, ((0, 0), (0, 0), (0, 6 - Z.shape[2])))  # fixed width

        runs[name] = _store(tmp_path / f"{name}.zarr", G, orbits)
    ds = trajectories.compare_spectra(runs, "h", threshold=0.1, n_bootstrap=100)
    assert ds.sizes == {"run": 2, "step": 4, "irrep": 5}
    assert list(ds.step.values) == [0, 10, 20, 30]
    assert np.isnan(ds.share.sel(run="a", step=30)).all()  # run a has no step 30
    learned = {r: [str(i) for i in ds.irrep.values[ds.learned.sel(run=r).values]] for r in "ab"}
    assert learned == {"a": ["A1", "E1"], "b": ["A2", "B1"]}
    assert float(ds.emergence.sel(run="a", irrep="E1")) == 10
    assert float(ds.emergence.sel(run="b", irrep="B1")) == 20
    assert float(ds.emergence.sel(run="b", irrep="A2")) == 0
    assert np.isnan(float(ds.emergence.sel(run="a", irrep="B2")))
    np.testing.assert_allclose(ds.share.sum("irrep").sel(run="b"), 1.0, rtol=1e-10)
    with pytest.raises(ValueError, match="no layer"):
        trajectories.compare_spectra(runs, "missing")


def test_compare_isotypic_is_one_for_rotated_copies_and_nan_for_absent_irreps(tmp_path, rng):
    G = Dihedral(4)
    a = planted_latents(G, {"A1": 1, "B1": 1, "E1": 2}, 250, 0.0, seed=3).Z
    Q = np.linalg.qr(rng.normal(size=(a.shape[2], a.shape[2])))[0]
    rotated = np.pad(a @ Q, ((0, 0), (0, 0), (0, 3)))  # an orthogonal copy plus dead units
    ra = _store(tmp_path / "a.zarr", G, {0: a})
    rb = _store(tmp_path / "b.zarr", G, {0: rotated})
    ds = trajectories.compare_isotypic(ra, rb, "h")
    carried = ["A1", "B1", "E1"]
    np.testing.assert_allclose(ds.cka.sel(irrep=carried), 1.0, atol=1e-10)
    np.testing.assert_allclose(ds.principal_angles.sel(irrep=carried).fillna(0), 0.0, atol=1e-6)
    np.testing.assert_allclose(ds.mean_cos.sel(irrep=carried), 1.0, atol=1e-10)
    assert list(ds.k.sel(irrep=carried).values) == [1, 1, 4]
    assert np.isnan(ds.cka.sel(irrep=["A2", "B2"])).all()  # neither layer carries them
    # Any invertible map of units keeps the subspaces (angles 0); CKA weighs by variance and
    # drops below 1 for a non-orthogonal map.
    M = rng.normal(size=(a.shape[2], a.shape[2])) + 3 * np.eye(a.shape[2])
    rc = _store(tmp_path / "c.zarr", G, {0: a @ M})
    dc = trajectories.compare_isotypic(ra, rc, "h")
    np.testing.assert_allclose(dc.principal_angles.sel(irrep="E1").values[:4], 0.0, atol=1e-6)
    assert float(dc.cka.sel(irrep="E1")) < 1 - 1e-6
    np.testing.assert_allclose(ds.share_a.sum(), 1.0, rtol=1e-10)


def test_compare_isotypic_separates_different_irrep_content(tmp_path):
    G = Dihedral(4)
    a = planted_latents(G, {"A1": 1, "E1": 2}, 300, 0.05, seed=5).Z
    b = planted_latents(G, {"A1": 1, "E1": 2}, 300, 0.05, seed=6).Z  # other latents, same irreps
    ra = _store(tmp_path / "a.zarr", G, {0: a})
    rb = _store(tmp_path / "b.zarr", G, {0: b})
    ds = trajectories.compare_isotypic(ra, rb, "h")
    # independent latents with the same irreps: little alignment, unlike a rotated copy
    assert float(ds.cka.sel(irrep="E1")) < 0.3
    assert float(ds.mean_cos.sel(irrep="E1")) < 0.5
    with pytest.raises(ValueError, match="not a checkpoint"):
        trajectories.compare_isotypic(ra, rb, "h", step=5)


def test_spectra_across_runs_figure(tmp_path):
    from latentgeo import plot

    G = Dihedral(3)
    runs = {
        f"seed{s}": _store(
            tmp_path / f"s{s}.zarr",
            G,
            {
                t: planted_latents(G, {"A1": 1, "E1": 1 + s}, 120, 0.01, seed=t).Z[..., :3]
                for t in (0, 5)
            },
        )
        for s in range(3)
    }
    ds = trajectories.compare_spectra(runs, "h", n_bootstrap=20)
    fig = plot.spectra_across_runs(ds)
    titles = [ax.get_title() for ax in fig.axes if ax.get_visible() and ax.get_title()]
    assert len(titles) == 3 and all("E1" in t for t in titles)
    plot.save(fig, tmp_path / "spectra.png")
    with pytest.raises(ValueError, match="compare_spectra"):
        plot.spectra_across_runs(ds.drop_vars("learned"))
