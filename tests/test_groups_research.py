"""Research-size finite groups: S_6, S_7, A_n, Q8, permutation groups from generators, the
Burnside–Dixon characters, and spectra / projections computed from characters alone."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from numpy.testing import assert_allclose, assert_array_equal

from latentgeo.groups import (
    Alternating,
    Cyclic,
    Dihedral,
    DirectProduct,
    FiniteGroup,
    PermutationGroup,
    Quaternion,
    Symmetric,
    isotypic_energies,
    parse,
    project_isotypic,
)
from latentgeo.groups._characters import character_table
from probes import invariance, orbit_spectrum

ATOL = 1e-10
K_OF_TYPE = {"real": 1, "complex": 2, "quaternionic": 4}
A5_GENERATORS = [(1, 2, 0, 3, 4), (0, 1, 3, 4, 2)]  # (0 1 2) and (2 3 4)


def relabel(G: FiniteGroup, seed: int) -> tuple[FiniteGroup, np.ndarray]:
    """G's table with the non-identity elements shuffled; ``perm[old] = new``."""
    rng = np.random.default_rng(seed)
    perm = np.concatenate([[0], 1 + rng.permutation(G.order - 1)])
    table = np.empty_like(G.cayley_table)
    table[perm[:, None], perm[None, :]] = perm[G.cayley_table]
    return FiniteGroup.from_cayley_table(table), perm


def check_irreps(G: FiniteGroup, n_pairs: int | None = None, seed: int = 0) -> None:
    """Homomorphism and orthogonality (on all pairs or a sample), Schur, FS type, sum d^2/k."""
    t = G.cayley_table
    rng = np.random.default_rng(seed)
    if n_pairs is None:
        a, b = np.divmod(np.arange(G.order**2), G.order)
    else:
        a, b = rng.integers(0, G.order, (2, n_pairs))
    squares = t[np.arange(G.order), np.arange(G.order)]
    for rho in G.irreps():
        m = rho.matrices
        assert_allclose(m[t[a, b]], m[a] @ m[b], atol=ATOL)
        assert_allclose(
            m[a] @ m[a].transpose(0, 2, 1), np.broadcast_to(np.eye(rho.dim), m[a].shape), atol=ATOL
        )
        expected = {"real": 1.0, "complex": 0.0, "quaternionic": -2.0}[rho.type]
        assert_allclose(rho.character[squares].mean(), expected, atol=ATOL)
    chars = np.stack([r.character for r in G.irreps()])
    k = [K_OF_TYPE[r.type] for r in G.irreps()]
    assert_allclose(chars @ chars.T / G.order, np.diag(k), atol=ATOL)
    assert sum(r.dim**2 // K_OF_TYPE[r.type] for r in G.irreps()) == G.order


# -- named groups ---------------------------------------------------------------------------


def test_alternating_groups_have_the_known_irreps() -> None:
    A5 = Alternating(5)
    assert A5.order == 60 and A5.spec == "A5" and parse("A5") == A5
    assert sorted(r.dim for r in A5.irreps()) == [1, 3, 3, 4, 5]
    assert [r.name for r in A5.irreps()] == ["[5]", "[4,1]", "[3,2]", "[3,1,1]+", "[3,1,1]-"]
    assert all(r.type == "real" for r in A5.irreps())
    # The two 3-dim irreps differ on the 5-cycles: (1 ± sqrt 5) / 2.
    five_cycle = A5.index((1, 2, 3, 4, 0))
    golden = sorted(r.character[five_cycle] for r in A5.irreps() if r.dim == 3)
    assert_allclose(golden, [(1 - 5**0.5) / 2, (1 + 5**0.5) / 2], atol=ATOL)
    # A4: the 1-dim complex pair (omega, omega^2) is one real irrep of complex type.
    assert [(r.dim, r.type) for r in Alternating(4).irreps()] == [
        (1, "real"),
        (3, "real"),
        (2, "complex"),
    ]
    assert all(sum(p[i] != i for i in range(5)) in (0, 3, 4, 5) for p in A5.permutations)
    check_irreps(Alternating(6), n_pairs=400)


def test_quaternion_group_closed_forms() -> None:
    Q = Quaternion()
    assert parse("Q8") == Q and Q.spec == "Q8" and parse(repr(Q)) == Q
    assert Q.elements[Q.compose("i", "j")] == "k"
    assert Q.elements[Q.compose("j", "i")] == "-k"
    assert Q.elements[Q.compose("i", "i")] == "-1"
    H = Q.irrep("H")
    assert (H.dim, H.type) == (4, "quaternionic")
    assert_allclose(H.character, 4 * Q.units[:, 0], atol=ATOL)
    # The commutant of the quaternionic irrep is 4-dimensional (right multiplications).
    assert_allclose(np.mean(H.character**2), 4.0, atol=ATOL)
    check_irreps(Q)
    with pytest.raises(ValueError, match="'Q8'"):
        parse("Q4")


def test_from_generators_builds_A5_identical_to_alternating() -> None:
    G = FiniteGroup.from_generators(A5_GENERATORS)
    A5 = Alternating(5)
    assert isinstance(G, PermutationGroup) and G.order == 60
    assert G.permutations == A5.permutations  # same lexicographic order: same labelling
    assert_array_equal(G.cayley_table, A5.cayley_table)
    assert sorted(map(len, G.conjugacy_classes)) == [1, 12, 12, 15, 20]
    assert G.elements[0] == "e" and G.index((1, 2, 0, 3, 4)) == G.index("(0 1 2)")
    # Generic characters equal the closed forms (restricted Young form).
    for rho in A5.irreps():
        assert sum(np.allclose(rho.character, s.character, atol=ATOL) for s in G.irreps()) == 1
    assert parse(repr(G)) == G and G == FiniteGroup.from_generators(list(reversed(A5_GENERATORS)))
    # Relabelled by a random conjugation of the points: same order and class sizes.
    H = FiniteGroup.from_generators([(1, 0, 3, 2, 4), (0, 2, 1, 4, 3), (4, 1, 2, 0, 3)])
    assert H.order == 60
    assert sorted(map(len, H.conjugacy_classes)) == [1, 12, 12, 15, 20]


def test_from_generators_rejects_bad_permutations() -> None:
    with pytest.raises(ValueError, match=r"\[0, 0, 1\] is not a permutation of range\(3\)"):
        FiniteGroup.from_generators([(0, 0, 1)])
    with pytest.raises(ValueError, match="same length"):
        FiniteGroup.from_generators([(0, 1), (0, 2, 1)])
    with pytest.raises(TypeError, match="integers"):
        FiniteGroup.from_generators([(0.0, 1.0)])
    with pytest.raises(TypeError, match="sequence of permutation"):
        FiniteGroup.from_generators("01")
    with pytest.raises(ValueError, match="got 8"):
        Alternating(8)
    assert FiniteGroup.from_generators([(0, 1, 2)]).order == 1


def test_dixon_character_table_is_unitary_and_integral() -> None:
    for G in (Symmetric(5), Alternating(5), Quaternion(), DirectProduct(Cyclic(3), Dihedral(4))):
        ct = character_table(G.cayley_table, G.inverses, G.conjugacy_classes, seed=3)
        r = len(G.conjugacy_classes)
        u = ct.values * np.sqrt(ct.class_sizes / G.order)[None, :]
        assert_allclose(u @ u.conj().T, np.eye(r), atol=ATOL)  # row orthonormality
        assert_allclose(u.conj().T @ u, np.eye(r), atol=ATOL)  # column orthonormality
        assert int((ct.degrees**2).sum()) == G.order
        # one real irrep per real/quaternionic character and per complex-conjugate pair
        nu = ct.indicators
        n_real = int((nu != 0).sum() + (nu == 0).sum() // 2)
        assert len(G.irreps()) == n_real
        assert sorted(r.type for r in G.irreps()) == sorted(
            ["real"] * int((nu == 1).sum())
            + ["quaternionic"] * int((nu == -1).sum())
            + ["complex"] * int((nu == 0).sum() // 2)
        )


# -- spectra and projections from characters ------------------------------------------------


@pytest.mark.parametrize(
    "G",
    [
        Dihedral(4),
        Quaternion(),
        Alternating(4),
        Symmetric(4),
        DirectProduct(Cyclic(3), Quaternion()),
    ],
    ids=lambda G: G.spec,
)
def test_character_energies_equal_the_projector_path(G: FiniteGroup) -> None:
    rng = np.random.default_rng(0)
    Z = rng.standard_normal((G.order, 7, 5))
    flat = torch.from_numpy(Z.reshape(G.order, -1))
    gram = flat @ flat.T
    names, energy = isotypic_energies(G, gram)
    projectors = G.isotypic_projectors()
    reference = [float(np.einsum("gh,gh->", projectors[n], gram.numpy())) for n in names]
    assert_allclose(energy.numpy(), reference, rtol=1e-10, atol=1e-10)
    assert_allclose(float(energy.sum()), float(torch.trace(gram)), rtol=1e-12)
    for rho in G.irreps():
        out = project_isotypic(G, rho, torch.from_numpy(Z))
        assert_allclose(out.numpy(), np.einsum("gh,hnd->gnd", projectors[rho.name], Z), atol=ATOL)
    # The spectrum is the normalised energy of the centred orbit; its trivial share is invariance.
    spec = orbit_spectrum(Z, G)
    assert_allclose(float(spec.sel(irrep=names[0])), invariance(Z), atol=1e-12)


def test_spectrum_of_S6_with_many_units_needs_no_projectors() -> None:
    G = Symmetric(6)
    rng = np.random.default_rng(1)
    # Planted: every unit is a fixed linear function of the [5,1] (standard) irrep's matrices.
    rho = G.irrep("[5,1]")
    coef = rng.standard_normal((25, 40))
    Z = rho.matrices.reshape(G.order, 25) @ coef  # (720, 40): one sample
    Z = np.repeat(Z[:, None, :], 3, axis=1) + 0.0
    spec = orbit_spectrum(Z, G)
    assert_allclose(float(spec.sel(irrep="[5,1]")), 1.0, atol=1e-10)
    assert_allclose(float(spec.sum()), 1.0, atol=1e-12)
    assert "_projectors" not in G.__dict__  # never built


# -- timings-sized groups (slow) ----------------------------------------------------------------


@pytest.mark.slow
def test_generic_path_on_S6_and_S4xC21_tables_agrees_with_closed_forms() -> None:
    for G in (Symmetric(6), DirectProduct(Symmetric(4), Cyclic(21))):
        H, perm = relabel(G, seed=7)
        check_irreps(H, n_pairs=300)
        back = np.argsort(perm)
        for rho in G.irreps():
            chi = rho.character[back]
            assert sum(np.allclose(chi, s.character, atol=1e-9) for s in H.irreps()) == 1
        assert len(H.irreps()) == len(G.irreps())


@pytest.mark.slow
def test_S7_and_A7_irreps_are_homomorphisms() -> None:
    for G in (Symmetric(7), Alternating(7)):
        check_irreps(G, n_pairs=100)
    A7 = Alternating(7)
    # [4,1,1,1] is self-conjugate with complex split characters (b7 = (-1 ± sqrt -7)/2).
    assert (A7.irrep("[4,1,1,1]").dim, A7.irrep("[4,1,1,1]").type) == (20, "complex")
