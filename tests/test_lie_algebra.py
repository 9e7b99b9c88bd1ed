"""LieAlgebraProbe and the bracket law: planted so(3) representations, non-representations,
held-out scoring with d >= n, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.linalg import expm
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

import probes
from latentgeo.actions import so3_basis
from probes._lie_algebra import (
    lie_algebra_basis,
    one_parameter_elements,
    structure_constants,
)

TS = [0.05, -0.05, 0.1, -0.1, 0.4, 0.9]


def _degree2_basis() -> np.ndarray:
    """A Frobenius-orthonormal basis E_a (5, 3, 3) of traceless symmetric 3x3 matrices."""
    E = []
    for i, j in ((0, 1), (0, 2), (1, 2)):
        M = np.zeros((3, 3))
        M[i, j] = M[j, i] = 1 / np.sqrt(2)
        E.append(M)
    E.append(np.diag([1.0, -1.0, 0.0]) / np.sqrt(2))
    E.append(np.diag([1.0, 1.0, -2.0]) / np.sqrt(6))
    return np.stack(E)


def _degree2_generators() -> np.ndarray:
    """so(3) on traceless symmetric 3x3 matrices (S ↦ R S Rᵀ, the real degree-2 irrep):
    (l2(X))_ab = <E_a, [X, E_b]>."""
    E = _degree2_basis()
    X = so3_basis()
    return np.einsum("aij,xjk,bki->xab", E, X, E) - np.einsum("aij,bjk,xki->xab", E, E, X)


def _planted(rng, elements_coords, n=240, trivial=1, noise=0.0):
    """Latents z = P (v ⊕ s ⊕ c): v a vector (degree 1), s degree 2, c invariant units, mixed
    by a random invertible P; returns Z (G, n, d) and the true generators P l P⁻¹."""
    l1, l2 = so3_basis(), _degree2_generators()
    d = 3 + 5 + trivial
    gens = np.zeros((3, d, d))
    gens[:, :3, :3] = l1
    gens[:, 3:8, 3:8] = l2
    P = rng.normal(size=(d, d)) + 3 * np.eye(d)
    true = np.einsum("ij,xjk,kl->xil", P, gens, np.linalg.inv(P))
    base = rng.normal(size=(n, d)) + 0.3
    mats = np.stack([expm(np.einsum("i,iab->ab", a, true)) for a in elements_coords])
    Z = np.einsum("gij,nj->gni", mats, base)
    if noise:
        Z = Z + noise * rng.normal(size=Z.shape)
    return Z, true


def test_degree2_generators_are_a_representation():
    l2 = _degree2_generators()
    assert bracket_ok(l2)
    # antisymmetric (orthogonal representation), eigenvalues i·m for m = -2..2
    np.testing.assert_allclose(l2, -l2.transpose(0, 2, 1), atol=1e-15)
    ev = np.sort(np.linalg.eigvals(l2[2]).imag)
    np.testing.assert_allclose(ev, [-2, -1, 0, 1, 2], atol=1e-12)


def bracket_ok(gens):
    return probes.bracket_law(gens, "so3").holds


def test_structure_constants_so3_and_closure():
    c = structure_constants("so3")
    eps = np.zeros((3, 3, 3))
    for i, j, k in ((0, 1, 2), (1, 2, 0), (2, 0, 1)):
        eps[i, j, k], eps[j, i, k] = 1, -1
    np.testing.assert_allclose(c, eps, atol=1e-14)
    # The span of two so(3) generators is not closed under the bracket.
    with pytest.raises(ValueError, match="not closed"):
        structure_constants(so3_basis()[:2])


def test_one_parameter_elements_are_rotations_with_their_coordinates():
    R, a = one_parameter_elements("so3", TS)
    assert R.shape == (1 + 3 * len(TS), 3, 3)
    np.testing.assert_array_equal(R[0], np.eye(3))
    np.testing.assert_allclose(
        R @ R.transpose(0, 2, 1), np.broadcast_to(np.eye(3), R.shape), atol=1e-14
    )
    np.testing.assert_allclose(np.linalg.det(R), 1.0, atol=1e-14)
    # Coordinates recovered from the matrices by the principal logarithm.
    from probes._lie_basis import coordinates

    np.testing.assert_allclose(coordinates(R, so3_basis()), a, atol=1e-12)


def test_planted_degrees_1_and_2_recovered_and_bracket_holds(rng):
    R, a = one_parameter_elements("so3", TS)
    # add general elements (not along one axis): the model uses their full coordinates
    extra = rng.normal(size=(4, 3)) * 0.8
    a = np.concatenate([a, extra])
    Rall = np.concatenate(
        [R, np.stack([expm(np.einsum("i,iab->ab", v, so3_basis())) for v in extra])]
    )
    Z, true = _planted(rng, a)
    probe = probes.LieAlgebraProbe(n_bootstrap=50).fit(Z, Rall)
    np.testing.assert_allclose(probe.coordinates_, a, atol=1e-10)
    np.testing.assert_allclose(probe.generators_, true, atol=1e-7 * np.abs(true).max())
    np.testing.assert_allclose(probe.r2_, 1.0, atol=1e-10)
    check = probe.bracket_check()
    assert check.holds and check.max_relative_residual < 1e-9
    assert check.pairs == (("L_x", "L_y"), ("L_x", "L_z"), ("L_y", "L_z"))
    assert probe.spread_ < 1e-8
    # Basis-free view: each generator has eigenvalues i·m, m the weights of 1 ⊕ 2 ⊕ 0.
    ev = np.sort(np.linalg.eigvals(probe.generators_[0]).imag)
    np.testing.assert_allclose(ev, sorted([-1, 0, 1, -2, -1, 0, 1, 2, 0]), atol=1e-6)
    # Held-out predictions equal the planted maps at any coordinates.
    np.testing.assert_allclose(
        probe.rho(extra[0]), expm(np.einsum("i,iab->ab", extra[0], true)), atol=1e-6
    )


@pytest.mark.slow
def test_noisy_planted_bracket_holds_within_the_spread_rule(rng):
    R, a = one_parameter_elements("so3", TS)
    Z, _true = _planted(rng, a, n=400, noise=0.02)
    probe = probes.LieAlgebraProbe(n_bootstrap=0, max_iter=60).fit(Z, R)
    check = probe.bracket_check()
    assert 0 < probe.spread_ < 0.1
    assert np.all(check.tolerance < 0.5) and np.all(check.relative_residual > 1e-6)
    assert check.holds, check
    assert "split-half" in check.rule
    # The same fit on a non-representation (one generator doubled) is caught at this noise.
    Z2, _ = _planted(rng, a * np.array([2.0, 1.0, 1.0]), n=400, noise=0.02)
    bad = probes.LieAlgebraProbe(n_bootstrap=0, max_iter=60).fit(Z2, R).bracket_check()
    assert not bad.holds, bad


def test_axiswise_equivariant_but_not_a_representation_fails_the_law(rng):
    """Each one-parameter subgroup acts linearly and exactly (held-out R² = 1), but the three
    generators are unrelated antisymmetric matrices: no representation of SO(3)."""
    d = 6
    K = rng.normal(size=(3, d, d))
    K = K - K.transpose(0, 2, 1)
    R, a = one_parameter_elements("so3", TS)
    base = rng.normal(size=(200, d))
    mats = np.stack([expm(np.einsum("i,iab->ab", v, K)) for v in a])
    Z = np.einsum("gij,nj->gni", mats, base)
    probe = probes.LieAlgebraProbe(n_bootstrap=0).fit(Z, R)
    np.testing.assert_allclose(probe.generators_, K, atol=1e-6 * np.abs(K).max())
    np.testing.assert_allclose(probe.r2_, 1.0, atol=1e-9)
    check = probe.bracket_check()
    assert not check.holds
    assert check.max_relative_residual > 0.3


def test_scaled_generators_residual_is_exact():
    for s in (0.5, 2.0, 3.0):
        check = probes.bracket_law(s * so3_basis(), "so3")
        np.testing.assert_allclose(check.relative_residual, abs(s - 1) / (s + 1), rtol=1e-12)
        assert not check.holds
    assert probes.bracket_law(np.zeros((3, 4, 4))).holds  # the trivial representation


def test_nonlinear_latents_fail(rng):
    """z = tanh(W v) of a rotating vector v: not linearly equivariant."""
    R, a = one_parameter_elements("so3", TS)
    W = rng.normal(size=(8, 3)) * 1.5
    v = rng.normal(size=(200, 3))
    Z = np.tanh(np.einsum("ui,gij,nj->gnu", W, R, v))
    probe = probes.LieAlgebraProbe(n_bootstrap=0, max_iter=40).fit(Z, R)
    big = np.abs(a).max(axis=1) > 0.5
    assert probe.r2_[big].max() < 0.99
    assert not probe.bracket_check().holds


def test_d_at_least_n_is_scored_held_out(rng):
    """Random latents with more units than training samples: the training fit is good but
    the held-out R² stays at chance."""
    R, _a = one_parameter_elements("so3", [0.05, -0.05, 0.1])
    Z = rng.normal(size=(len(R), 24, 24))
    probe = probes.LieAlgebraProbe(n_bootstrap=0, estimate_spread=False, max_iter=30).fit(Z, R)
    assert len(probe.train_index_) < Z.shape[2]
    assert probe.r2_[1:].max() < 0.1  # held out: nothing explained
    assert np.isnan(probe.spread_)
    check = probe.bracket_check()
    assert "no error estimate" in check.rule and not check.holds


def test_refinement_lowers_the_loss(rng):
    R, a = one_parameter_elements("so3", TS)
    Z, _true = _planted(rng, a, n=300, noise=0.1)
    init = probes.LieAlgebraProbe(refine=False, n_bootstrap=0, estimate_spread=False).fit(Z, R)
    ref = probes.LieAlgebraProbe(n_bootstrap=0, estimate_spread=False).fit(Z, R)
    assert ref.loss_ < init.loss_
    np.testing.assert_allclose(init.generators_, init.generators_init_)


def test_coordinates_input_and_so2_basis(rng):
    angles = np.array([0.0, 0.05, -0.05, 0.1, 1.0, 2.5])
    k = np.array([[0.0, -2.0], [2.0, 0.0]])
    base = rng.normal(size=(100, 2))
    Z = np.stack([base @ expm(t * k).T for t in angles])
    probe = probes.LieAlgebraProbe(basis="so2", n_bootstrap=0).fit(Z, angles[:, None])
    np.testing.assert_allclose(probe.generators_[0], k, atol=1e-8)
    assert probe.generator_names_ == ("L",)
    # Agrees with the SO(2) GeneratorProbe on the same data.
    gp = probes.GeneratorProbe(n_bootstrap=0).fit(Z, angles)
    np.testing.assert_allclose(probe.generators_[0], gp.generator_, atol=1e-8)


def test_sklearn_estimator_conventions():
    probe = probes.LieAlgebraProbe(small_t=0.15, basis="so3")
    assert probe.get_params()["small_t"] == 0.15
    c = clone(probe)
    assert c.get_params() == probe.get_params() and not hasattr(c, "generators_")
    for method, args in (("bracket_check", ()), ("rho", ([0.1, 0.0, 0.0],)), ("score", (0,))):
        with pytest.raises(NotFittedError, match="not fitted"):
            getattr(probe, method)(*args)


def test_bad_input(rng):
    R, a = one_parameter_elements("so3", TS)
    Z = rng.normal(size=(len(R), 30, 4))
    P = probes.LieAlgebraProbe
    with pytest.raises(ValueError, match="exactly one identity"):
        P().fit(Z[1:], R[1:])
    with pytest.raises(ValueError, match="one element per row"):
        P().fit(Z, R[:-1])
    with pytest.raises(ValueError, match="span all 3"):
        P().fit(Z[: 1 + len(TS)], R[: 1 + len(TS)])  # small rotations about x only
    with pytest.raises(ValueError, match=r"shape \(n_elements, 3, 3\)"):
        P().fit(Z, np.zeros((len(R), 2, 2)))
    with pytest.raises(ValueError, match=r"shape \(n_elements, 3\)"):
        P().fit(Z, a[:, :2])
    refl = R.copy()
    refl[3] = np.diag([1.0, 1.0, -1.0])  # det −1: not exp of so(3)
    with pytest.raises(ValueError, match="no real principal logarithm"):
        P().fit(Z, refl)
    skew = R.copy()
    skew[3] = np.diag([2.0, 0.5, 1.0])  # exp of a matrix outside so(3)
    with pytest.raises(ValueError, match="not exponentials"):
        P().fit(Z, skew)
    with pytest.raises(ValueError, match="'basis' parameter"):
        P(basis="so4").fit(Z, R)
    with pytest.raises(ValueError, match="linearly dependent"):
        lie_algebra_basis(np.stack([so3_basis()[0]] * 2))
    with pytest.raises(ValueError, match="small_t"):
        P(small_t=-1.0).fit(Z, R)
    with pytest.raises(ValueError, match="n_bootstrap"):
        P(n_bootstrap=-1).fit(Z, R)
    with pytest.raises(ValueError, match="max_iter"):
        P(max_iter=0).fit(Z, R)  # at least one iteration, as for GeneratorProbe
    with pytest.raises(ValueError, match="'basis' parameter"):
        P(basis=3).fit(Z, R)
    with pytest.raises(ValueError, match=r"NaN|finite"):
        P().fit(np.full_like(Z, np.nan), R)
    with pytest.raises(ValueError, match=r"shape \(3, d, d\)"):
        probes.bracket_law(np.zeros((2, 3, 3)))
    with pytest.raises(ValueError, match="tol"):
        probes.bracket_law(so3_basis(), tol=-1.0)
    with pytest.raises(ValueError, match="non-zero"):
        one_parameter_elements("so3", [0.0, 0.1])


def test_float32_fit(rng):
    R, a = one_parameter_elements("so3", TS)
    Z, _true = _planted(rng, a, n=300)
    probe = probes.LieAlgebraProbe(dtype=torch.float32, n_bootstrap=0).fit(Z.astype(np.float32), R)
    np.testing.assert_allclose(probe.r2_, 1.0, atol=1e-4)
    assert probe.bracket_check(tol=1e-3).holds


def test_fit_from_a_recorded_store(tmp_path, rng):
    """Latents recorded under SO3AxisRotations into a real zarr store, read back with their
    element values, give the degree-1 ⊕ degree-2 generators of the layer."""
    from latentgeo.actions import SO3AxisRotations, from_spec
    from latentgeo.record import LatentRecorder
    from latentgeo.store import open_run

    E = torch.as_tensor(_degree2_basis())
    P = torch.as_tensor(rng.normal(size=(8, 8)) + 3 * np.eye(8))

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.feat = torch.nn.Identity()

        def forward(self, x):
            c = x.mean(dim=-2)
            m = torch.einsum("bni,bnj->bij", x, x) / x.shape[-2]
            q = torch.einsum("aij,bij->ba", E, m)  # traceless part, degree 2
            return self.feat(torch.cat([c, q], -1) @ P.T)

    act = SO3AxisRotations((0.05, -0.05, 0.1, -0.1, 0.4))
    assert from_spec(act.to_spec()) == act
    x = torch.as_tensor(rng.normal(size=(120, 6, 3)) + np.array([0.5, 0.0, -0.3]))
    path = tmp_path / "axis.zarr"
    rec = LatentRecorder(Net(), ["feat"], act, x, path, dtype="float64")
    rec.record(0)
    rec.close()
    run = open_run(path)
    np.testing.assert_array_equal(run.element_values, act.element_values)
    Z = run.latents("feat").isel(step=0).values
    probe = probes.LieAlgebraProbe(n_bootstrap=0).fit(Z, run.element_values)
    gens = np.zeros((3, 8, 8))
    gens[:, :3, :3] = so3_basis()
    gens[:, 3:, 3:] = _degree2_generators()
    true = np.einsum("ij,xjk,kl->xil", P.numpy(), gens, np.linalg.inv(P.numpy()))
    np.testing.assert_allclose(probe.generators_, true, atol=1e-7 * np.abs(true).max())
    assert probe.bracket_check().holds
