"""Character tables of finite groups by the Burnside–Dixon method, without GAP.

The class sums ``K_1, ..., K_r`` of a finite group span the centre of its group algebra and
multiply as ``K_j K_i = sum_k c_jik K_k``, with structure constants
``c_jik = #{x in C_j : x^-1 z_k in C_i}`` (``z_k`` a representative of class ``k``).  Every
complex irreducible character ``chi`` gives a central character
``omega(K_j) = |C_j| chi(z_j) / chi(1)``, and the vectors ``(omega(K_k))_k`` are the common
eigenvectors of the matrices ``(M_j)_ik = c_jik`` (Burnside 1911; Dixon, "High speed computation
of group characters", Numer. Math. 10, 1967).  Dixon works modulo a prime to get exact
characters; here the same eigenproblem is solved in floating point, made well conditioned by
scaling with ``sqrt(|C_k|)``: in that basis the ``M_j`` are normal, their common eigenvectors are
the orthonormal columns ``chi(z_k) sqrt(|C_k| / |G|)`` of the unitary character table, and a
random Hermitian combination ``sum_j c_j M_j + conj(c_j) M_j^H`` separates all of them with
one call to ``eigh``.  The cost is ``O(|G| r^2)`` for the structure constants and ``O(r^3)``
for the eigenproblem (``r`` classes); no ``|G| x |G|`` matrix is formed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["CharacterTable", "character_table", "class_index"]

# Smallest accepted gap between eigenvalues of the random Hermitian class-sum combination,
# relative to their spread; below it the draw is repeated (the characters would mix).
_MIN_REL_GAP = 1e-6
# Largest accepted deviation of a computed irrep degree from an integer.
_DEGREE_TOL = 1e-6


@dataclass(frozen=True)
class CharacterTable:
    """The complex character table of a finite group, by conjugacy class.

    Attributes
    ----------
    class_of : int array of shape (order,)
        Index of the conjugacy class of every element.
    class_sizes : int array of shape (n_classes,)
        Number of elements of each class.
    representatives : int array of shape (n_classes,)
        One element of each class (the smallest index).
    values : complex array of shape (n_classes, n_classes)
        ``values[i, k]`` is the character of irrep ``i`` on class ``k``; trivial first.
    degrees : int array of shape (n_classes,)
        ``chi_i(1)``.
    indicators : int array of shape (n_classes,)
        Frobenius–Schur indicators: 1 (real type), 0 (complex), -1 (quaternionic).
    """

    class_of: np.ndarray
    class_sizes: np.ndarray
    representatives: np.ndarray
    values: np.ndarray
    degrees: np.ndarray
    indicators: np.ndarray


def class_index(classes: tuple[tuple[int, ...], ...], order: int) -> np.ndarray:
    """Class index of every element from a list of classes (int64 array of shape (order,))."""
    class_of = np.empty(order, dtype=np.int64)
    for c, members in enumerate(classes):
        class_of[np.asarray(members, dtype=np.int64)] = c
    return class_of


def _structure_constants(
    table: np.ndarray, inverses: np.ndarray, class_of: np.ndarray, reps: np.ndarray
) -> np.ndarray:
    """``c[j, i, k] = #{x in C_j : x^-1 z_k in C_i}``, shape (r, r, r), float64."""
    r = reps.size
    c = np.zeros((r, r, r))
    cls_x = class_of
    for k, z in enumerate(reps):
        cls_y = class_of[table[inverses, z]]  # class of x^-1 z for every x
        c[:, :, k] = np.bincount(cls_x * r + cls_y, minlength=r * r).reshape(r, r)
    return c


def character_table(
    table: np.ndarray,
    inverses: np.ndarray,
    classes: tuple[tuple[int, ...], ...],
    *,
    seed: int = 0,
) -> CharacterTable:
    """The complex character table of a finite group by the Burnside–Dixon method.

    Parameters
    ----------
    table : int array of shape (order, order)
        Cayley table, ``table[a, b]`` = index of ``a∘b``, identity at 0.
    inverses : int array of shape (order,)
    classes : tuple of tuple of int
        Conjugacy classes, the identity's ``(0,)`` first.
    seed : int
        Seed of the random combination of class sums (results do not depend on it beyond
        rounding).

    Returns
    -------
    CharacterTable
        Irreducible characters ordered by degree, then by decreasing real part of their
        values (a deterministic order), trivial first.

    Raises
    ------
    RuntimeError
        If no random combination separates the characters in 16 draws, or the computed
        degrees are not integers (a table that is not a group's).
    """
    n = table.shape[0]
    class_of = class_index(classes, n)
    sizes = np.array([len(c) for c in classes], dtype=np.int64)
    reps = np.array([c[0] for c in classes], dtype=np.int64)
    r = reps.size
    if r == 1:
        values = np.ones((1, 1), dtype=complex)
    else:
        c = _structure_constants(table, inverses, class_of, reps)
        scale = np.sqrt(sizes.astype(np.float64))
        # M'_j = D^-1 M_j D, (M_j)_ik = c_jik: normal matrices with orthonormal common
        # eigenvectors chi_i(z_k) sqrt(|C_k| / n).
        mats = c / scale[None, :, None] * scale[None, None, :]
        rng = np.random.default_rng(seed)
        for _ in range(16):
            coeff = rng.standard_normal(r) + 1j * rng.standard_normal(r)
            h = np.einsum("j,jik->ik", coeff, mats)
            h = h + h.conj().T
            evals, vecs = np.linalg.eigh(h)
            spread = max(float(evals[-1] - evals[0]), 1e-300)
            if float(np.min(np.diff(evals))) > _MIN_REL_GAP * spread:
                break
        else:  # pragma: no cover - would need 16 near-degenerate random draws
            raise RuntimeError("class sums did not separate the characters")
        u0 = vecs[0]  # component on the identity class
        phase = np.conj(u0) / np.abs(u0)
        values = (np.sqrt(n / sizes)[:, None] * vecs * phase[None, :]).T
    degrees_f = values[:, 0].real
    degrees = np.rint(degrees_f).astype(np.int64)
    if np.abs(degrees_f - degrees).max() > _DEGREE_TOL or (degrees < 1).any():
        raise RuntimeError(f"computed irrep degrees {degrees_f.tolist()} are not integers")
    # Frobenius–Schur indicator (1/|G|) sum_g chi(g^2), by class.
    square_class = class_of[table[reps, reps]]
    nu = (values[:, square_class] * sizes[None, :]).sum(axis=1).real / n
    indicators = np.rint(nu).astype(np.int64)
    if np.abs(nu - indicators).max() > _DEGREE_TOL:
        raise RuntimeError(f"Frobenius–Schur indicators {nu.tolist()} are not integers")
    # Deterministic order: trivial first, then degree, then values (real part, rounded).
    trivial = np.abs(values - 1).max(axis=1) < 1e-8
    keys = [
        (
            not trivial[i],
            int(degrees[i]),
            tuple(np.round(-values[i].real, 8)),
            tuple(np.round(-values[i].imag, 8)),
        )
        for i in range(r)
    ]
    order = sorted(range(r), key=keys.__getitem__)
    values = values[order]
    # Snap the rounding noise of real-valued characters.
    realish = np.abs(values.imag).max(axis=1) < 1e-9
    values[realish] = values[realish].real
    return CharacterTable(
        class_of=class_of,
        class_sizes=sizes,
        representatives=reps,
        values=values,
        degrees=degrees[order],
        indicators=indicators[order],
    )


def real_characters(ct: CharacterTable) -> list[tuple[np.ndarray, int, int]]:
    """Characters of the real irreps from the complex character table.

    Returns
    -------
    list of (character by class (float64, shape (n_classes,)), real dimension, k)
        One entry per real irrep: ``chi`` (real type, ``k = 1``), ``chi + conj(chi)`` for
        each pair of complex conjugate characters (complex type, ``k = 2``), ``2 chi``
        (quaternionic type, ``k = 4``).
    """
    out: list[tuple[np.ndarray, int, int]] = []
    used = np.zeros(len(ct.degrees), dtype=bool)
    for i, (chi, d, nu) in enumerate(zip(ct.values, ct.degrees, ct.indicators, strict=True)):
        if used[i]:
            continue
        used[i] = True
        if nu == 1:
            out.append((chi.real.copy(), int(d), 1))
        elif nu == -1:
            out.append((2 * chi.real, 2 * int(d), 4))
        else:
            dist = np.abs(ct.values - np.conj(chi)[None, :]).max(axis=1)
            dist[used] = np.inf
            j = int(np.argmin(dist))
            if dist[j] > 1e-6:  # pragma: no cover - a character table is closed under conj
                raise RuntimeError("complex character without its conjugate")
            used[j] = True
            out.append((2 * chi.real, 2 * int(d), 2))
    return out
