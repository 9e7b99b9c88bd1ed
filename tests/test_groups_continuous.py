"""O(2), SO(3), O(3): the group protocol, Haar sampling and the laws of their real irreps."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from numpy.testing import assert_allclose

from latentgeo.groups import O2, O3, SO2, SO3, Group, parse
from latentgeo.groups._wigner import real_spherical_harmonics

GROUPS = [SO3(), O3(), O2()]
ATOL = 1e-10


@pytest.mark.parametrize("G", GROUPS, ids=repr)
def test_protocol_members(G):
    assert isinstance(G, Group) and not G.is_finite and G.order is None
    assert parse(G.spec) == G and parse(repr(G)) == G and parse(G) is G
    assert hash(parse(G.spec)) == hash(G) and pickle.loads(pickle.dumps(G)) == G
    with pytest.raises(TypeError, match="continuous"):
        _ = G.elements
    with pytest.raises(TypeError, match="continuous"):
        G.element_values()
    with pytest.raises(ValueError, match="max_degree"):
        G.irreps()
    irreps = G.irreps(3)
    assert irreps[0] == G.trivial_irrep and irreps[0].dim == 1
    assert [r.name for r in irreps] == list(G.irrep_names(3))
    for rho in irreps:
        assert G.irrep(rho.name) == rho and rho.type == "real"
        assert pickle.loads(pickle.dumps(rho)) == rho
    assert_allclose(G.identity, np.eye(G.n))
    with pytest.raises(ValueError, match="no irrep"):
        G.irrep("7x")


def test_names_and_degrees():
    assert SO3().irrep_names(3) == ("0", "1", "2", "3")
    assert [r.dim for r in SO3().irreps(3)] == [1, 3, 5, 7]
    assert O3().irrep_names(2) == ("0e", "0o", "1o", "1e", "2e", "2o")
    assert [r.degree for r in O3().irreps(2)] == [0, 0, 1, 1, 2, 2]
    assert O2().irrep_names(3) == ("A1", "A2", "E1", "E2", "E3")
    assert [r.degree for r in O2().irreps(2)] == [0, 0, 1, 2]
    assert SO3() != O3() and O3() != O2() and SO3() != SO2()
    assert parse("SO2") == SO2() and parse("S3").order == 6  # neighbours still parse
    with pytest.raises(ValueError):
        parse("SO3x")
    with pytest.raises(ValueError, match="no irrep '01'"):
        SO3().irrep("01")


@pytest.mark.parametrize("G", GROUPS, ids=repr)
def test_irreps_are_orthogonal_homomorphisms(G):
    rng = np.random.default_rng(1)
    a, b = G.sample(200, rng), G.sample(200, rng)
    ab = G.compose(a, b)
    assert_allclose(ab, a @ b) and assert_allclose(G.inverse(a), np.swapaxes(a, 1, 2))
    for rho in G.irreps(5):
        Ra, Rb, Rab = rho(a), rho(b), rho(ab)
        assert Ra.shape == (200, rho.dim, rho.dim) and Ra.dtype == np.float64
        assert_allclose(Ra @ Rb, Rab, atol=ATOL, err_msg=rho.name)
        assert_allclose(
            Ra @ np.swapaxes(Ra, 1, 2), np.broadcast_to(np.eye(rho.dim), Ra.shape), atol=ATOL
        )
        assert_allclose(rho(G.inverse(a)), np.swapaxes(Ra, 1, 2), atol=ATOL)
        assert_allclose(rho(G.identity), np.eye(rho.dim), atol=ATOL)
        assert_allclose(rho.character_at(a), np.trace(Ra, axis1=1, axis2=2), atol=ATOL)


def _angle(R):
    return np.arccos(np.clip((np.trace(R, axis1=-2, axis2=-1) - 1) / 2, -1, 1))


def test_so3_characters_closed_form_and_edge_rotations():
    G = SO3()
    R = G.sample(300, 2)
    theta = _angle(R)
    for rho in G.irreps(6):
        l = rho.degree
        chi = np.sin((2 * l + 1) * theta / 2) / np.sin(theta / 2)
        assert_allclose(np.trace(rho(R), axis1=1, axis2=2), chi, atol=1e-9)
    # Half turns (θ = π, where angle-axis logarithms break) and near-identity rotations.
    axes = np.random.default_rng(3).normal(size=(20, 3))
    axes /= np.linalg.norm(axes, axis=1, keepdims=True)
    half = 2 * axes[:, :, None] * axes[:, None, :] - np.eye(3)
    K = np.cross(axes[:, None, :], -np.eye(3)[None])  # K v = axis × v
    t = 1e-9  # Rodrigues' formula at a tiny angle
    tiny = np.eye(3) + np.sin(t) * K + (1 - np.cos(t)) * K @ K
    for rho in G.irreps(4):
        D = rho(half)
        assert_allclose(D @ D, np.broadcast_to(np.eye(rho.dim), D.shape), atol=ATOL)
        assert_allclose(np.trace(D, axis1=1, axis2=2), (-1) ** rho.degree, atol=ATOL)
        assert_allclose(rho(tiny), np.broadcast_to(np.eye(rho.dim), D.shape), atol=1e-8)


def test_wigner_d_is_how_harmonics_rotate():
    # Y_n(Rᵀx) = Σ_m Y_m(x) D(R)_mn at random points: the defining relation, off the fit set.
    rng = np.random.default_rng(4)
    x = rng.normal(size=(50, 3))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    R = SO3().sample(7, rng)
    for l in range(5):
        D = SO3().irrep(str(l))(R)
        lhs = real_spherical_harmonics(l, np.einsum("kj,nji->nki", x, R))
        rhs = real_spherical_harmonics(l, x) @ D
        assert_allclose(lhs, rhs, atol=1e-12)
    # Degree 1 is the rotation itself in the basis (y, z, x).
    perm = [1, 2, 0]
    assert_allclose(SO3().irrep("1")(R), R[:, perm][:, :, perm], atol=ATOL)


def test_so3_sampler_is_haar():
    R = SO3().sample(100_000, 0)
    assert R.shape == (100_000, 3, 3) and R.dtype == np.float64
    assert_allclose(np.linalg.det(R), 1.0, atol=1e-12)
    tr = np.trace(R, axis1=1, axis2=2)
    # E[tr R] = 0 and E[tr(R)²] = 1 (tr = χ₁ and Schur); uniform Euler angles fail the second.
    assert abs(tr.mean()) < 5 * tr.std() / np.sqrt(len(tr))
    assert abs((tr**2).mean() - 1) < 5 * (tr**2).std() / np.sqrt(len(tr))
    # Uniform Euler angles (not Haar) are caught by the same statistic.
    a, b, c = np.random.default_rng(1).uniform(0, 2 * np.pi, (3, 100_000))
    b = b / 2
    euler = _zyz(a, b, c)
    t2 = np.trace(euler, axis1=1, axis2=2) ** 2
    assert abs(t2.mean() - 1) > 10 * t2.std() / np.sqrt(len(t2))


def _zyz(a, b, c):
    def rz(t):
        z = np.zeros((len(t), 3, 3))
        z[:, 0, 0] = z[:, 1, 1] = np.cos(t)
        z[:, 0, 1], z[:, 1, 0] = -np.sin(t), np.sin(t)
        z[:, 2, 2] = 1
        return z

    def ry(t):
        y = np.zeros((len(t), 3, 3))
        y[:, 0, 0] = y[:, 2, 2] = np.cos(t)
        y[:, 0, 2], y[:, 2, 0] = np.sin(t), -np.sin(t)
        y[:, 1, 1] = 1
        return y

    return rz(a) @ ry(b) @ rz(c)


@pytest.mark.parametrize("G", GROUPS, ids=repr)
def test_schur_orthogonality_by_haar_monte_carlo(G):
    n = 40_000
    x = G.sample(n, 5)
    irreps = G.irreps(2)
    # sqrt(d) ρ_ij are orthonormal in L²(G, Haar): the Gram matrix of all of them is I.
    F = np.concatenate([np.sqrt(r.dim) * r(x).reshape(n, -1) for r in irreps], axis=1)
    gram = F.T @ F / n
    se = np.sqrt((F**2).T @ (F**2) / n / n)  # standard error of each entry's mean
    assert np.all(np.abs(gram - np.eye(F.shape[1])) < 6 * se + 1e-12)
    assert_allclose(G.sample(10, 3), G.sample(10, np.random.default_rng(3)))
    assert not np.array_equal(G.sample(10, 3), G.sample(10, 4))
    if G.reflections:
        frac = (np.linalg.det(x) < 0).mean()
        assert abs(frac - 0.5) < 5 * 0.5 / np.sqrt(n)
    with pytest.raises(TypeError, match="generator"):
        G.sample(3, "seed")
    with pytest.raises(ValueError):
        G.sample(-1)


def test_o3_parity_convention():
    G = O3()
    R = SO3().sample(20, 6)
    inv = -R  # rotation composed with the inversion -I
    for l in range(4):
        for p, sign in (("e", 1.0), ("o", -1.0)):
            rho = G.irrep(f"{l}{p}")
            assert_allclose(rho(R), SO3().irrep(str(l))(R), atol=ATOL)
            assert_allclose(rho(inv), sign * SO3().irrep(str(l))(R), atol=ATOL)
            assert_allclose(rho.character_at(-np.eye(3)), sign * (2 * l + 1))
    # A vector is "1o": D^{1o}(g) = P g Pᵀ on all of O(3), reflections included.
    g = G.sample(50, 7)
    perm = [1, 2, 0]
    assert_allclose(G.irrep("1o")(g), g[:, perm][:, :, perm], atol=ATOL)
    assert_allclose(G.irrep("0o")(g)[:, 0, 0], np.linalg.det(g), atol=ATOL)


def test_o2_irreps():
    G = O2()
    g = G.sample(100, 8)
    assert_allclose(G.irrep("E1")(g), g, atol=ATOL)  # the defining representation
    assert_allclose(G.irrep("A2")(g)[:, 0, 0], np.linalg.det(g), atol=ATOL)
    grid = G.grid(6)
    assert grid.shape == (12, 2, 2)
    assert_allclose(np.linalg.det(grid), [1] * 6 + [-1] * 6, atol=1e-12)
    # On the grid (the dihedral group D6) every non-trivial irrep up to degree 2 averages
    # to zero exactly.
    for rho in G.irreps(2)[1:]:
        assert_allclose(rho(grid).mean(0), 0, atol=1e-12)


def test_bad_element_values_are_refused():
    with pytest.raises(ValueError, match="3x3"):
        SO3().irrep("1")(np.eye(2))
    with pytest.raises(ValueError, match="orthogonal"):
        SO3().irrep("1")(2 * np.eye(3))
    with pytest.raises(ValueError, match="determinant"):
        SO3().irrep("2")(-np.eye(3))
    with pytest.raises(TypeError, match="numeric"):
        O3().irrep("1o")(np.array([["a"]]))
    with pytest.raises(ValueError, match="finite"):
        O2().irrep("E1")(np.full((2, 2), np.nan))
    with pytest.raises(TypeError, match="str"):
        SO3().irrep(1)
