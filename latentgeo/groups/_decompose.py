"""Numerical decomposition of real orthogonal representations into real irreducibles.

The workhorse is the commutant: a generic *symmetric* element ``Y`` of the commutant of a
real representation ``M`` is block diagonal in an isotypic decomposition and, inside the
isotypic block of a real irrep of commutant dimension ``k`` occurring ``m`` times, acts as
a generic Hermitian ``m x m`` matrix over R, C or H.  Its eigenvalues are therefore
distinct across copies, and every eigenspace of ``Y`` is one irreducible invariant
subspace.  Irreducibility of a piece is checked (a generic symmetric commutant element of
an irreducible is a scalar) and pieces that merged because of an unlucky near-degenerate
eigenvalue are split again with fresh randomness, so the result does not depend on a
tolerance being lucky.  All randomness comes from a seeded local generator.
"""

from __future__ import annotations

import numpy as np

from ._irreps import IRREP_TYPES, Irrep, commutant_dimension

__all__ = [
    "complex_structure",
    "is_irreducible",
    "real_irreps_from_table",
    "split_representation",
]

# Relative size below which an eigenvalue gap is treated as a degeneracy.  Eigenvalues of a
# symmetric matrix are accurate to ~1e-15 ||Y||; generic gaps are ~||Y|| / D.
_GAP_RTOL = 1e-7
# Relative deviation from a scalar that still counts as "the commutant element is scalar".
_SCALAR_RTOL = 1e-8


def _random_symmetric(dim: int, rng: np.random.Generator) -> np.ndarray:
    x = rng.standard_normal((dim, dim))
    return x + x.T


def _group_average(mats: np.ndarray, x: np.ndarray) -> np.ndarray:
    """``(1/|G|) sum_g M_g X M_g^T``: the projection of ``X`` onto the commutant."""
    y = np.einsum("gij,jk,glk->il", mats, x, mats, optimize=True) / mats.shape[0]
    return (y + y.T) / 2


def _clusters(values: np.ndarray) -> list[np.ndarray]:
    """Indices of groups of (sorted) eigenvalues separated by more than the gap tolerance."""
    scale = max(float(np.max(np.abs(values))), 1e-300)
    breaks = np.flatnonzero(np.diff(values) > _GAP_RTOL * scale) + 1
    return np.split(np.arange(values.size), breaks)


def _check_representation(mats: object) -> np.ndarray:
    """Validate user-supplied representation matrices: a float64 (order, D, D) orthogonal stack."""
    arr = np.asarray(mats, dtype=np.float64)
    if arr.ndim != 3 or arr.shape[1] != arr.shape[2] or 0 in arr.shape:
        raise ValueError(
            f"representation matrices must have shape (order, D, D), got {arr.shape!r}"
        )
    gram = arr @ arr.transpose(0, 2, 1)
    err = float(np.abs(gram - np.eye(arr.shape[1])).max())
    if not err <= 1e-8:
        raise ValueError(
            f"representation matrices must be orthogonal (max |M M^T - I| = {err:.3g}); "
            "orthogonalise them first (e.g. polar decomposition)"
        )
    return arr


def is_irreducible(mats: np.ndarray, *, seed: int = 0) -> bool:
    """Whether a real orthogonal representation is irreducible (over the reals).

    Parameters
    ----------
    mats : array of shape (order, d, d)
        Orthogonal representation matrices.
    seed : int
        Seed of the random commutant sample.

    Returns
    -------
    bool
        True when a random symmetric element of the commutant is a scalar matrix.

    Raises
    ------
    ValueError
        If ``mats`` is not a stack of square orthogonal matrices.
    """
    return _irreducible(_check_representation(mats), np.random.default_rng(seed))


def _irreducible(mats: np.ndarray, rng: np.random.Generator) -> bool:
    dim = mats.shape[1]
    if dim == 1:
        return True
    y = _group_average(mats, _random_symmetric(dim, rng))
    scalar = np.trace(y) / dim
    return bool(np.linalg.norm(y - scalar * np.eye(dim)) <= _SCALAR_RTOL * np.linalg.norm(y))


def _refine(mats: np.ndarray, basis: np.ndarray) -> np.ndarray:
    """Make an almost invariant subspace exactly invariant (to rounding).

    The group average of its orthogonal projector commutes with the representation
    exactly; its eigenvalues near 1 (separated from those near 0 by a gap of about 1) span
    an invariant subspace close to ``basis``.
    """
    proj = _group_average(mats, basis @ basis.T)
    _, vecs = np.linalg.eigh(proj)
    return vecs[:, -basis.shape[1] :]


def split_representation(mats: np.ndarray, *, seed: int = 0) -> list[np.ndarray]:
    """Split a real orthogonal representation into irreducible invariant subspaces.

    Parameters
    ----------
    mats : array of shape (order, D, D)
        Orthogonal representation matrices ``M_g`` (a homomorphism of a finite group).
    seed : int
        Seed of the local random generator (results are deterministic given ``seed``).

    Returns
    -------
    list of array of shape (D, d_i)
        Orthonormal bases of mutually orthogonal irreducible invariant subspaces whose
        direct sum is ``R^D``.  For each basis ``U``, ``U.T @ M_g @ U`` is an orthogonal
        irreducible representation.

    Raises
    ------
    ValueError
        If ``mats`` is not a stack of square orthogonal matrices.

    Examples
    --------
    >>> from latentgeo.groups import Cyclic
    >>> reg = Cyclic(4).regular_representation()
    >>> sorted(u.shape[1] for u in split_representation(reg))
    [1, 1, 2]
    """
    mats = _check_representation(mats)
    rng = np.random.default_rng(seed)
    return _split(mats, np.eye(mats.shape[1]), rng, depth=0)


def _split(
    mats: np.ndarray, basis: np.ndarray, rng: np.random.Generator, depth: int
) -> list[np.ndarray]:
    dim = basis.shape[1]
    if dim == 1:
        return [basis]
    if depth > 64:  # pragma: no cover - would need dozens of degenerate random draws
        raise RuntimeError("representation did not split; is it orthogonal and a homomorphism?")
    restricted = np.einsum("ai,gab,bj->gij", basis, mats, basis, optimize=True)
    y = _group_average(restricted, _random_symmetric(dim, rng))
    values, vecs = np.linalg.eigh(y)
    groups = _clusters(values)
    if len(groups) == 1:
        # Y is scalar: irreducible with probability one; confirm with a fresh sample.
        if _irreducible(restricted, rng):
            return [basis]
        return _split(mats, basis, rng, depth + 1)
    pieces: list[np.ndarray] = []
    for idx in groups:
        sub = basis @ vecs[:, idx]
        sub = _refine(mats, sub)
        pieces.extend(_split(mats, sub, rng, depth + 1))
    return pieces


def complex_structure(mats: np.ndarray) -> np.ndarray:
    """The complex structure ``J`` (``J @ J = -I``, commuting) of a complex-type irrep.

    Parameters
    ----------
    mats : array of shape (order, d, d)
        Orthogonal matrices of a real irrep of complex type (commutant isomorphic to C).

    Returns
    -------
    array of shape (d, d)
        The antisymmetric orthogonal commutant element closest to the fixed antisymmetric
        seed matrix ``E_10 - E_01``; for a rotation irrep ``[[c, -s], [s, c]]`` this is the
        rotation by +90 degrees, which makes ``rho(g)`` multiplication by ``exp(i theta)``.
    """
    mats = _check_representation(mats)
    dim = mats.shape[1]
    if dim % 2:
        raise ValueError(f"a complex-type irrep has even dimension, got dimension {dim!r}")
    seed_matrix = np.zeros((dim, dim))
    seed_matrix[1, 0], seed_matrix[0, 1] = 1.0, -1.0
    rng = np.random.default_rng(0)
    for _ in range(10):
        y = np.einsum("gij,jk,glk->il", mats, seed_matrix, mats, optimize=True) / len(mats)
        a = (y - y.T) / 2
        # A nonzero antisymmetric commutant element is c * J with J^2 = -I.
        c2 = -np.trace(a @ a) / dim
        if c2 > 1e-12 * max(1.0, float(np.sum(seed_matrix**2))):
            j = a / np.sqrt(c2)
            # Pin the sign: positive overlap with the seed matrix.
            return j if np.sum(j * seed_matrix) >= 0 else -j
        seed_matrix = rng.standard_normal((dim, dim))
        seed_matrix = seed_matrix - seed_matrix.T
    raise ValueError("representation has no complex structure; is it of complex type?")


def _letters(i: int) -> str:
    """0 -> 'a', 25 -> 'z', 26 -> 'aa', ... (spreadsheet-style)."""
    s = ""
    i += 1
    while i:
        i, r = divmod(i - 1, 26)
        s = chr(ord("a") + r) + s
    return s


def real_irreps_from_table(
    table: np.ndarray, inverses: np.ndarray, *, seed: int = 0
) -> tuple[Irrep, ...]:
    """All real irreps of a finite group from its Cayley table (the previous generic path).

    Groups now use :func:`latentgeo.groups._regular.real_irreps_by_characters`, which is
    ``O(|G|^3)`` with small constants; this whole-regular-representation eigendecomposition is
    kept as an independent check in the tests and ``benchmarks/groups.py``.

    A random symmetric element of the right group algebra commutes with the left regular
    representation; its eigenspaces are irreducible subspaces of the regular
    representation.  One subspace per character is kept, made exactly invariant, and its
    matrices read off in an orthonormal basis.

    Parameters
    ----------
    table : int array of shape (order, order)
        Cayley table, ``table[a, b]`` = index of ``a∘b``, identity at index 0.
    inverses : int array of shape (order,)
        Index of each element's inverse.
    seed : int
        Seed of the local random generator.

    Returns
    -------
    tuple of Irrep
        Trivial irrep first, then sorted by dimension, type (real, complex, quaternionic)
        and character.  Names are ATLAS-style ``"1a"``, ``"1b"``, ``"2a"``, ... (dimension
        then a letter in that order).
    """
    n = table.shape[0]
    rng = np.random.default_rng(seed)
    # Left regular representation L_g e_h = e_{gh}, used through index arrays only:
    # (L_g B)[a] = B[g^-1 a], so perms[g] = (a -> g^-1 a).
    perms = table[inverses]
    cols = np.arange(n)

    def restrict(basis: np.ndarray) -> np.ndarray:
        # rho(g) = B^T L_g B
        return np.einsum("ai,gaj->gij", basis, basis[perms], optimize=True)

    def residual(basis: np.ndarray) -> float:
        moved = basis[perms]  # L_g B, shape (n, n, d)
        mats = np.einsum("ai,gaj->gij", basis, moved, optimize=True)
        return float(np.abs(moved - np.einsum("ai,gij->gaj", basis, mats)).max())

    def refine(basis: np.ndarray) -> np.ndarray:
        """Polish an almost invariant subspace until it is invariant to rounding.

        The twirl ``T = (1/n) sum_g L_g B B^T L_g^T`` commutes exactly with the group and
        has ``d`` eigenvalues near 1 (the rest near 0); subspace iteration with ``T``
        converges to that exactly invariant eigenspace, gaining a factor of the initial
        error per step, without an ``n x n`` eigendecomposition.
        """
        if residual(basis) < 1e-13:
            return basis
        moved = basis[perms]
        b = basis
        for _ in range(8):
            coeff = np.einsum("gaj,ak->gjk", moved, b, optimize=True)
            b, _ = np.linalg.qr(np.einsum("gaj,gjk->ak", moved, coeff, optimize=True))
            if residual(b) < 1e-13:
                break
        return b

    # Right action R_g e_h = e_{h g^-1}; Y = sum_g c_g (R_g + R_g^T) is symmetric and commutes
    # with every L_g, so its eigenspaces are invariant subspaces of the regular rep.
    coeff = rng.standard_normal(size=(n,))
    y = np.zeros((n, n))
    for g in range(n):
        y[table[cols, inverses[g]], cols] += coeff[g]
    y = y + y.T
    values, vecs = np.linalg.eigh(y)

    found: list[tuple[np.ndarray, np.ndarray]] = []  # (matrices, character)
    covered = 0

    def known(chi: np.ndarray) -> bool:
        return bool(found) and bool(
            (np.abs(np.stack([c for _, c in found]) - chi).max(axis=1) < 1e-6).any()
        )

    for idx in _clusters(values):
        basis = vecs[:, idx]
        # The character is accurate long before the subspace is polished; a cluster whose
        # character is already known is another copy of a found irrep (a merged cluster of
        # several irreps would have a character that is no irreducible one).
        chi = np.trace(restrict(basis), axis1=1, axis2=2)
        if known(chi):
            continue
        basis = refine(basis)
        pieces = _split(restrict(basis), np.eye(basis.shape[1]), rng, depth=0)
        for sub in pieces:
            piece = basis if len(pieces) == 1 else refine(basis @ sub)
            mats = restrict(piece)
            chi = np.trace(mats, axis1=1, axis2=2)
            if known(chi):
                continue
            found.append((mats, chi))
            covered += mats.shape[1] ** 2 // commutant_dimension(chi)
        if covered == n:
            break
    if covered != n:  # pragma: no cover - guarded by the construction above
        raise RuntimeError(f"regular representation decomposition covered {covered} of {n}")

    def sort_key(item: tuple[np.ndarray, np.ndarray]) -> tuple:
        mats, chi = item
        trivial = not np.allclose(chi, 1.0)
        k = commutant_dimension(chi)
        return (trivial, mats.shape[1], k, tuple(np.round(-chi, 6)))

    found.sort(key=sort_key)
    type_of_k = {k: t for t, k in IRREP_TYPES.items()}
    per_dim: dict[int, int] = {}
    irreps = []
    for mats, chi in found:
        d = mats.shape[1]
        letter = _letters(per_dim.get(d, 0))
        per_dim[d] = per_dim.get(d, 0) + 1
        irreps.append(Irrep(f"{d}{letter}", d, mats, chi, type_of_k[commutant_dimension(chi)]))
    return tuple(irreps)
