"""Real irreps of any finite group from its characters and the regular representation.

Method (``O(|G|^3)`` in all, no ``|G| x |G|`` eigendecomposition):

1. Complex characters and Frobenius–Schur indicators by the Burnside–Dixon method
   (:mod:`._characters`); from them the characters ``psi`` of the real irreps
   (``chi``, ``chi + conj(chi)`` or ``2 chi`` for real, complex, quaternionic type).
2. For each real irrep of dimension ``D`` and commutant dimension ``k``, the isotypic
   projector ``P = D / (k |G|) sum_g psi(g) L_g`` of the left regular representation
   (entries ``P[a, h] = D / (k |G|) psi(a h^-1)``) applied to a Gaussian block spans the
   isotypic component ``I`` (dimension ``D^2 / k``: ``D / k`` copies of the irrep).
3. A random symmetric element ``Y = sum_g c_g (R_g + R_g^T)`` of the right group algebra
   commutes with every ``L_g``; restricted to ``I`` it acts as a generic Hermitian
   ``(D/k) x (D/k)`` matrix over R, C or H, so each of its eigenspaces in ``I`` is one copy of
   the irrep (dimension ``D``).  The eigenspace with the widest gap is kept; its orthonormal
   basis ``Q`` gives the orthogonal matrices ``rho(s) = Q^T L_s Q`` of a generating set, and
   the others follow along a breadth-first spanning tree of the Cayley graph.

Step 3 is the "splitting with random class sums / commutant elements" of the meataxe
tradition (Parker 1984; Holt & Rees 1994), applied to one isotypic component at a time;
steps 1-2 follow Dixon (1967) and Serre, *Linear representations of finite groups*, §2.6.
"""

from __future__ import annotations

import numpy as np

from ._characters import character_table, real_characters
from ._irreps import IRREP_TYPES, Irrep

__all__ = ["real_irreps_by_characters"]

_TYPE_OF_K = {k: t for t, k in IRREP_TYPES.items()}
# Relative gap below which two eigenvalues of the commutant element count as equal.
_GAP_RTOL = 1e-7
# Largest accepted invariance residual max |L_g Q - Q rho(g)| before polishing.
_RESIDUAL_TOL = 1e-12
# Residual above which the decomposition is reported as failed rather than returned.
_RESIDUAL_FAIL = 1e-9
# Elements per chunk when reading off the matrices (memory: chunk * order * D floats).
_CHUNK_FLOATS = 2**21


def _letters(i: int) -> str:
    """0 -> 'a', 25 -> 'z', 26 -> 'aa', ... (spreadsheet-style)."""
    s = ""
    i += 1
    while i:
        i, r = divmod(i - 1, 26)
        s = chr(ord("a") + r) + s
    return s


def _generators(table: np.ndarray) -> list[int]:
    """A generating set of the group (greedy, at most log2 |G| elements)."""
    from ._finite import _generating_set

    return _generating_set(table)


def _spanning_tree(table: np.ndarray, gens: list[int]) -> list[tuple[np.ndarray, ...]]:
    """Breadth-first layers ``(g, s, h)`` with ``g = s∘h``, ``h`` in an earlier layer."""
    n = table.shape[0]
    done = np.zeros(n, dtype=bool)
    done[0] = True
    frontier = np.array([0], dtype=np.int64)
    layers: list[tuple[np.ndarray, ...]] = []
    while frontier.size and gens:
        gs, ss, hs = [], [], []
        for i, s in enumerate(gens):
            g = table[s, frontier]
            new = ~done[g]
            g, first = np.unique(g[new], return_index=True)
            done[g] = True
            gs.append(g)
            ss.append(np.full(g.size, i))
            hs.append(frontier[new][first])
        frontier = np.concatenate(gs)
        if frontier.size:
            layers.append((frontier, np.concatenate(ss), np.concatenate(hs)))
    return layers


def _matrices(
    q: np.ndarray, perms: np.ndarray, gens: list[int], layers: list[tuple[np.ndarray, ...]]
) -> tuple[np.ndarray, float]:
    """``rho(g) = Q^T L_g Q`` for every g, and the invariance residual of ``Q``.

    Only the generators' matrices are read off the regular representation (``O(|G| d^2)``);
    the others follow along the spanning tree, ``rho(s∘h) = rho(s) rho(h)``
    (``O(|G| d^3)``).  ``Q`` is invariant when it is under the generators.
    """
    n, d = q.shape
    out = np.empty((n, d, d))
    out[0] = np.eye(d)
    if not gens:  # the trivial group
        return out, 0.0
    moved = q[perms[gens]]  # (n_gens, n, d): L_s Q
    gen_mats = np.matmul(q.T[None], moved)
    resid = float(np.abs(moved - np.matmul(q[None], gen_mats)).max())
    for g, s, h in layers:
        out[g] = np.matmul(gen_mats[s], out[h])
    return out, resid


def _polish(q: np.ndarray, perms: np.ndarray) -> np.ndarray:
    """One step of subspace iteration with the twirl ``(1/|G|) sum_g L_g Q Q^T L_g^T``.

    The twirl commutes with the group exactly and has ``d`` eigenvalues near 1 on the
    nearly invariant subspace, the rest near 0, so each step shrinks the error by its size.
    """
    n, d = q.shape
    acc = np.zeros_like(q)
    chunk = max(1, _CHUNK_FLOATS // (n * d))
    for start in range(0, n, chunk):
        moved = q[perms[start : start + chunk]]
        acc += np.matmul(moved, np.matmul(moved.transpose(0, 2, 1), q[None])).sum(axis=0)
    out, _ = np.linalg.qr(acc)
    return out


def _one_copy(basis: np.ndarray, y: np.ndarray, dim: int) -> np.ndarray | None:
    """An orthonormal basis of one irreducible copy inside the isotypic basis, or None."""
    yi = basis.T @ (y @ basis)
    yi = (yi + yi.T) / 2
    values, vecs = np.linalg.eigh(yi)
    scale = max(float(np.max(np.abs(values))), 1e-300)
    breaks = np.flatnonzero(np.diff(values) > _GAP_RTOL * scale) + 1
    clusters = np.split(np.arange(values.size), breaks)
    if any(c.size != dim for c in clusters):
        return None
    # The cluster with the widest gap to its neighbours is the best-conditioned copy.
    best, best_gap = clusters[0], -1.0
    for i, c in enumerate(clusters):
        left = values[c[0]] - values[c[0] - 1] if i > 0 else np.inf
        right = values[c[-1] + 1] - values[c[-1]] if i < len(clusters) - 1 else np.inf
        gap = min(left, right)
        if gap > best_gap:
            best, best_gap = c, gap
    return basis @ vecs[:, best]


def real_irreps_by_characters(
    table: np.ndarray,
    inverses: np.ndarray,
    classes: tuple[tuple[int, ...], ...],
    *,
    seed: int = 0,
) -> tuple[Irrep, ...]:
    """All real irreps of a finite group from its Cayley table, in ``O(|G|^3)``.

    Parameters
    ----------
    table : int array of shape (order, order)
        Cayley table, ``table[a, b]`` = index of ``a∘b``, identity at index 0.
    inverses : int array of shape (order,)
    classes : tuple of tuple of int
        Conjugacy classes, ``(0,)`` first.
    seed : int
        Seed of the local random generator (the result is deterministic given it).

    Returns
    -------
    tuple of Irrep
        Trivial first, then sorted by dimension, type (real, complex, quaternionic) and
        character; named ATLAS-style ``"1a"``, ``"1b"``, ``"2a"``, ...

    Raises
    ------
    RuntimeError
        If the random commutant element fails to split an isotypic component in 16 draws.
    """
    n = table.shape[0]
    ct = character_table(table, inverses, classes, seed=seed)
    rng = np.random.default_rng(seed)
    quotient = table[:, inverses]  # quotient[a, h] = a∘h^-1
    perms = table[inverses]  # perms[g, a] = g^-1∘a: (L_g B)[a] = B[g^-1 a]

    def commutant_element() -> np.ndarray:
        # R_g e_h = e_{h g^-1}: R_g[h g^-1, h] = 1; sum_g c_g R_g has [quotient[h, g], h] = c_g.
        coeff = np.asarray(rng.standard_normal(n))
        y: np.ndarray = np.zeros((n, n))
        y[quotient, np.arange(n)[:, None]] = coeff[None, :]
        return y + y.T

    y = commutant_element()
    gens = _generators(table)
    layers = _spanning_tree(table, gens)
    found = []
    for psi_cls, dim, k in real_characters(ct):
        psi = psi_cls[ct.class_of]
        mult = dim // k
        proj = (dim / (k * n)) * psi[quotient]
        basis, _ = np.linalg.qr(proj @ rng.standard_normal((n, dim * mult)))
        basis, _ = np.linalg.qr(proj @ basis)  # re-project: in the component to rounding
        for _ in range(16):
            q = _one_copy(basis, y, dim)
            if q is not None:
                break
            y = commutant_element()
        else:  # pragma: no cover - would need 16 degenerate random draws
            raise RuntimeError(f"could not split the isotypic component of dimension {dim}")
        mats, resid = _matrices(q, perms, gens, layers)
        for _ in range(4):
            if resid <= _RESIDUAL_TOL:
                break
            q = _polish(q, perms)
            mats, resid = _matrices(q, perms, gens, layers)
        if resid > _RESIDUAL_FAIL:  # pragma: no cover - polishing converges geometrically
            raise RuntimeError(
                f"irrep of dimension {dim} is invariant only to {resid:.3g} after polishing"
            )
        # The character of the matrices themselves (exact to rounding, whatever the accuracy
        # of the Dixon table that only served to find the isotypic component).
        found.append((mats, np.trace(mats, axis1=1, axis2=2), k))

    def sort_key(item: tuple[np.ndarray, np.ndarray, int]) -> tuple:
        mats, chi, k = item
        trivial = not np.allclose(chi, 1.0)
        return (trivial, mats.shape[1], k, tuple(np.round(-chi, 6)))

    found.sort(key=sort_key)
    per_dim: dict[int, int] = {}
    irreps = []
    for mats, psi, k in found:
        d = mats.shape[1]
        letter = _letters(per_dim.get(d, 0))
        per_dim[d] = per_dim.get(d, 0) + 1
        irreps.append(Irrep(f"{d}{letter}", d, mats, psi, _TYPE_OF_K[k]))
    return tuple(irreps)
