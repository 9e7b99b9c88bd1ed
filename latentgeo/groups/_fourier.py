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

import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import torch

__all__ = [
    "MAX_DEFAULT_DEGREE",
    "OVERSAMPLING",
    "FallbackWarning",
    "OrbitEnergies",
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

#: Cap of the default harmonic degree.
MAX_DEFAULT_DEGREE = 4
#: Sampled elements per basis function (per connected component) the default degree keeps.
OVERSAMPLING = 2
#: Values converted to float64 at a time (2 MiB: cache-sized chunks ran 1.3-5x faster than
#: 8 MiB or 32 MiB ones on a (8, 512, 4096) block).
_CHUNK_VALUES = 2**18
#: Entries of a row block of a projector / of the chunk's per-sample Gram matrices.
_BLOCK_ENTRIES = 2**22
_COMMUTANT = {"real": 1, "complex": 2, "quaternionic": 4}


class FallbackWarning(UserWarning):
    """An estimator switched to a weaker one than asked for (lower degree, part of a group)."""


@dataclass(frozen=True)
class OrbitEnergies:
    """Energies of orbit signals in each isotypic part, per probe sample.

    Attributes
    ----------
    names : tuple of str
        The parts: irrep names (trivial first); continuous groups end with ``"residual"``, an
        orbit over a subset of elements has ``("invariant", "rest")``.
    energies : Tensor of shape (n_samples, n_parts)
        Energy of each sample's centred orbit signal (summed over units) in each part; rows
        sum to ``total``.  Debiased energies (continuous groups) may be slightly negative.
    total : Tensor of shape (n_samples,)
        Each sample's total centred energy.
    """

    names: tuple[str, ...]
    energies: torch.Tensor
    total: torch.Tensor

    @property
    def finite(self) -> bool:
        """Whether every energy is finite (non-finite latents give NaN everywhere)."""
        import torch

        return bool(torch.isfinite(self.energies).all())

    def shares(self) -> torch.Tensor:
        """Pooled share of each part: ``sum_i E[i, r] / sum_i total[i]``, in [0, 1], summing
        to 1 (negative pooled energies clamped at 0 and the rest renormalised); no variance at
        all gives the trivial part 1."""
        import torch

        pooled = self.energies.sum(dim=0).clamp_min(0.0)
        denom = pooled.sum()
        if not bool(torch.isfinite(denom)):
            return torch.full_like(pooled, float("nan"))
        if denom <= 0:
            out = torch.zeros_like(pooled)
            out[0] = 1.0
            return out
        return pooled / denom

    def invariance(self) -> float:
        """The trivial part's share (the invariant share of the centred variance)."""
        return float(self.shares()[0])

    def intervals(
        self,
        n_bootstrap: int,
        confidence: float,
        rng: np.random.Generator | None,
        counts: np.ndarray | None = None,
    ) -> np.ndarray:
        """Percentile bootstrap interval of every share over resampled probe samples.

        ``counts`` (``latentgeo._bootstrap.bootstrap_counts``) shares one set of resamples
        between several intervals; otherwise they are drawn from ``rng``.

        Returns
        -------
        float64 array of shape (n_parts, 2)
            NaN when ``n_bootstrap == 0`` or the energies are not finite.
        """
        from latentgeo._bootstrap import ratio_interval

        if not self.finite:
            return np.full((len(self.names), 2), np.nan)
        return ratio_interval(
            self.energies, self.total, int(n_bootstrap), confidence, rng, counts=counts
        )


# -- finite groups ----------------------------------------------------------------------------


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


def _check_orbit(Z: Any) -> torch.Tensor:
    import torch

    src = Z if isinstance(Z, torch.Tensor) else torch.as_tensor(np.asarray(Z))
    if src.ndim != 3:
        raise ValueError(
            f"orbit latents must have shape (n_elements, n_samples, n_units), got "
            f"{tuple(src.shape)!r}"
        )
    if src.shape[1] == 0:
        raise ValueError("orbit latents hold no samples (n_samples == 0)")
    return src


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

    src = _check_orbit(Z)
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
    src = _check_orbit(Z)
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
    src = _check_orbit(Z)
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


# -- continuous groups: harmonic least squares ------------------------------------------------


def _components(group: Any, elements: np.ndarray) -> np.ndarray:
    """Component of each element: the sign pattern of the 1-d degree-0 irreps (``det = ±1``
    for O(2) and O(3); one component for SO(2), SO(3))."""
    signs = [
        np.sign(rho(elements).reshape(len(elements))) for rho in group.irreps(0) if rho.dim == 1
    ]
    _, labels = np.unique(np.stack(signs, axis=1), axis=0, return_inverse=True)
    return labels.reshape(-1)


def _n_components(group: Any) -> int:
    return sum(1 for rho in group.irreps(0) if rho.dim == 1)


def _n_functions(group: Any, max_degree: int) -> int:
    return sum(r.dim * r.dim // _COMMUTANT[r.type] for r in group.irreps(max_degree))


def _needed(group: Any, degree: int) -> int:
    """Elements per component for ``OVERSAMPLING``-fold oversampling up to ``degree``."""
    return OVERSAMPLING * -(-_n_functions(group, degree) // _n_components(group))


def resolve_max_degree(group: Any, elements: Any, max_degree: int | None = None) -> int:
    """The degree of the harmonic fit, warning once when it is weaker than asked.

    Parameters
    ----------
    group : continuous group
    elements : array of shape (n_elements, ...)
        Element values of the orbit axis.
    max_degree : int, optional
        Requested degree; default the largest ``<= MAX_DEFAULT_DEGREE`` with
        ``OVERSAMPLING`` sampled elements per basis function on every component.

    Returns
    -------
    int

    Warns
    -----
    FallbackWarning
        When the default degree is below ``MAX_DEFAULT_DEGREE`` (irreps above it are pooled
        in ``"residual"``), when a given ``max_degree`` has fewer than ``OVERSAMPLING``
        elements per basis function, or when the sample misses a component of the group
        (O(2), O(3): the Haar mean is then over the sampled component only).  One warning
        per call, naming what was asked, what was done and how to get the full number.

    Raises
    ------
    TypeError, ValueError
        For a ``max_degree`` that is not an int ``>= 0``.
    """
    values = np.asarray(elements)
    counts = np.bincount(_components(group, values))
    n_comp = _n_components(group)
    smallest = int(counts.min()) if len(counts) == n_comp else 0
    notes: list[str] = []
    if len(counts) < n_comp:
        notes.append(
            f"the {len(values)} sampled elements lie in {len(counts)} of the {n_comp} "
            f"components of {group!r}: the Haar mean and the irreps that tell the components "
            "apart are fitted on the sampled component only (sample every component, e.g. "
            "group.sample(n) with more elements)"
        )
        smallest = int(counts.min())
    if max_degree is None:
        degree = 0
        for d in range(1, MAX_DEFAULT_DEGREE + 1):
            if smallest >= _needed(group, d):
                degree = d
        if degree < MAX_DEFAULT_DEGREE:
            notes.append(
                f"the default max_degree is {MAX_DEFAULT_DEGREE}, but {smallest} sampled "
                f"elements per component support only degree {degree} "
                f"({OVERSAMPLING} elements per basis function): irreps above degree {degree} "
                f"are pooled in 'residual'; record at least "
                f"{_needed(group, MAX_DEFAULT_DEGREE) * n_comp} elements for degree "
                f"{MAX_DEFAULT_DEGREE}, or pass max_degree= to choose the degree (with Haar-random "
                "elements, variance above the fitted degree leaks into the fitted shares)"
            )
    else:
        if isinstance(max_degree, bool) or not isinstance(max_degree, int | np.integer):
            raise TypeError(f"max_degree must be an int, got {max_degree!r}")
        if max_degree < 0:
            raise ValueError(f"max_degree must be >= 0, got {max_degree!r}")
        degree = int(max_degree)
        need = _needed(group, degree)
        if smallest < need:
            n_fun = _n_functions(group, degree)
            notes.append(
                f"max_degree={degree} on {group!r} fits {n_fun} basis functions; "
                f"{OVERSAMPLING}x oversampling needs {need} sampled elements per component, "
                f"the sample has {smallest} on its smallest: the fit leaks variance between "
                "degrees; record more elements or pass a lower max_degree"
            )
    if len(values) <= _n_functions(group, degree) and not _is_quadrature(group, values, degree):
        notes.append(
            f"{len(values)} sampled elements leave the degree-{degree} fit of {group!r} no "
            "residual degrees of freedom: its noise cannot be estimated, so the energies are "
            "not debiased (the invariant share of a layer with none reads about 1/n); sample "
            f"more than {_n_functions(group, degree)} elements"
        )
    if notes:
        warnings.warn("; ".join(notes), FallbackWarning, stacklevel=_outside_stacklevel())
    return degree


def _outside_stacklevel() -> int:
    """``stacklevel`` of the first frame outside latentgeo, probes and trajectories (the
    user's call, whichever entry point led here)."""
    import sys

    level, frame = 1, sys._getframe(1)
    while frame is not None and str(frame.f_globals.get("__name__", "")).split(".")[0] in (
        "latentgeo",
        "probes",
        "trajectories",
    ):
        level += 1
        frame = frame.f_back
    return level


def harmonic_names(group: Any, max_degree: int) -> list[str]:
    """Spectrum coordinate: the irrep names up to ``max_degree``, then ``"residual"``."""
    return [*group.irrep_names(max_degree), "residual"]


def harmonic_basis(group: Any, elements: Any, max_degree: int) -> tuple[np.ndarray, np.ndarray]:
    """The design matrix of Haar-orthonormal matrix-entry functions at sampled elements.

    Parameters
    ----------
    group : continuous group
    elements : array of shape (n_elements, ...)
    max_degree : int

    Returns
    -------
    B : float64 array of shape (n_elements, n_functions)
        Columns ``sqrt(d) rho_ij(g)`` for each irrep up to ``max_degree`` (``j`` over the
        first ``d / k`` columns, ``k`` the commutant dimension of its type).
    owner : int64 array of shape (n_functions,)
        Index of the irrep (in ``group.irreps(max_degree)`` order) of each column.
    """
    values = np.asarray(elements)
    n = len(values)
    cols, owner = [], []
    for i, rho in enumerate(group.irreps(max_degree)):
        keep = rho.dim // _COMMUTANT[rho.type]
        m = np.sqrt(rho.dim) * np.asarray(rho(values), dtype=np.float64)[:, :, :keep]
        cols.append(m.reshape(n, -1))
        owner += [i] * (rho.dim * keep)
    return np.concatenate(cols, axis=1), np.asarray(owner, dtype=np.int64)


def harmonic_energies(
    Z: Any, group: Any, elements: Any, degree: int, *, dtype: Any = None
) -> OrbitEnergies:
    """Per-sample Haar energies of a continuous group's sampled orbit, by harmonic least squares.

    Parameters
    ----------
    Z : array-like or Tensor of shape (n_elements, n_samples, n_units)
        Orbit latents at the sampled ``elements`` (any float dtype; read a chunk of samples
        at a time).
    group : continuous group
    elements : array of shape (n_elements, ...)
        Element values of ``Z``'s element axis: Haar-random (``group.sample``) or a
        quadrature grid (``SO2().grid(n)``).
    degree : int
        Fitted degree (:func:`resolve_max_degree`; no warning here).
    dtype : torch.dtype, optional
        Accumulation dtype (default float64).

    Returns
    -------
    OrbitEnergies
        ``names = harmonic_names(group, degree)``.  Energies are Haar energies of the orbit
        centred by its Haar mean; ``"residual"`` is what the fit leaves.  Unless the elements
        are an exact quadrature of the fitted functions (``BᵀB = n I``), each fitted energy
        has its noise ``RSS / (n - p) · V_jj`` removed (exactly unbiased at degree 0 for
        Haar-random elements; see the module notes).

    Raises
    ------
    ValueError
        If ``elements`` does not match ``Z``'s element axis.
    """
    import torch

    dtype = torch.float64 if dtype is None else dtype
    src = _check_orbit(Z)
    values = np.asarray(elements)
    n_el, n, d = src.shape
    if values.shape[:1] != (n_el,):
        raise ValueError(
            f"elements has {values.shape[:1]} values but Z has {n_el} elements along axis 0; "
            "pass the element values of Z's element axis"
        )
    names = harmonic_names(group, degree)
    B_np, owner_np = harmonic_basis(group, values, degree)
    p = B_np.shape[1]
    n_irreps = len(names) - 1
    dev = src.device
    B = torch.as_tensor(B_np, dtype=dtype, device=dev)
    owner = torch.as_tensor(owner_np, device=dev)
    P = torch.linalg.pinv(B)  # (p, n_el): one factorisation for every right-hand side
    BtB = B.T @ B
    const = int(np.flatnonzero(owner_np == 0)[0])  # the trivial irrep's (only) column
    quadrature = _is_quadrature(group, values, degree)
    chunk = max(1, _CHUNK_VALUES // max(1, n_el * d))
    shift = src[:, :chunk].to(dtype).mean(dim=(0, 1))
    fit_energy = torch.zeros((n, n_irreps), dtype=dtype, device=dev)
    sq = torch.empty(n, dtype=dtype, device=dev)  # sum_g ||Y[g]||² per sample
    fitted = torch.empty(n, dtype=dtype, device=dev)  # ||B c||² per sample
    c0 = torch.empty((n, d), dtype=dtype, device=dev)  # fitted Haar mean per sample
    for s0 in range(0, n, chunk):
        block = src[:, s0 : s0 + chunk].to(dtype) - shift
        b = block.shape[1]
        C = (P @ block.reshape(n_el, -1)).reshape(p, b, d)
        fit_energy[s0 : s0 + b].index_add_(1, owner, (C * C).sum(dim=2).T)
        fitted[s0 : s0 + b] = (C * (BtB @ C.reshape(p, -1)).reshape(p, b, d)).sum(dim=(0, 2))
        sq[s0 : s0 + b] = (block * block).sum(dim=(0, 2))
        c0[s0 : s0 + b] = C[const]
    # Haar-mean centring: the orbit is centred by the Haar mean h of the mean orbit.  The
    # constant lies in the fit (P 1 = e_const), so only the constant coefficient changes
    # (c0 - h); the other coefficients and the residual are unchanged.
    h = c0.mean(dim=0)
    rss = (sq - fitted).clamp_min(0.0)
    c0c = c0 - h
    fit_energy[:, 0] = (c0c * c0c).sum(dim=1)
    if quadrature:
        # Exact: BᵀB = n I, so the fitted Haar energy is ||B c||² / n and the rest RSS / n.
        residual = rss / n_el
    elif n_el > p:
        # Haar-random elements: E[c_j²] = c_j² + sigma² V_jj with V = (BᵀB)⁻¹ and sigma² the
        # residual variance, estimated without bias by RSS / (n - p) (least squares); the
        # Haar mean h is itself estimated from the n samples (factor 1 - 1/n).  At degree 0
        # this is the U-statistic.  The residual's Haar energy is sigma².
        sigma2 = rss / (n_el - p)
        V = torch.diagonal(P @ P.T)
        gain = torch.zeros(n_irreps, dtype=dtype, device=dev).index_add_(0, owner, V)
        gain[0] = gain[0] * (1.0 - 1.0 / n)
        fit_energy = fit_energy - sigma2[:, None] * gain
        residual = sigma2
    else:  # no residual degrees of freedom: nothing to debias with (warned by the degree rule)
        residual = rss / n_el
    energies = torch.cat([fit_energy, residual[:, None]], dim=1)
    return OrbitEnergies(tuple(names), energies, energies.sum(dim=1))


def _is_quadrature(group: Any, values: np.ndarray, degree: int) -> bool:
    """Whether the sampled elements integrate the harmonics exactly as far as they can tell:
    the basis up to the largest degree (at least 1, at least ``degree``) with no more
    functions than elements is orthonormal over them (``BᵀB = n I``; e.g. a uniform SO(2)
    grid).  Haar-random elements are not; their fitted energies get debiased."""
    n_el = len(values)
    top = max(1, degree)
    while top < 64 and _n_functions(group, top + 1) <= n_el:
        top += 1
    B, _ = harmonic_basis(group, values, top)
    if B.shape[1] > n_el:
        return False
    return bool(np.allclose(B.T @ B, n_el * np.eye(B.shape[1]), rtol=0.0, atol=1e-9 * n_el))


def check_elements(group: Any, elements: Any, n_elements: int) -> np.ndarray:
    """The element values a continuous group's spectrum needs, checked against the orbit.

    Raises
    ------
    TypeError
        If ``elements`` is None.
    ValueError
        If its first axis does not have ``n_elements`` entries.
    """
    if elements is None:
        raise TypeError(
            f"{group!r} is continuous: pass elements=, the element values along Z's element "
            "axis (e.g. action.element_values or run.element_values)"
        )
    values = np.asarray(elements, dtype=np.float64)
    if values.shape[:1] != (n_elements,):
        raise ValueError(
            f"elements has shape {values.shape!r} but Z has {n_elements} elements along axis 0"
        )
    return values


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
    src = _check_orbit(Z)
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
