"""Identifiability: every probe fits on the latents' numerical span and checks its laws there.

A linear read-out ``z = W f`` (``W`` of shape (n_units, r), full column rank) of a feature
``f`` that carries an exact r-dimensional representation is an exact representation on the
read-out's r-dimensional span, whatever ``n_units``.  For every rank r from 1 to full, for
so(2), so(3) and finite groups (C4, D4): the rank reported is r, the laws (bracket law,
homomorphism, orthogonality, periodicity, characters) hold on the span to the fit's
precision, and non-representations of the same rank still fail.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from scipy.linalg import block_diag, expm

import probes
from latentgeo.actions import so3_basis
from latentgeo.datasets.planted import planted_latents
from latentgeo.groups import Cyclic, Dihedral
from probes._lie_algebra import one_parameter_elements

D = 6  # units of every read-out; ranks 1..D
TS = [0.05, -0.05, 0.1, -0.1, 0.4, 0.9]
ANGLES = np.array([0.0, 0.05, -0.05, 0.1, -0.1, 0.5, 1.3, 2.4, -2.0])
J = np.array([[0.0, -1.0], [1.0, 0.0]])
# The generator fits are exact up to the ridge floor of stage 1 (smallest penalty 1e-10 of
# the mean eigenvalue) refined by L-BFGS (stopped at ftol 1e-15 on a relative loss, i.e. a
# generator error ~ sqrt(1e-15) ≈ 3e-8 at worst); the law is then checked against its own
# rule (sqrt(eps) floor), and we require the residual below that floor.
SQRT_EPS = float(np.sqrt(np.finfo(np.float64).eps))


def _readout(rng, F: np.ndarray, d: int = D) -> np.ndarray:
    """z = W f with W (d, r) of full column rank, applied to features F (..., r)."""
    r = F.shape[-1]
    W = rng.normal(size=(d, r))
    return F @ W.T


def _so3_rep(r: int) -> np.ndarray:
    """so(3) generators of an r-dim representation: vectors then trivial units."""
    nv, nt = divmod(r, 3)
    return np.stack(
        [block_diag(*([so3_basis()[i]] * nv + [np.zeros((1, 1))] * nt)) for i in range(3)]
    )


def _so2_rep(r: int, freqs=(1, 2, 3)) -> np.ndarray:
    """so(2) generator of an r-dim representation: rotations at integer frequencies, then a
    trivial unit for odd r."""
    n2, n1 = divmod(r, 2)
    return block_diag(*([f * J for f in freqs[:n2]] + [np.zeros((1, 1))] * n1))


def _lie_orbit(rng, gens: np.ndarray, coords: np.ndarray, n: int = 120) -> np.ndarray:
    r = gens.shape[-1]
    F = rng.normal(size=(n, r)) + 0.3
    mats = np.stack([expm(np.einsum("i,iab->ab", a, gens)) for a in coords])
    return _readout(rng, np.einsum("grs,ns->gnr", mats, F))


@pytest.mark.parametrize("r", range(1, D + 1))
def test_so3_readouts_of_every_rank_hold_the_bracket_law(rng, r):
    R, a = one_parameter_elements("so3", TS)
    Z = _lie_orbit(rng, _so3_rep(r), a)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an identified fit warns about nothing
        probe = probes.LieAlgebraProbe(n_bootstrap=0).fit(Z, R)
        check = probe.bracket_check()
    assert probe.rank_ == r and probe.components_.shape == (r, D)
    np.testing.assert_allclose(probe.r2_, 1.0, atol=1e-9)
    assert check.holds, check
    assert check.max_relative_residual < SQRT_EPS
    # The generators vanish off the span: L = P L P with P the projector onto it.
    P = probe.components_.T @ probe.components_
    np.testing.assert_allclose(P @ probe.generators_ @ P, probe.generators_, atol=1e-12)


@pytest.mark.parametrize("r", range(1, D + 1))
def test_so3_non_representations_of_every_rank_fail(rng, r):
    """Each axis acts linearly and exactly (R² = 1), but the generators are unrelated: for
    r = 1 one axis scales (e^t), for r >= 2 random antisymmetric matrices."""
    R, a = one_parameter_elements("so3", TS)
    if r == 1:
        K = np.array([[[1.0]], [[0.0]], [[0.0]]])
    else:
        K = rng.normal(size=(3, r, r))
        K = K - K.transpose(0, 2, 1)
    Z = _lie_orbit(rng, K, a)
    probe = probes.LieAlgebraProbe(n_bootstrap=0).fit(Z, R)
    assert probe.rank_ == r
    np.testing.assert_allclose(probe.r2_, 1.0, atol=1e-9)
    check = probe.bracket_check()
    assert not check.holds and check.max_relative_residual > 0.3


@pytest.mark.parametrize("r", range(1, D + 1))
def test_so2_readouts_of_every_rank(rng, r):
    """GeneratorProbe and LieAlgebraProbe("so2") share the fit: same generator, rank r,
    R² 1, and the law of SO(2) (periodicity, expm(2π L) = I on the span) holds; a generator
    of the line that is not periodic (frequency 1.5, or a scaling for r = 1) fails it."""
    L = _so2_rep(r)
    Z = _lie_orbit(rng, L[None], ANGLES[:, None])
    gp = probes.GeneratorProbe(n_bootstrap=0).fit(Z, ANGLES)
    lp = probes.LieAlgebraProbe("so2", n_bootstrap=0, max_iter=100).fit(Z, ANGLES[:, None])
    for p in (gp, lp):
        assert p.rank_ == r
        np.testing.assert_allclose(p.r2_, 1.0, atol=1e-9)
    np.testing.assert_allclose(gp.generator_, lp.generators_[0], atol=1e-9)
    P = gp.components_.T @ gp.components_
    # expm(2πL) on the span is the identity there: Q expm(2π L_Q) Qᵀ = P.
    np.testing.assert_allclose(gp.rho(2 * np.pi), P, atol=1e-6)

    bad = 0.3 * np.ones((1, 1)) if r == 1 else 1.5 * _so2_rep(r, freqs=(1, 1, 1))
    if r > 1 and r % 2:
        bad[-1, -1] = 0.0
    Zb = _lie_orbit(rng, bad[None], ANGLES[:, None])
    gb = probes.GeneratorProbe(n_bootstrap=0).fit(Zb, ANGLES)
    assert gb.rank_ == r
    np.testing.assert_allclose(gb.r2_, 1.0, atol=1e-9)
    Pb = gb.components_.T @ gb.components_
    assert np.linalg.norm(gb.rho(2 * np.pi) - Pb) > 0.5


def _finite_counts(group, r: int) -> dict[str, int]:
    """Multiplicities of ``group``'s irreps adding up to dimension r (2-d irreps first)."""
    irreps = group.irreps()
    two = [i.name for i in irreps if i.dim == 2]
    one = [i.name for i in irreps if i.dim == 1]
    counts: dict[str, int] = {}
    n2, n1 = divmod(r, 2)
    for k in range(n2):
        counts[two[k % len(two)]] = counts.get(two[k % len(two)], 0) + 1
    for k in range(n1):
        counts[one[k % len(one)]] = counts.get(one[k % len(one)], 0) + 1
    return counts


def _shrink_bound(probe: probes.LinearProbe, X: np.ndarray) -> float:
    """Relative bias of ridge maps at the chosen penalties, max_g α_g / σ_min²: the exact
    maps are scaled by s²/(s²+α) on each direction (plus round-off)."""
    Xc = X[probe.train_index_] - X[probe.train_index_].mean(0)
    s = np.linalg.svd(Xc, compute_uv=False)[: probe.rank_]
    return float(probe.alpha_.max() / s[-1] ** 2) + 1e-12


def _amplification(rho: np.ndarray, group) -> float:
    table = np.asarray(group.cayley_table)
    two = np.linalg.norm(rho, ord=2, axis=(1, 2))
    fro = np.linalg.norm(rho, axis=(1, 2))
    return float((two[:, None] * fro[None, :] / fro[table]).max())


@pytest.mark.parametrize("group", [Cyclic(4), Dihedral(4)], ids=repr)
@pytest.mark.parametrize("r", range(1, D + 1))
def test_finite_group_readouts_of_every_rank(rng, group, r):
    counts = _finite_counts(group, r)
    p = planted_latents(group, counts, 150, seed=int(rng.integers(1 << 30)))
    Z = _readout(rng, p.Z)
    lin = probes.LinearProbe(n_null=0, n_bootstrap=0).fit(Z)
    assert lin.rank_ == r
    np.testing.assert_allclose(lin.r2_, 1.0, atol=1e-8)
    bound = _shrink_bound(lin, Z[0])
    # Homomorphism on the span: rho_ vanishes off it, so the defect is the span's.  With
    # rho_ = rho (I - E), ‖E‖ <= bound, the defect of (g, h) is ‖rho(g) E rho(h)‖ / ‖rho(gh)‖
    # <= bound ‖rho(g)‖_2 ‖rho(h)‖_F / ‖rho(gh)‖_F (the read-out is not orthogonal).
    amp = _amplification(lin.rho_, group)
    err = probes.homomorphism_error(lin.rho_, group)
    assert err.max < 2 * amp * bound, (err.max, amp, bound)
    # Characters of the maps on the span: the planted multiplicities, summing to r.
    m = probes.character_multiplicities(lin.rho_, group)
    # m_ρ counts copies (a real irrep of complex type once per copy, dim/k = 1).  Each trace
    # moves by |tr(rho E)| <= ‖rho(g)‖_F ‖E‖_F <= ‖rho(g)‖_F sqrt(r) bound.
    expected = np.array([counts.get(name, 0) for name in m.irrep.values])
    tol = np.linalg.norm(lin.rho_, axis=(1, 2)).max() * np.sqrt(r) * bound
    np.testing.assert_allclose(m.values, expected, atol=2 * tol)
    dims = [irrep.dim for irrep in group.irreps()]
    assert float(m.values @ dims) == pytest.approx(r, abs=2 * tol * sum(dims))  # Σ m dim = r
    # The group-consistent maps are a homomorphism on the span too (identity = projector).
    gc = probes.GroupConsistentProbe(group, n_bootstrap=0).fit(Z)
    assert gc.rank_ == r
    # Composed along words of length <= 3 (D4): the bias compounds at most that many times.
    assert probes.homomorphism_error(gc.rho_, group).max < 8 * amp**3 * bound
    np.testing.assert_allclose(gc.r2_, 1.0, atol=1e-8)
    # Orthogonal probe: whitened on the span by default, rank r, orthogonal maps there.
    op = probes.OrthogonalProbe(n_bootstrap=0).fit(Z)
    assert op.rank_ == r and op.rho_.shape == (group.order, r, r)
    eye = np.broadcast_to(np.eye(r), op.rho_.shape)
    np.testing.assert_allclose(op.rho_ @ op.rho_.transpose(0, 2, 1), eye, atol=1e-12)


@pytest.mark.parametrize("r", range(1, D + 1))
def test_finite_non_representations_of_every_rank_fail(rng, r):
    """Every element acts by its own random invertible map on the span: exactly linear
    (R² = 1) but not a homomorphism."""
    G = Cyclic(4)
    F = rng.normal(size=(150, r))
    M = np.stack([np.eye(r)] + [np.eye(r) + 0.5 * rng.normal(size=(r, r)) for _ in range(3)])
    Z = _readout(rng, np.einsum("grs,ns->gnr", M, F))
    lin = probes.LinearProbe(n_null=0, n_bootstrap=0).fit(Z)
    assert lin.rank_ == r
    np.testing.assert_allclose(lin.r2_, 1.0, atol=1e-8)
    assert probes.homomorphism_error(lin.rho_, G).max > 0.1


def test_float32_latents_keep_their_rank_when_analysed_in_float64(rng):
    """Read-outs stored in float32 are rank r only to float32 precision: the tolerance
    follows the data's dtype, not the computation's."""
    R, a = one_parameter_elements("so3", TS)
    Z = _lie_orbit(rng, _so3_rep(3), a).astype(np.float32)
    lin = probes.LinearProbe(n_null=0, n_bootstrap=0).fit(Z)
    assert lin.rank_ == 3
    # With a float64 tolerance the float32 round-off directions count as latents.
    assert probes.LinearProbe(n_null=0, n_bootstrap=0, rank_tol=1e-14).fit(Z).rank_ == D
    probe = probes.LieAlgebraProbe(n_bootstrap=0).fit(Z, R)
    assert probe.rank_ == 3
    np.testing.assert_allclose(probe.r2_, 1.0, atol=1e-5)  # float32 data: ~1e-7 relative
    assert probe.bracket_check().holds
    # torch input: the same rule from the tensor's dtype.
    assert probes.LinearProbe(n_null=0, n_bootstrap=0).fit(torch.from_numpy(Z)).rank_ == 3


def test_constant_latents_are_reported_not_guessed(rng):
    R, _a = one_parameter_elements("so3", TS)
    Z = np.ones((len(R), 40, 4))
    with pytest.warns(RuntimeWarning, match="rank 0"):
        probe = probes.LieAlgebraProbe(n_bootstrap=0).fit(Z, R)
    assert probe.rank_ == 0 and np.isnan(probe.generators_).all() and np.isnan(probe.r2_).all()
    with pytest.warns(RuntimeWarning, match="cannot be checked"):
        check = probe.bracket_check()
    assert not check.holds and np.isnan(check.max_relative_residual)
    with pytest.warns(RuntimeWarning, match="rank 0"):
        gp = probes.GeneratorProbe(n_bootstrap=0).fit(Z[:9], ANGLES)
    assert gp.rank_ == 0 and np.isnan(gp.generator_).all()
    with pytest.raises(ValueError, match="rank 0"):
        probes.OrthogonalProbe().fit(Z)
    with pytest.raises(ValueError, match="numerical rank 1"):
        probes.OrthogonalProbe(2).fit(_readout(rng, rng.normal(size=(4, 40, 1))))


def test_noisy_generators_that_cannot_decide_the_law_say_so(rng):
    """Pure noise: the split-half error of the generators is as large as their bracket, so
    the law is not confirmed, and a warning says the data cannot decide."""
    R, _a = one_parameter_elements("so3", TS)
    Z = rng.normal(size=(len(R), 60, 3))
    probe = probes.LieAlgebraProbe(n_bootstrap=0, max_iter=20).fit(Z, R)
    with pytest.warns(RuntimeWarning, match="cannot be decided"):
        check = probe.bracket_check()
    assert not check.holds


def test_runner_reports_the_rank_of_float32_stores(tmp_path, rng):
    """probes.run on a real store: a read-out stored in float32 (the recorder's default) is
    rank r to float32 precision; the run computes in float64 but keeps the stored precision's
    span, so the rank, the homomorphism and the characters are those of the span."""
    from latentgeo.store import RunWriter

    G = Dihedral(4)
    counts = {"A2": 1, "E1": 1}  # r = 3
    path = tmp_path / "readout.zarr"
    meta = {"elements": list(G.elements), "group": G.spec, "probe": {"n_samples": 200}}
    layers = {
        "lin": {"feature_shape": [D], "n_units": D, "dtype": "float32"},
        "full": {"feature_shape": [3], "n_units": 3, "dtype": "float32"},
    }
    with RunWriter(path, meta=meta) as w:
        w.ensure_layers(layers)
        p = planted_latents(G, counts, 200, seed=3)
        w.append(0, {"lin": _readout(rng, p.Z).astype(np.float32), "full": p.Z.astype(np.float32)})
    ds = probes.run(
        path, probes=("linear", "homomorphism", "characters"), progress=False, cache=False
    )
    assert ds["rank"].sel(layer="lin", step=0) == 3
    assert ds["rank"].sel(layer="full", step=0) == 3
    # float32 data: the maps are exact to ~1e-6 (the ridge fits round-off of size eps32).
    assert float(ds["homomorphism_error_max"].sel(layer="lin", step=0)) < 1e-4
    m = ds["multiplicity"].sel(layer="lin", step=0).to_series()
    np.testing.assert_allclose(m[["A1", "A2", "B1", "B2", "E1"]], [0, 1, 0, 0, 1], atol=1e-4)


@pytest.mark.parametrize(
    "make",
    [
        lambda **kw: probes.LinearProbe(**kw),
        lambda **kw: probes.OrthogonalProbe(**kw),
        lambda **kw: probes.GroupConsistentProbe(Cyclic(4), **kw),
        lambda **kw: probes.GeneratorProbe(**kw),
        lambda **kw: probes.LieAlgebraProbe(**kw),
    ],
)
@pytest.mark.parametrize("bad", [0.0, 1.0, -1e-3, 2])
def test_rank_tol_is_a_relative_threshold_in_0_1(make, bad):
    from sklearn.utils._param_validation import InvalidParameterError

    with pytest.raises(InvalidParameterError, match="rank_tol"):
        make(rank_tol=bad)._validate_params()
    make(rank_tol=1e-6)._validate_params()


def test_an_explicit_rank_tol_sets_the_span(rng):
    """Noise 1e-6 around a rank-2 read-out: full rank at the default (float64) rule, rank 2
    with a threshold above the noise's singular values (~1e-6 · sqrt(n) relative)."""
    F = rng.normal(size=(4, 200, 2))
    Z = _readout(rng, F) + 1e-6 * rng.normal(size=(4, 200, D))
    assert probes.LinearProbe(n_null=0, n_bootstrap=0).fit(Z).rank_ == D
    lin = probes.LinearProbe(n_null=0, n_bootstrap=0, rank_tol=1e-3).fit(Z)
    assert lin.rank_ == 2 and lin.components_.shape == (2, D)
    assert probes.OrthogonalProbe(n_bootstrap=0, rank_tol=1e-3).fit(Z).rank_ == 2


@pytest.mark.parametrize("name", ["float64", "float32"])
def test_dtype_names_are_accepted_like_torch_dtypes(name):
    # The parameter constraints accept a dtype's name; every probe resolves it the same way
    # (one resolver, latentgeo._validate.resolve_dtype) and fits exactly as with the dtype.
    from probes import LinearProbe, OrthogonalProbe

    Z = np.random.default_rng(0).normal(size=(4, 64, 5))
    for cls in (LinearProbe, OrthogonalProbe):
        kw = {"n_bootstrap": 0} if cls is OrthogonalProbe else {"n_bootstrap": 0, "n_null": 0}
        by_name = cls(dtype=name, **kw).fit(Z).r2_
        by_dtype = cls(dtype=getattr(torch, name), **kw).fit(Z).r2_
        np.testing.assert_array_equal(by_name, by_dtype)
