"""The group-Fourier core on continuous groups: harmonic least squares over sampled elements.

For a compact group with orthogonal real irreps ``rho`` (Haar measure 1) the functions
``sqrt(d) rho_ij`` are orthonormal in ``L²(G)`` (Schur; Peter–Weyl: they span it).  An orbit
signal known at sampled elements is fitted in them up to a degree, one pseudo-inverse for every
sample and unit; for an irrep of complex (quaternionic) type only the first ``d/2`` (``d/4``)
columns are independent functions.  The orbit is centred by its *Haar* mean, and unless the
elements are an exact quadrature of the fitted functions (a uniform SO(2) grid), each fitted
energy has its noise ``sigma² V_jj`` removed (``V = (BᵀB)⁻¹``, ``sigma²`` the residual
variance ``RSS / (n - p)``; for the invariant part, that of the orbit minus the mean orbit
over samples, since the elements are shared by all samples); at degree 0 the invariant
energy is the U-statistic ``(1 / n(n-1)) sum_{k != l} <u(g_k), u(g_l)>`` of ``u = f - mean
orbit``, exactly unbiased for Haar-random elements, where the plain element mean reads about
``1/n`` for a layer with no invariant part.

The default degree is the largest (at most :data:`MAX_DEFAULT_DEGREE`) with
:data:`OVERSAMPLING` sampled elements per basis function on each component (``det = ±1``);
every fallback from it warns once per call (:class:`FallbackWarning`).

Haar-random elements are a random sample of the group: the shares carry the Monte-Carlo error
of the Haar integral, which a bootstrap over probe samples (elements held fixed) misses.  The
fit also accumulates the element Gram matrix pooled over samples and units (``m² n d``
multiply-adds, one more GEMM per chunk); every pooled energy is a linear function of it
(:func:`~latentgeo.groups._element_jackknife.pooled_energies`), so the fit with each element
left out is a rank-one downdate of ``p × p`` moments (:class:`ElementJackknife`, ``O(m p³)``
when an interval is asked for), not a pass over the latents.  ``OrbitEnergies.intervals``
adds the delete-one jackknife variance of the shares to the bootstrap's.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any

import numpy as np

from latentgeo._errors import outside_stacklevel
from latentgeo._validate import check_int
from latentgeo.groups._element_jackknife import ElementJackknife, NotRecorded
from latentgeo.groups._energies import (
    FallbackWarning,
    OrbitEnergies,
    check_orbit,
)

if TYPE_CHECKING:
    from latentgeo.groups._protocol import Group

__all__ = [
    "MAX_DEFAULT_DEGREE",
    "OVERSAMPLING",
    "check_elements",
    "harmonic_basis",
    "harmonic_energies",
    "harmonic_names",
    "resolve_max_degree",
]

#: Cap of the default harmonic degree.
MAX_DEFAULT_DEGREE = 4
#: Sampled elements per basis function (per connected component) the default degree keeps.
OVERSAMPLING = 2
#: Values converted to float64 at a time (2 MiB chunks of samples).
_CHUNK_VALUES = 2**18
_COMMUTANT = {"real": 1, "complex": 2, "quaternionic": 4}


def _components(group: Group, elements: np.ndarray) -> np.ndarray:
    """Component of each element: the sign pattern of the 1-d degree-0 irreps (``det = ±1``
    for O(2) and O(3); one component for SO(2), SO(3))."""
    signs = [
        np.sign(rho(elements).reshape(len(elements))) for rho in group.irreps(0) if rho.dim == 1
    ]
    _, labels = np.unique(np.stack(signs, axis=1), axis=0, return_inverse=True)
    return labels.reshape(-1)


def _n_components(group: Group) -> int:
    return sum(1 for rho in group.irreps(0) if rho.dim == 1)


def _n_functions(group: Group, max_degree: int) -> int:
    return sum(r.dim * r.dim // _COMMUTANT[r.type] for r in group.irreps(max_degree))


def _needed(group: Group, degree: int) -> int:
    """Elements per component for ``OVERSAMPLING``-fold oversampling up to ``degree``."""
    return OVERSAMPLING * -(-_n_functions(group, degree) // _n_components(group))


def resolve_max_degree(group: Group, elements: Any, max_degree: int | None = None) -> int:
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
        degree = check_int(max_degree, "max_degree", minimum=0)
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
        warnings.warn("; ".join(notes), FallbackWarning, stacklevel=outside_stacklevel())
    return degree


def harmonic_names(group: Group, max_degree: int) -> list[str]:
    """Spectrum coordinate: the irrep names up to ``max_degree``, then ``"residual"``."""
    return [*group.irrep_names(max_degree), "residual"]


def harmonic_basis(group: Group, elements: Any, max_degree: int) -> tuple[np.ndarray, np.ndarray]:
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
    Z: Any,
    group: Group,
    elements: Any,
    degree: int,
    *,
    dtype: Any = None,
    element_sample: bool = True,
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
    element_sample : bool
        Accumulate the element Gram matrix behind the intervals over the draw of elements
        (``m² n d`` multiply-adds).  False for point estimates only (live metrics, spectra
        without intervals): ``intervals`` then returns NaN with a FallbackWarning that says
        so, rather than an interval that ignores the element sampling.

    Returns
    -------
    OrbitEnergies
        ``names = harmonic_names(group, degree)``.  Energies are Haar energies of the orbit
        centred by its Haar mean; ``"residual"`` is what the fit leaves.  Unless the elements
        are an exact quadrature of the fitted functions (``BᵀB = n I``), each fitted energy
        has its noise ``RSS / (n - p) · V_jj`` removed (exactly unbiased at degree 0 for
        Haar-random elements; see the module notes), and ``jackknife`` holds the pooled
        energies with each element left out (:class:`ElementJackknife`; or
        ``jackknife_note`` says why there are none), for intervals over the draw of elements.

    Raises
    ------
    ValueError
        If ``elements`` does not match ``Z``'s element axis.
    """
    import torch

    dtype = torch.float64 if dtype is None else dtype
    src = check_orbit(Z)
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
    # ||B c||² = ||R c||² with B = QR: the fitted energy as a norm (R is (min(n_el, p), p)).
    R = torch.linalg.qr(B, mode="r").R
    const = int(np.flatnonzero(owner_np == 0)[0])  # the trivial irrep's (only) column
    quadrature = _is_quadrature(group, values, degree)
    chunk = max(1, _CHUNK_VALUES // max(1, n_el * d))
    shift = src[:, :chunk].to(dtype).mean(dim=(0, 1))
    coef_energy = torch.empty((p, n), dtype=dtype, device=dev)  # c_j² per sample
    sq = torch.empty((n_el, n), dtype=dtype, device=dev)  # ||Y[g]||² per element, sample
    fitted = torch.empty((R.shape[0], n), dtype=dtype, device=dev)  # ||(R c)_j||² per sample
    c0 = torch.empty((n, d), dtype=dtype, device=dev)  # fitted Haar mean per sample
    orbit_sum = torch.zeros((n_el, d), dtype=dtype, device=dev)  # sum of the shifted orbits
    # Haar-random elements: the element Gram matrix pooled over samples and units, from which
    # the pooled energies of any subset of the elements follow (the leave-one-out jackknife).
    sampled = not quadrature and element_sample
    gram = torch.zeros((n_el, n_el), dtype=dtype, device=dev) if sampled else None
    c = min(chunk, n)
    buf = torch.empty((n_el, c, d), dtype=dtype, device=dev)
    coef = torch.empty((p, c * d), dtype=dtype, device=dev)
    image = torch.empty((R.shape[0], c * d), dtype=dtype, device=dev)
    for s0 in range(0, n, chunk):
        b = min(chunk, n - s0)
        block, C, RC = buf[:, :b], coef[:, : b * d], image[:, : b * d]
        block.copy_(src[:, s0 : s0 + b])  # one converted buffer per chunk
        block -= shift
        torch.mm(P, block.reshape(n_el, b * d), out=C)
        torch.mm(R, C, out=RC)
        torch.linalg.vector_norm(C.view(p, b, d), dim=2, out=coef_energy[:, s0 : s0 + b])
        # norms over the units only (the contiguous axis: 5-10x faster than over two axes)
        torch.linalg.vector_norm(RC.view(-1, b, d), dim=2, out=fitted[:, s0 : s0 + b])
        torch.linalg.vector_norm(block, dim=2, out=sq[:, s0 : s0 + b])
        c0[s0 : s0 + b] = C[const].view(b, d)
        orbit_sum += block.sum(dim=1)
        if gram is not None:
            flat = block.reshape(n_el, b * d)
            gram.addmm_(flat, flat.T)
    coef_energy.square_()
    fitted = fitted.square_().sum(dim=0)  # ||B c||² per sample
    sq = sq.square_().sum(dim=0)  # sum_g ||Y[g]||² per sample
    fit_energy = torch.zeros((n, n_irreps), dtype=dtype, device=dev)
    fit_energy.index_add_(1, owner, coef_energy.T)
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
        # residual variance, estimated without bias by RSS / (n - p) (least squares).  At
        # degree 0 the invariant energy below is the U-statistic of the orbit minus the mean
        # orbit, exactly unbiased over Haar-random elements given the samples.  The
        # residual's Haar energy is sigma².
        sigma2 = rss / (n_el - p)
        V = torch.diagonal(P @ P.T)
        gain = torch.zeros(n_irreps, dtype=dtype, device=dev).index_add_(0, owner, V)
        fit_energy = fit_energy - sigma2[:, None] * gain
        # The invariant energy is that of c0 - h = P_const (f_i - mean orbit): the elements are
        # shared by all samples, so its noise is the residual variance of the orbit minus the
        # mean orbit (the mean orbit's own residual, common to every sample, cancels in the
        # centring; debiasing with the uncentred residual read the invariant share low by
        # about (mean orbit's residual energy) / n_elements).  ||r_i - r̄||² with
        # r̄ = (I - B P) f̄ orthogonal to B, so <r_i, r̄> = <f_i, r̄>: one more pass.
        mean_orbit = orbit_sum / n
        rbar = mean_orbit - B @ (P @ mean_orbit)
        cross = torch.empty(n, dtype=dtype, device=dev)
        for s0 in range(0, n, chunk):
            block = src[:, s0 : s0 + chunk].to(dtype) - shift
            cross[s0 : s0 + block.shape[1]] = torch.einsum("gbd,gd->b", block, rbar)
        rss_centred = (rss - 2.0 * cross + (rbar * rbar).sum()).clamp_min(0.0)
        fit_energy[:, 0] = fit_energy[:, 0] + (sigma2 - rss_centred / (n_el - p)) * gain[0]
        residual = sigma2
    else:  # no residual degrees of freedom: nothing to debias with (warned by the degree rule)
        residual = rss / n_el
    energies = torch.cat([fit_energy, residual[:, None]], dim=1)
    if quadrature:  # the Haar integral of the fitted functions is exact: no element sampling
        return OrbitEnergies(tuple(names), energies, energies.sum(dim=1))
    if gram is None:
        return OrbitEnergies(tuple(names), energies, energies.sum(dim=1), NotRecorded())
    mean = (orbit_sum / n).cpu().numpy().astype(np.float64)
    sample = ElementJackknife(
        gram.cpu().numpy().astype(np.float64), mean @ mean.T, n, B_np, owner_np
    )
    return OrbitEnergies(tuple(names), energies, energies.sum(dim=1), sample)


def _is_quadrature(group: Group, values: np.ndarray, degree: int) -> bool:
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


def check_elements(group: Group, elements: Any, n_elements: int) -> np.ndarray:
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
