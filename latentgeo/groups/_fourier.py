"""The one fit-free group-Fourier core: irrep energies of orbit signals, per probe sample.

Every spectrum and invariant share latentgeo reports (``probes.orbit_spectrum``,
``probes.invariance``, the ``"spectrum"`` / ``"invariance"`` kinds of ``probes.run``, the
subgroup scan, ``trajectories.spectrum_with_ci``, the live probes) is a pooled ratio of the
per-sample energies computed here, and every interval on them resamples those energies with
:func:`latentgeo._bootstrap.ratio_interval`.

*Finite groups* (whole orbit, element order).  For a real irrep ``rho`` (dimension ``D``,
commutant dimension ``k``, character ``psi``) the isotypic projector of the regular
representation is ``P_rho[g, h] = D / (k |G|) psi(g h^-1)`` (Serre, *Linear representations
of finite groups*, §2.6, Thm. 8, real characters), so a signal's energy in it is
``<P_rho, Gram> = D / (k |G|) sum_c psi(c) s_c`` with the class sums
``s_c = sum_{g h^-1 in C_c} Gram[g, h]``.  Each sample's ``(|G|, |G|)`` Gram matrix over its
units is accumulated in float64 over chunks of samples (one batched product per chunk,
converted a chunk at a time: no float64 copy of the block) and reduced to its class sums at
once; centring by the grand mean is folded in exactly afterwards.

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

from typing import TYPE_CHECKING, Any

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


def _class_weights(group: Any) -> tuple[list[str], np.ndarray]:
    """Irrep names and weights ``D / (k |G|) psi_r(c)``, shape (n_irreps, n_classes)."""
    irreps = group.irreps()
    reps = np.array([c[0] for c in group.conjugacy_classes], dtype=np.int64)
    chars = np.stack([np.asarray(r.character_at(reps), dtype=np.float64) for r in irreps])
    coeff = np.array([r.dim / (r.commutant_dim * group.order) for r in irreps])
    return [r.name for r in irreps], coeff[:, None] * chars


def _class_of_quotient(group: Any) -> np.ndarray:
    """``K[g, h]`` = conjugacy class index of ``g h^-1``, shape (order, order)."""
    label = np.empty(group.order, dtype=np.int64)
    for c, members in enumerate(group.conjugacy_classes):
        label[np.asarray(members, dtype=np.int64)] = c
    return label[np.asarray(group.cayley_table)[:, np.asarray(group.inverses)]]


def _gram_features(
    Z: Any, feature: torch.Tensor, n_features: int, dtype: Any
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-sample reductions of each sample's Gram matrix of shifted orbit signals.

    ``feature`` maps each flattened ``(g, h)`` to a feature index.  Returns
    ``(features (n, F), T (n, d), shift)`` with ``T[i] = sum_g (Z[g, i] - shift)`` and
    ``shift`` the first chunk's mean (for conditioning; the exact centring is applied by the
    caller).
    """
    import torch

    src = check_orbit(Z)
    G, n, d = src.shape
    chunk = max(1, min(_CHUNK_VALUES // max(1, G * d), _BLOCK_ENTRIES // max(1, G * G)))
    shift = src[:, :chunk].to(dtype).mean(dim=(0, 1))
    feats = torch.zeros((n, n_features), dtype=dtype, device=src.device)
    T = torch.empty((n, d), dtype=dtype, device=src.device)
    # Small groups: the reduction to features is one product with a 0/1 matrix.
    onehot = None
    if G * G * n_features <= 2**20:
        onehot = torch.zeros((G * G, n_features), dtype=dtype, device=src.device)
        onehot[torch.arange(G * G, device=src.device), feature] = 1.0
    buf = torch.empty((min(chunk, n), G, d), dtype=dtype, device=src.device)
    for s0 in range(0, n, chunk):
        b = min(chunk, n - s0)
        bt = buf[:b]
        bt.copy_(src[:, s0 : s0 + b].transpose(0, 1))  # (b, G, d), converted in one copy
        bt -= shift
        gram = torch.bmm(bt, bt.transpose(1, 2)).reshape(b, G * G)
        if onehot is not None:
            feats[s0 : s0 + b] = gram @ onehot
        else:
            feats[s0 : s0 + b].index_add_(1, feature, gram)
        torch.sum(bt, dim=1, out=T[s0 : s0 + b])
    return feats, T, shift


def finite_energies(Z: Any, group: Any, *, dtype: Any = None) -> OrbitEnergies:
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
    G, n, _ = src.shape
    if G != group.order:
        raise ValueError(
            f"the orbit has {G} elements along axis 0 but {getattr(group, 'spec', group)!r} "
            f"has {group.order}: a finite group's spectrum needs every element in its order"
        )
    names, weights = _class_weights(group)
    K = torch.as_tensor(_class_of_quotient(group).reshape(-1), device=src.device)
    n_classes = len(group.conjugacy_classes)
    sums, T, _ = _gram_features(src, K, n_classes, dtype)
    # Exact centring by the grand mean m of the shifted signals Y: the per-sample Gram
    # Gc = Y Yᵀ - a 1ᵀ - 1 aᵀ + (m·m) 1 1ᵀ with a = Y m; class c holds |C_c| |G| pairs
    # (g, h), and sum over them of a[g] is |C_c| sum_g a[g] = |C_c| T·m.
    m = T.sum(dim=0) / (G * n)
    sizes = torch.as_tensor(
        [len(c) for c in group.conjugacy_classes], dtype=dtype, device=src.device
    )
    sums = sums - 2.0 * (T @ m)[:, None] * sizes + G * (m @ m) * sizes
    W = torch.as_tensor(weights, dtype=dtype, device=src.device)
    energies = sums @ W.T
    # The total is the trace: the class of g h^-1 = identity (the diagonal).
    identity_class = int(_class_of_quotient(group)[0, 0])
    return OrbitEnergies(tuple(names), energies, sums[:, identity_class])


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


def isotypic_energies(group: Any, gram: torch.Tensor) -> tuple[list[str], torch.Tensor]:
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


def project_isotypic(group: Any, irrep: Any, f: torch.Tensor) -> torch.Tensor:
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
    group: Any = None,
    elements: Any = None,
    max_degree: int | None = None,
    *,
    dtype: Any = None,
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
        if elements is not None and not np.array_equal(
            np.asarray(elements), np.arange(group.order)
        ):
            raise ValueError(
                f"elements of a finite group's orbit must be None or arange({group.order}) "
                f"(every element, in order), got {elements!r}; for an orbit over some elements "
                "use group=None (invariance) or the subgroup they form"
            )
        return finite_energies(src, group, dtype=dtype)
    values = check_elements(group, elements, src.shape[0])
    degree = resolve_max_degree(group, values, max_degree)
    return harmonic_energies(src, group, values, degree, dtype=dtype)
