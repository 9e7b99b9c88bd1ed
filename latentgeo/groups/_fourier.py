"""The one fit-free group-Fourier core: irrep energies of orbit signals, per probe sample.

Every spectrum and invariant share latentgeo reports (``probes.orbit_spectrum``,
``probes.invariance``, the ``"spectrum"`` / ``"invariance"`` kinds of ``probes.run``, the
subgroup scan, ``trajectories.spectrum_with_ci``, the live probes) is a pooled ratio of the
per-sample energies computed here, and every interval on them resamples those energies with
:func:`latentgeo._bootstrap.ratio_interval` (:meth:`OrbitEnergies.intervals`; on Haar-random
elements of a continuous group, with the delete-one-element jackknife variance added).

*Finite groups* (whole orbit, element order).  For a real irrep ``rho`` (dimension ``D``,
commutant dimension ``k``, character ``psi``) the isotypic projector of the regular
representation is ``P_rho[g, h] = D / (k |G|) psi(g h^-1)`` (Serre, *Linear representations
of finite groups*, §2.6, Thm. 8, real characters), so a signal's energy in it is
``<P_rho, Gram> = D / (k |G|) sum_c psi(c) s_c`` with the class sums
``s_c = sum_{g h^-1 in C_c} Gram[g, h]`` (:func:`isotypic_energies`, for a pooled Gram).
Per sample, the core uses the same projectors through an orthonormal basis ``U`` adapted to
them (one ``eigh`` of ``sum_r (r + 1) P_r``, cached per group): the energy in ``rho`` is the
squared norm of the sample's coordinates on ``rho``'s rows of ``U``, and the coordinates of
a chunk of samples are one matrix product ``U @ Y`` (``|G|² n d`` multiply-adds, the cost of
the Gram matrices, as one large product rather than ``n`` small ones).  Each chunk is
converted to float64 into one reused buffer (no float64 copy of the block); centring by the
grand mean only moves the trivial coordinate and is applied to it exactly afterwards.

*Continuous groups* (SO(2), O(2), SO(3), O(3), sampled elements).  Harmonic least squares in
the Haar-orthonormal matrix entries ``sqrt(d) rho_ij`` up to a degree (Peter–Weyl): one
pseudo-inverse for every sample and unit.  The orbit is centred by its *Haar* mean (the
fitted constant of the mean orbit), and unless the sampled elements are an exact quadrature
of the fitted functions (a uniform SO(2) grid), each energy has the fit's noise removed:
with ``V = (BᵀB)⁻¹`` and the residual variance ``RSS / (n - p)``, ``E[c_j²]`` exceeds
``c_j²`` by ``sigma² V_jj``.  At degree 0 this is the U-statistic
``(1 / n(n-1)) sum_{k != l} <f(g_k), f(g_l)>`` — exactly unbiased for Haar-random elements —
where the plain element mean reads about ``1/n`` for a layer with no invariant part.

Both paths return an :class:`OrbitEnergies`: energies per sample and part, summing to each
sample's total energy (Parseval; for continuous groups the last part is ``"residual"``).
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from latentgeo.groups._energies import FallbackWarning, OrbitEnergies, check_orbit
from latentgeo.groups._harmonic import (
    MAX_DEFAULT_DEGREE,
    OVERSAMPLING,
    check_elements,
    harmonic_basis,
    harmonic_energies,
    harmonic_names,
    resolve_max_degree,
)

if TYPE_CHECKING:
    import torch

    from latentgeo.groups._finite import FiniteGroup
    from latentgeo.groups._irreps import Irrep
    from latentgeo.groups._protocol import Group

__all__ = [
    "MAX_DEFAULT_DEGREE",
    "OVERSAMPLING",
    "FallbackWarning",
    "OrbitEnergies",
    "check_elements",
    "finite_energies",
    "harmonic_basis",
    "harmonic_energies",
    "harmonic_names",
    "isotypic_energies",
    "orbit_energies",
    "project_isotypic",
    "resolve_max_degree",
    "subset_energies",
]

#: Values converted to float64 at a time (2 MiB: cache-sized chunks ran 1.3-5x faster than
#: 8 MiB or 32 MiB ones on a (8, 512, 4096) block).
_CHUNK_VALUES = 2**18
#: Entries of a row block of a projector / of the chunk's per-sample Gram matrices.
_BLOCK_ENTRIES = 2**22


def _class_weights(group: FiniteGroup) -> tuple[list[str], np.ndarray]:
    """Irrep names and weights ``D / (k |G|) psi_r(c)``, shape (n_irreps, n_classes)."""
    irreps = group.irreps()
    reps = np.array([c[0] for c in group.conjugacy_classes], dtype=np.int64)
    chars = np.stack([np.asarray(r.character_at(reps), dtype=np.float64) for r in irreps])
    coeff = np.array([r.dim / (r.commutant_dim * group.order) for r in irreps])
    return [r.name for r in irreps], coeff[:, None] * chars


def _class_of_quotient(group: FiniteGroup) -> np.ndarray:
    """``K[g, h]`` = conjugacy class index of ``g h^-1``, shape (order, order)."""
    label = np.empty(group.order, dtype=np.int64)
    for c, members in enumerate(group.conjugacy_classes):
        label[np.asarray(members, dtype=np.int64)] = c
    return label[np.asarray(group.cayley_table)[:, np.asarray(group.inverses)]]


@functools.lru_cache(maxsize=16)
def _isotypic_basis(group: FiniteGroup) -> tuple[tuple[str, ...], np.ndarray, np.ndarray]:
    """An orthonormal basis of signals on the group adapted to its isotypic decomposition.

    The isotypic projectors ``P_rho`` of the regular representation are orthogonal
    projectors summing to the identity, so ``A = sum_r (r + 1) P_r`` is symmetric with
    eigenvalue ``r + 1`` exactly on the ``r``-th isotypic part: one ``eigh`` of ``A`` gives
    an orthogonal ``U`` whose rows span the parts in irrep order, and a signal's energy in
    ``rho`` is the squared norm of its coordinates on ``rho``'s rows.  The trivial part is
    the single row ``1 / sqrt(|G|)`` (set exactly).  Cached per group (groups are hashable
    value objects).

    Returns
    -------
    names : tuple of str
        The irreps, ``group.irreps()`` order.
    U : float64 array of shape (order, order)
        Orthogonal; row 0 the trivial one.
    owner : int64 array of shape (order,)
        Irrep index of each row of ``U`` (non-decreasing).
    """
    names, weights = _class_weights(group)
    K = _class_of_quotient(group)
    A = sum((r + 1.0) * w[K] for r, w in enumerate(weights))
    values, vectors = np.linalg.eigh(A)  # ascending: grouped by irrep
    owner = np.rint(values).astype(np.int64) - 1
    n = group.order
    if (
        np.abs(values - owner - 1).max() > 1e-6
        or owner.min() < 0
        or owner.max() >= len(names)
        or owner[0] != 0
        or np.count_nonzero(owner == 0) != 1
    ):
        raise ValueError(
            f"the irreps of {getattr(group, 'spec', group)!r} do not decompose its regular "
            f"representation: the isotypic projectors from their characters have "
            f"eigenvalues {np.round(values, 6)!r}, expected 0/1 projectors summing to the "
            "identity with a one-dimensional trivial part"
        )
    U = np.ascontiguousarray(vectors.T)
    U[0] = 1.0 / np.sqrt(n)
    U[1:] -= U[1:].mean(axis=1, keepdims=True)  # orthogonal to the constants to rounding
    U.flags.writeable = False
    owner.flags.writeable = False
    return tuple(names), U, owner


def _row_energies(
    src: torch.Tensor, U: torch.Tensor, dtype: Any
) -> tuple[torch.Tensor, torch.Tensor]:
    """Squared norms of each sample's coordinates on the rows of ``U``, chunk by chunk.

    One converted contiguous buffer per chunk, one matrix product ``U @ Y`` with the samples
    and units flattened (one GEMM: ``|G|² n d`` multiply-adds, as for a Gram matrix), one
    norm reduction over the units.  Returns ``(rows (order, n), t (n, d))``: ``rows[j, i]``
    the energy of sample ``i`` on row ``j`` (row 0, the trivial one, uncentred) and ``t[i]``
    the trivial coordinate ``sum_g Z[g, i] / sqrt(|G|)`` for the exact centring.  The rows
    past the first sum to zero, so the orbit's mean never enters them and no shifted copy is
    needed.
    """
    import torch

    G, n, d = src.shape
    chunk = max(1, _CHUNK_VALUES // max(1, G * d))
    rows = torch.empty((G, n), dtype=dtype, device=src.device)
    t = torch.empty((n, d), dtype=dtype, device=src.device)
    c = min(chunk, n)
    buf = torch.empty((G, c, d), dtype=dtype, device=src.device)
    out = torch.empty((G, c * d), dtype=dtype, device=src.device)
    for s0 in range(0, n, chunk):
        b = min(chunk, n - s0)
        block, coords = buf[:, :b], out[:, : b * d]
        block.copy_(src[:, s0 : s0 + b])  # converted in one pass
        torch.mm(U, block.reshape(G, b * d), out=coords)
        per_unit = coords.view(G, b, d)
        t[s0 : s0 + b] = per_unit[0]
        torch.linalg.vector_norm(per_unit, dim=2, out=rows[:, s0 : s0 + b])
    return rows.square_(), t


def finite_energies(Z: Any, group: FiniteGroup, *, dtype: Any = None) -> OrbitEnergies:
    """Per-sample energies in each real irrep's isotypic part of a finite group's orbit.

    Parameters
    ----------
    Z : array-like or Tensor of shape (order, n_samples, n_units)
        Orbit latents over every element, in the group's element order (any float dtype;
        read a chunk of samples at a time).  Centred by the grand mean over elements and
        samples inside (exactly; no centred copy is made).
    group : FiniteGroup
    dtype : torch.dtype, optional
        Accumulation dtype (default float64).

    Returns
    -------
    OrbitEnergies
        ``names`` the irreps in ``group.irreps()`` order; rows of ``energies`` sum to
        ``total`` (Parseval).

    Raises
    ------
    ValueError
        If the element axis does not have ``group.order`` entries.
    """
    import torch

    dtype = torch.float64 if dtype is None else dtype
    src = check_orbit(Z)
    G = src.shape[0]
    if G != group.order:
        raise ValueError(
            f"the orbit has {G} elements along axis 0 but {getattr(group, 'spec', group)!r} "
            f"has {group.order}: a finite group's spectrum needs every element in its order"
        )
    names, U, owner = _isotypic_basis(group)
    rows, t = _row_energies(src, torch.tensor(U, dtype=dtype, device=src.device), dtype)
    # Exact centring by the grand mean: the shift and the mean are constant over elements,
    # so only the trivial coordinate moves; it becomes t[i] - mean_i t[i].
    t -= t.mean(dim=0)
    rows[0] = torch.linalg.vector_norm(t, dim=1).square_()
    onehot = torch.zeros((len(names), G), dtype=dtype, device=src.device)
    onehot[torch.tensor(owner, device=src.device), torch.arange(G, device=src.device)] = 1.0
    energies = (onehot @ rows).T
    return OrbitEnergies(names, energies, energies.sum(dim=1))


def subset_energies(Z: Any, *, dtype: Any = None) -> OrbitEnergies:
    """Invariant and remaining energy per sample of an orbit over any set of elements.

    The invariant part of a sample's orbit signal over the recorded elements is its mean
    over them; ``energies[:, 0] = n_el ||mean_g f(g)||²``, ``energies[:, 1]`` the rest of
    ``total = sum_g ||f(g)||²`` (``f`` centred by the grand mean).  For the whole orbit of a
    finite group this is the trivial irrep's part of :func:`finite_energies`.

    Parameters
    ----------
    Z : array-like or Tensor of shape (n_elements, n_samples, n_units)
    dtype : torch.dtype, optional
        Accumulation dtype (default float64).

    Returns
    -------
    OrbitEnergies
        ``names == ("invariant", "rest")``.
    """
    import torch

    dtype = torch.float64 if dtype is None else dtype
    src = check_orbit(Z)
    G, n, d = src.shape
    chunk = max(1, _CHUNK_VALUES // max(1, G * d))
    shift = src[:, :chunk].to(dtype).mean(dim=(0, 1))
    raw = torch.empty(n, dtype=dtype, device=src.device)  # sum_g ||Y[g]||² per sample
    T = torch.empty((n, d), dtype=dtype, device=src.device)  # sum_g Y[g] per sample
    for s0 in range(0, n, chunk):
        block = src[:, s0 : s0 + chunk].to(dtype) - shift
        raw[s0 : s0 + chunk] = (block * block).sum(dim=(0, 2))
        T[s0 : s0 + chunk] = block.sum(dim=0)
    # Centred by the grand mean m of the shifted signals (folded in exactly).
    m = T.sum(dim=0) / (G * n)
    total = raw - 2.0 * (T @ m) + G * (m @ m)
    Tc = T - G * m
    inv = (Tc * Tc).sum(dim=1) / G
    return OrbitEnergies(("invariant", "rest"), torch.stack([inv, total - inv], dim=1), total)


def isotypic_energies(group: FiniteGroup, gram: torch.Tensor) -> tuple[list[str], torch.Tensor]:
    """Energy of signals on a finite group in each real irrep's isotypic part, from their Gram.

    Parameters
    ----------
    group : FiniteGroup
    gram : Tensor of shape (order, order)
        ``gram[g, h] = sum_i f_i(g) f_i(h)`` over the signals (element order).

    Returns
    -------
    names : list of str
    energies : Tensor of shape (n_irreps,)
        ``sum_i ||P_rho f_i||²``, in ``gram``'s dtype and device; they sum to
        ``trace(gram)``.

    Raises
    ------
    ValueError
        If ``gram`` is not ``(order, order)``.
    """
    import torch

    n = group.order
    if tuple(gram.shape) != (n, n):
        raise ValueError(f"gram must have shape ({n}, {n}), got {tuple(gram.shape)!r}")
    names, weights = _class_weights(group)
    K = torch.as_tensor(_class_of_quotient(group).reshape(-1), device=gram.device)
    sums = torch.zeros(len(group.conjugacy_classes), dtype=gram.dtype, device=gram.device)
    sums.index_add_(0, K, gram.reshape(-1))
    W = torch.as_tensor(weights, dtype=gram.dtype, device=gram.device)
    return names, W @ sums


def project_isotypic(group: FiniteGroup, irrep: Irrep, f: torch.Tensor) -> torch.Tensor:
    """``P_rho f`` along the first (element) axis, without forming ``P_rho`` whole.

    Parameters
    ----------
    group : FiniteGroup
    irrep : Irrep
        One of ``group.irreps()``.
    f : Tensor of shape (order, ...)

    Returns
    -------
    Tensor of the shape, dtype and device of ``f``
        ``(P_rho f)[g] = D / (k |G|) sum_h psi(g h^-1) f[h]``, in row blocks of ``P_rho``.
    """
    import torch

    n = group.order
    if f.shape[0] != n:
        raise ValueError(f"f must have {n} elements along axis 0, got shape {tuple(f.shape)!r}")
    psi = np.asarray(irrep.character_at(group.element_values()), dtype=np.float64)
    coeff = irrep.dim / (irrep.commutant_dim * n)
    table, inverses = group.cayley_table, group.inverses
    flat = f.reshape(n, -1)
    out = torch.empty_like(flat)
    rows = max(1, _BLOCK_ENTRIES // n)
    for start in range(0, n, rows):
        block = coeff * psi[table[start : start + rows][:, inverses]]  # psi(g h^-1)
        out[start : start + rows] = torch.as_tensor(block, dtype=f.dtype, device=f.device) @ flat
    return out.reshape(f.shape)


def orbit_energies(
    Z: Any,
    group: Group | None = None,
    elements: Any = None,
    max_degree: int | None = None,
    *,
    dtype: Any = None,
    element_sample: bool = True,
) -> OrbitEnergies:
    """Per-sample isotypic energies of any orbit: the entry point every spectrum calls.

    Parameters
    ----------
    Z : array-like or Tensor of shape (n_elements, n_samples, n_units)
    group : Group, optional
        None: an orbit over some set of elements (invariant part only,
        :func:`subset_energies`).  A finite group: the whole orbit in element order
        (``elements`` None or ``arange(order)``).  A continuous group: ``elements`` required.
    elements : array, optional
    max_degree : int, optional
        Continuous groups (:func:`resolve_max_degree`, which warns on a fallback).
    dtype : torch.dtype, optional
    element_sample : bool
        Continuous groups: keep what the intervals over the draw of elements need
        (:func:`harmonic_energies`); False for point estimates only.

    Returns
    -------
    OrbitEnergies

    Raises
    ------
    TypeError
        For a continuous group without ``elements``.
    ValueError
        If the element axis does not match the group or ``elements``.
    """
    src = check_orbit(Z)
    if group is None:
        return subset_energies(src, dtype=dtype)
    if group.is_finite:
        finite = cast("FiniteGroup", group)
        if elements is not None and not np.array_equal(
            np.asarray(elements), np.arange(finite.order)
        ):
            raise ValueError(
                f"elements of a finite group's orbit must be None or arange({finite.order}) "
                f"(every element, in order), got {elements!r}; for an orbit over some elements "
                "use group=None (invariance) or the subgroup they form"
            )
        return finite_energies(src, finite, dtype=dtype)
    values = check_elements(group, elements, src.shape[0])
    degree = resolve_max_degree(group, values, max_degree)
    return harmonic_energies(src, group, values, degree, dtype=dtype, element_sample=element_sample)
