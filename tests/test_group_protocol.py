"""Every group answers the one protocol (latentgeo.groups.Group) the same way."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_allclose

from latentgeo.groups import (
    SO2,
    Cyclic,
    Dihedral,
    DirectProduct,
    FiniteGroup,
    Group,
    Symmetric,
    parse,
)

FINITE = [Cyclic(5), Dihedral(4), DirectProduct(Cyclic(2), Cyclic(3)), Symmetric(4)]
CONTINUOUS = [SO2()]
ATOL = 1e-10


@pytest.mark.parametrize("G", FINITE + CONTINUOUS, ids=repr)
def test_protocol_members(G):
    assert isinstance(G, Group)
    assert parse(G.spec) == G and parse(repr(G)) == G
    irreps = G.irreps(3)
    assert irreps[0].dim == 1 and irreps[0] is not None
    assert G.trivial_irrep == irreps[0]
    assert [r.name for r in irreps] == list(G.irrep_names(3))
    assert len(set(G.irrep_names(3))) == len(irreps)
    for rho in irreps:
        assert G.irrep(rho.name) == rho
        assert rho.type in ("real", "complex", "quaternionic")
    if G.is_finite:
        assert G.order == len(G.elements) and G.identity == 0
        assert_allclose(G.element_values(), np.arange(G.order))
        assert all(r.degree is None for r in irreps)
    else:
        assert G.order is None
        with pytest.raises(TypeError, match="continuous"):
            _ = G.elements
        with pytest.raises(TypeError, match="continuous"):
            G.element_values()
        with pytest.raises(ValueError, match="max_degree"):
            G.irreps()
        assert [r.degree for r in irreps] == list(range(4))


@pytest.mark.parametrize("G", FINITE + CONTINUOUS, ids=repr)
def test_sampled_irreps_are_homomorphisms(G):
    rng = np.random.default_rng(0)
    a, b = G.sample(64, rng), G.sample(64, rng)
    ab = G.compose(a, b)
    for rho in G.irreps(3):
        Ra, Rb, Rab = rho(a), rho(b), rho(ab)
        assert Ra.shape == (64, rho.dim, rho.dim)
        assert_allclose(Ra @ Rb, Rab, atol=ATOL)
        assert_allclose(rho(G.inverse(a)), np.swapaxes(Ra, 1, 2), atol=ATOL)  # orthogonal
        assert_allclose(rho.character_at(a), np.trace(Ra, axis1=1, axis2=2), atol=ATOL)
        assert_allclose(rho(np.asarray([G.identity]))[0], np.eye(rho.dim), atol=ATOL)


@pytest.mark.parametrize("G", FINITE + CONTINUOUS, ids=repr)
def test_sample_is_seeded_and_haar(G):
    assert_allclose(G.sample(10, 3), G.sample(10, np.random.default_rng(3)))
    assert not np.array_equal(G.sample(10, 3), G.sample(10, 4))
    # Haar: every non-trivial irrep averages to zero (Schur), the trivial to one.
    x = G.sample(20000, 0)
    for rho in G.irreps(2)[1:]:
        mean = rho(x).mean(axis=0)
        assert np.abs(mean).max() < 5 / np.sqrt(20000), rho.name
    with pytest.raises(TypeError, match="generator"):
        G.sample(3, "seed")
    with pytest.raises(ValueError):
        G.sample(-1)


def test_finite_grid_is_every_element():
    G = Dihedral(3)
    assert_allclose(G.grid(), np.arange(6))
    with pytest.raises(NotImplementedError, match="6 elements"):
        G.grid(5)


def test_finite_irrep_rejects_bad_elements():
    rho = Cyclic(4).irrep("E1")
    with pytest.raises(ValueError, match="range"):
        rho(np.array([4]))
    with pytest.raises(TypeError, match="integer"):
        rho(np.array([0.5]))


def test_so2_irrep_by_name():
    G = SO2()
    assert G.irrep("E2") == G.irrep(2) and G.irrep("A").dim == 1
    with pytest.raises(ValueError, match="'B'"):
        G.irrep("B")


def test_cayley_table_group_is_a_group():
    G = FiniteGroup.from_cayley_table(Cyclic(6).cayley_table)
    assert isinstance(G, Group) and G.is_finite and len(G.irreps()) == 4
