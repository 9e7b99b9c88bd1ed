"""Value-object behaviour of latentgeo.groups: parse/repr round trips, hashing, errors, SO2."""

from __future__ import annotations

import copy
import pickle

import numpy as np
import pytest
import scipy.linalg
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.testing import assert_allclose, assert_array_equal

from latentgeo.groups import (
    SO2,
    Alternating,
    Cyclic,
    Dihedral,
    DirectProduct,
    FiniteGroup,
    Irrep,
    Quaternion,
    Symmetric,
    parse,
)

ATOL = 1e-12

KLEIN_NAMED = FiniteGroup.from_cayley_table(
    [[0, 1, 2, 3], [1, 0, 3, 2], [2, 3, 0, 1], [3, 2, 1, 0]], names=["e", "a", "b", "a,b)"]
)

VALUES = [
    Cyclic(1),
    Cyclic(8),
    Dihedral(1),
    Dihedral(4),
    Symmetric(3),
    Symmetric(5),
    DirectProduct(Cyclic(2), Cyclic(4)),
    DirectProduct(Cyclic(2), DirectProduct(Cyclic(3), Dihedral(3))),
    DirectProduct(DirectProduct(Cyclic(2), Cyclic(2)), Cyclic(2)),
    FiniteGroup.from_cayley_table([[0, 1], [1, 0]]),
    KLEIN_NAMED,
    DirectProduct(KLEIN_NAMED, Cyclic(3)),
    DirectProduct(Cyclic(3), KLEIN_NAMED),
    SO2(),
    Symmetric(6),
    Alternating(5),
    Quaternion(),
    FiniteGroup.from_generators([(1, 2, 0, 3, 4), (0, 1, 3, 4, 2)]),
    DirectProduct(Quaternion(), Alternating(4)),
]


@pytest.mark.parametrize("G", VALUES, ids=repr)
def test_parse_repr_and_spec_round_trip(G) -> None:
    for text in (repr(G), G.spec):
        H = parse(text)
        assert H == G and hash(H) == hash(G) and type(H) is type(G)
    assert parse(G) is G
    assert pickle.loads(pickle.dumps(G)) == G
    assert copy.deepcopy(G) == G


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("C8", Cyclic(8)),
        ("D4", Dihedral(4)),
        ("S3", Symmetric(3)),
        ("SO2", SO2()),
        ("A5", Alternating(5)),
        ("Q8", Quaternion()),
        ("Q8xA4", DirectProduct(Quaternion(), Alternating(4))),
        ("SO2xC2", None),
        (" C2 x C4 ", DirectProduct(Cyclic(2), Cyclic(4))),
        ("C2xC3xC4", DirectProduct(DirectProduct(Cyclic(2), Cyclic(3)), Cyclic(4))),
        ("C2x(C3xC4)", DirectProduct(Cyclic(2), DirectProduct(Cyclic(3), Cyclic(4)))),
        ("Cyclic(2)xD3", DirectProduct(Cyclic(2), Dihedral(3))),
        ("DirectProduct(Dihedral(4), Symmetric(3))", DirectProduct(Dihedral(4), Symmetric(3))),
    ],
)
def test_parse_specs(text: str, expected) -> None:
    if expected is None:  # a continuous factor is refused by DirectProduct
        with pytest.raises(TypeError, match="SO2"):
            parse(text)
        return
    assert parse(text) == expected


def test_equality_is_by_value_and_kind() -> None:
    assert Cyclic(4) == Cyclic(4) and Cyclic(4) != Cyclic(5)
    assert hash(Dihedral(3)) == hash(Dihedral(3))
    # same abstract group, different kind (and different irrep names): not equal
    assert Cyclic(2) != Dihedral(1)
    assert Cyclic(4) != FiniteGroup.from_cayley_table(Cyclic(4).cayley_table)
    assert len({Cyclic(3), Cyclic(3), parse("C3"), Dihedral(3)}) == 2
    assert Cyclic(3) != "C3"


@pytest.mark.parametrize("G", [Cyclic(4), Dihedral(3), KLEIN_NAMED, Symmetric(3)], ids=repr)
def test_groups_and_irreps_are_immutable(G: FiniteGroup) -> None:
    with pytest.raises(AttributeError):
        G.order = 3
    with pytest.raises(AttributeError):
        G.foo = 1
    with pytest.raises(ValueError):
        G.cayley_table[0, 0] = 1
    rho = G.irreps()[-1]
    with pytest.raises(AttributeError):
        rho.name = "X"
    with pytest.raises(ValueError):
        rho.matrices[0, 0, 0] = 2.0
    # the cached irreps are computed once per instance, projectors are fresh copies
    assert G.irreps() is G.irreps()
    p = G.isotypic_projectors()
    p[rho.name][:] = 0
    assert G.isotypic_projectors()[rho.name].any()
    assert G.irreps() == parse(repr(G)).irreps()


def test_index_by_name_and_errors() -> None:
    G = Dihedral(4)
    assert G.index("r3s") == 7 and G.index(np.int64(5)) == 5
    with pytest.raises(ValueError, match=r"'t'.*valid names.*'r2s'"):
        G.index("t")
    with pytest.raises(ValueError, match="8"):
        G.index(8)
    with pytest.raises(TypeError, match=r"2\.0"):
        G.index(2.0)
    with pytest.raises(TypeError, match="True"):
        G.index(True)
    with pytest.raises(ValueError, match=r"'E9'.*'E1'"):
        G.irrep("E9")
    with pytest.raises(ValueError, match="range"):
        G.compose(np.array([0, 9]), 0)


@pytest.mark.parametrize(
    ("make", "exc", "match"),
    [
        (lambda: Cyclic(0), ValueError, "0"),
        (lambda: Cyclic(-3), ValueError, "-3"),
        (lambda: Cyclic(2.0), TypeError, "2.0"),
        (lambda: Cyclic(True), TypeError, "True"),
        (lambda: Dihedral(0), ValueError, "0"),
        (lambda: Symmetric(8), ValueError, r"\[1, 7\], got 8"),
        (lambda: Symmetric(0), ValueError, "0"),
        (lambda: DirectProduct(Cyclic(2), SO2()), TypeError, "SO2"),
        (lambda: SO2().irrep(-1), ValueError, "-1"),
        (lambda: parse("Q8x"), ValueError, "'Q8x'"),
        (lambda: parse("C8x"), ValueError, "'C8x'"),
        (lambda: parse("C"), ValueError, "'C'"),
        (lambda: parse(""), ValueError, "''"),
        (lambda: parse("C2xC3)"), ValueError, "trailing"),
        (lambda: parse("(C2xC3"), ValueError, r"\)"),
        (lambda: parse("Cyclic(n)"), ValueError, "literal"),
        (lambda: parse("Cyclic(0)"), ValueError, "0"),
        (lambda: parse("__import__('os')"), ValueError, "import"),
        (lambda: parse("FiniteGroup.from_cayley_table([[0, 1], [0, 1]])"), ValueError, "latin"),
        (lambda: parse(8), TypeError, "8"),
        (lambda: parse("Cyclic(8, 9)"), ValueError, "bad arguments"),
        (lambda: parse("Cyclic(2.0)"), ValueError, r"2\.0"),
    ],
)
def test_bad_input_raises_clear_errors(make, exc, match) -> None:
    with pytest.raises(exc, match=match):
        make()


@pytest.mark.parametrize(
    ("table", "match"),
    [
        ([[0, 1], [1, 1]], "latin square"),  # row 1 repeats
        ([[0, 1, 2], [1, 2, 0]], "square"),
        ([[0, 2], [2, 0]], "table\\[0, 1\\] = 2"),
        ([[1, 0], [0, 1]], "identity must be element 0"),  # identity is element 1
        ([[0, 1, 2], [2, 0, 1], [1, 2, 0]], "identity"),  # latin square without identity
        # a loop of order 5 (latin square with identity 0) that is not associative
        (
            [[0, 1, 2, 3, 4], [1, 0, 3, 4, 2], [2, 4, 0, 1, 3], [3, 2, 4, 0, 1], [4, 3, 1, 2, 0]],
            "not associative",
        ),
        ([], "square"),
    ],
)
def test_cayley_table_validation(table, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        FiniteGroup.from_cayley_table(table)


def test_cayley_table_type_and_name_errors() -> None:
    with pytest.raises(TypeError, match="integer"):
        FiniteGroup.from_cayley_table([[0.0, 1.5], [1.5, 0.0]])
    with pytest.raises(TypeError, match="dtype"):
        FiniteGroup.from_cayley_table([["e", "a"], ["a", "e"]])
    with pytest.raises(ValueError, match=r"duplicates \['e'\]"):
        FiniteGroup.from_cayley_table([[0, 1], [1, 0]], names=["e", "e"])
    with pytest.raises(ValueError, match="one entry per element"):
        FiniteGroup.from_cayley_table([[0, 1], [1, 0]], names=["e"])
    with pytest.raises(TypeError, match="str"):
        FiniteGroup.from_cayley_table([[0, 1], [1, 0]], names=["e", 1])
    G = FiniteGroup.from_cayley_table(np.array([[0, 1], [1, 0]], dtype=np.float32))
    assert G.elements == ("e", "g1") and G.cayley_table.dtype == np.int64


def test_irrep_validation() -> None:
    with pytest.raises(ValueError, match="type"):
        Irrep("X", 1, np.ones((2, 1, 1)), np.ones(2), "imaginary")
    with pytest.raises(ValueError, match=r"\(2, 1, 1\)"):
        Irrep("X", 2, np.ones((2, 1, 1)), np.ones(2), "real")
    with pytest.raises(ValueError, match="squared norm"):
        Irrep.from_matrices("X", np.stack([np.eye(3), np.eye(3)]))  # 3 x trivial: norm 9
    rho = Irrep.from_matrices("B", np.array([[[1.0]], [[-1.0]]]))
    assert rho.type == "real" and rho.commutant_dim == 1 and rho.multiplicity_in_regular == 1


# -- SO(2) ------------------------------------------------------------------------------

angles = st.floats(-20.0, 20.0, allow_nan=False)


@settings(max_examples=100, deadline=None)
@given(angles, angles, st.integers(0, 6))
def test_so2_exp_and_irreps_are_homomorphisms(a: float, b: float, k: int) -> None:
    G = SO2()
    assert_allclose(G.exp(a) @ G.exp(b), G.exp(G.compose(a, b)), atol=ATOL)
    assert_allclose(G.exp(a), scipy.linalg.expm(a * G.generator), atol=1e-10)
    assert_allclose(G.exp(a) @ G.exp(G.inverse(a)), np.eye(2), atol=ATOL)
    rho = G.irrep(k)
    assert_allclose(rho(a) @ rho(b), rho(a + b), atol=ATOL)
    assert_allclose(rho(a), scipy.linalg.expm(a * rho.generator), atol=1e-10)
    assert_allclose(rho.character_at(a), np.trace(rho(a)), atol=ATOL)
    assert_allclose(np.cos(G.log(G.exp(a)) - a), 1.0, atol=ATOL)


def test_so2_structure_and_discretization() -> None:
    G = SO2()
    assert_array_equal(G.generator, [[0.0, -1.0], [1.0, 0.0]])
    assert_allclose(G.generator + G.generator.T, 0.0)
    theta = np.linspace(-3, 3, 7)
    R = G.exp(theta)
    assert R.shape == (7, 2, 2) and R.dtype == np.float64
    assert_allclose(R @ R.transpose(0, 2, 1), np.broadcast_to(np.eye(2), R.shape), atol=ATOL)
    assert_allclose(np.linalg.det(R), 1.0, atol=ATOL)
    assert_allclose(G.log(R), theta, atol=ATOL)
    for n in (1, 4, 7, 8):
        C = G.discretize(n)
        assert C == Cyclic(n)
        grid = G.grid(n)
        assert_allclose(grid, 2 * np.pi * np.arange(n) / n)
        if n > 2:
            assert_allclose(G.exp(grid), C.irrep("E1").matrices, atol=ATOL)
        for rho in C.irreps():  # every C_n irrep is the restriction of an SO(2) irrep
            if rho.name.startswith("E"):
                assert_allclose(G.irrep(int(rho.name[1:]))(grid), rho.matrices, atol=ATOL)
            elif rho.name == "A":
                assert_allclose(G.irrep(0)(grid), rho.matrices, atol=ATOL)
            else:  # "B" is frequency n/2 on the grid
                assert_allclose(G.irrep(n // 2).character_at(grid) / 2, rho.character, atol=ATOL)
    assert [r.name for r in G.irreps(2)] == ["A", "E1", "E2"]
    assert G.irrep(0).dim == 1 and G.irrep(3).dim == 2 and G.irrep(3).type == "complex"
    assert G.irrep(2) == SO2().irrep(2) and hash(G.irrep(2)) == hash(SO2().irrep(2))


def test_decomposition_helpers_validate_matrices() -> None:
    from latentgeo.groups import complex_structure, is_irreducible, split_representation

    with pytest.raises(ValueError, match=r"\(order, D, D\)"):
        split_representation(np.ones((3, 2)))
    with pytest.raises(ValueError, match="orthogonal"):
        is_irreducible(2 * np.ones((2, 2, 2)))
    with pytest.raises(ValueError, match="even dimension"):
        complex_structure(Dihedral(3).irrep("A2").matrices)
    with pytest.raises(ValueError, match="no complex structure"):
        complex_structure(Dihedral(3).irrep("E1").matrices)  # real type: commutant is R
    J = complex_structure(Cyclic(5).irrep("E2").matrices)
    assert_allclose(J, [[0.0, -1.0], [1.0, 0.0]], atol=ATOL)
