"""Harmonic least squares: the irrep spectrum of orbits sampled on a continuous group.

For a compact group ``G`` with orthogonal real irreps ``ρ`` (Haar measure normalised to 1),
the functions ``√d_ρ ρ_ij`` are orthonormal in ``L²(G)`` (Schur orthogonality; the
Peter–Weyl theorem says they span it).  An orbit signal ``f(g) = z(g·x)`` of one sample and
unit, known only at sampled elements ``g_1..g_n``, is fitted by least squares in these
functions up to a degree ``L``:

    f(g) ≈ Σ_ρ Σ_ij c_ρij √d_ρ ρ_ij(g),

and the Haar energy of its ``ρ``-component is ``Σ_ij c_ρij²`` (``= ‖C_ρ‖² / d_ρ`` in matrix
form).  For an irrep of complex (quaternionic) type only the first ``d/2`` (``d/4``) columns
are independent functions and only those are used.  The spectrum sums energies over samples
and units:

- the invariant share is the spread over samples of the fitted constant coefficient ``c_0``
  (the Haar mean of each orbit), ``Σ (c_0 − mean_samples c_0)²`` — not the mean over the
  sampled elements, which leaks a false invariant share onto non-trivial irreps;
- each non-trivial irrep's share is ``Σ c_ρ²``;
- ``"residual"`` is what the fit leaves over the sampled elements, ``RSS / n``;

all over their sum, so the shares sum to 1.  One design matrix serves every sample and unit:
its pseudo-inverse is computed once and applied to all right-hand sides (in column chunks,
so memory stays bounded), the cost of a single plain least-squares solve.

A fit needs more sampled elements than basis functions: on each connected component of the
group (``det = ±1`` for O(2) and O(3)), the default ``max_degree`` is the largest (at most
:data:`MAX_DEFAULT_DEGREE`) with at least :data:`OVERSAMPLING` elements per basis function;
asking for more warns with the numbers.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from latentgeo._validate import check_int

if TYPE_CHECKING:
    from probes._settings import RunSettings

__all__ = [
    "MAX_DEFAULT_DEGREE",
    "OVERSAMPLING",
    "harmonic_basis",
    "harmonic_names",
    "harmonic_spectrum",
    "resolve_max_degree",
]

#: Cap of the default degree.
MAX_DEFAULT_DEGREE = 4
#: Elements per basis function (per connected component) the default degree keeps.
OVERSAMPLING = 2
#: Right-hand sides per chunk of the solve.
_CHUNK = 1 << 15

_COMMUTANT = {"real": 1, "complex": 2, "quaternionic": 4}


def _components(group: Any, elements: np.ndarray) -> np.ndarray:
    """Component label of each element: the sign pattern of the 1-d degree-0 irreps.

    For O(2) and O(3) these are the trivial irrep and the determinant, so the labels are
    ``det = ±1``; connected groups (SO(2), SO(3)) have one component.
    """
    signs = [
        np.sign(rho(elements).reshape(len(elements))) for rho in group.irreps(0) if rho.dim == 1
    ]
    _, labels = np.unique(np.stack(signs, axis=1), axis=0, return_inverse=True)
    return labels.reshape(-1)


def _n_functions(group: Any, max_degree: int) -> int:
    return sum(r.dim * r.dim // _COMMUTANT[r.type] for r in group.irreps(max_degree))


def _support(group: Any, elements: np.ndarray) -> tuple[int, int]:
    """``(smallest component size, number of components)`` of the sampled elements."""
    labels = _components(group, elements)
    counts = np.bincount(labels)
    return int(counts.min()), len(counts)


def _needed(group: Any, degree: int, n_components: int) -> int:
    """Elements per component for ``OVERSAMPLING``-fold oversampling up to ``degree``."""
    per_component = -(-_n_functions(group, degree) // n_components)
    return OVERSAMPLING * per_component


def resolve_max_degree(group: Any, elements: Any, max_degree: int | None = None) -> int:
    """The degree of the fit: ``max_degree``, or the default the sample supports.

    Parameters
    ----------
    group : continuous group
        A group of the protocol with ``is_finite == False``.
    elements : array of shape (n_elements, ...)
        Element values of the orbit axis.
    max_degree : int, optional
        Requested degree.

    Returns
    -------
    int
        ``max_degree`` if given (with a ``UserWarning`` when the sample has fewer than
        ``OVERSAMPLING`` elements per basis function on some component), else the largest
        degree ``<= MAX_DEFAULT_DEGREE`` that has them (0 if none).

    Raises
    ------
    TypeError, ValueError
        For a ``max_degree`` that is not an int ``>= 0``.
    """
    values = np.asarray(elements)
    smallest, n_comp = _support(group, values)
    if max_degree is None:
        best = 0
        for degree in range(1, MAX_DEFAULT_DEGREE + 1):
            if smallest >= _needed(group, degree, n_comp):
                best = degree
        return best
    max_degree = check_int(max_degree, "max_degree", minimum=0)
    need = _needed(group, int(max_degree), n_comp)
    if smallest < need:
        n_fun = _n_functions(group, int(max_degree))
        warnings.warn(
            f"max_degree={int(max_degree)} on {group!r} fits {n_fun} basis functions "
            f"({n_fun // n_comp} per component over {n_comp} component(s)); "
            f"{OVERSAMPLING}x oversampling needs {need} sampled elements per component, the "
            f"sample has {smallest} on its smallest: the fit leaks variance between degrees",
            UserWarning,
            stacklevel=3,
        )
    return int(max_degree)


def harmonic_names(group: Any, max_degree: int) -> list[str]:
    """Spectrum coordinate: the irrep names up to ``max_degree``, then ``"residual"``."""
    return [*group.irrep_names(max_degree), "residual"]


def harmonic_basis(group: Any, elements: Any, max_degree: int) -> tuple[np.ndarray, np.ndarray]:
    """The design matrix of Haar-orthonormal matrix-entry functions at sampled elements.

    Parameters
    ----------
    group : continuous group
    elements : array of shape (n_elements, ...)
        Element values.
    max_degree : int

    Returns
    -------
    B : float64 array of shape (n_elements, n_functions)
        Columns ``√d ρ_ij(g)`` for each irrep up to ``max_degree`` (``j`` over the first
        ``d / k`` columns, ``k`` the commutant dimension of its type).
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


def harmonic_spectrum(
    Z: torch.Tensor, group: Any, elements: Any, max_degree: int | None = None
) -> tuple[list[str], torch.Tensor]:
    """Irrep names (with ``"residual"``) and shares of the orbit signals of ``Z``.

    Parameters
    ----------
    Z : Tensor of shape (n_elements, n_samples, n_units)
        Orbit latents (any constant offset per unit is irrelevant: it lies in the fit).
    group : continuous group
    elements : array of shape (n_elements, ...)
        Element values of ``Z``'s element axis.
    max_degree : int, optional
        See :func:`resolve_max_degree`.

    Returns
    -------
    names : list of str
        ``group.irrep_names(max_degree) + ["residual"]``.
    shares : Tensor of shape (len(names),), in ``Z``'s dtype and device
        Non-negative, summing to 1; the first entry is the invariant (Haar) share.  A
        signal with no variance gives the invariant share 1.

    Raises
    ------
    ValueError
        If ``elements`` does not match ``Z``'s element axis.
    """
    values = np.asarray(elements)
    n_el = Z.shape[0]
    if values.shape[:1] != (n_el,):
        raise ValueError(
            f"elements has {values.shape[:1]} values but Z has {n_el} elements along axis 0; "
            "pass the element values of Z's element axis"
        )
    degree = resolve_max_degree(group, values, max_degree)
    names = harmonic_names(group, degree)
    B_np, owner_np = harmonic_basis(group, values, degree)
    n_irreps = len(names) - 1
    B = torch.as_tensor(B_np, dtype=Z.dtype, device=Z.device)
    owner = torch.as_tensor(owner_np, device=Z.device)
    # One factorisation for all right-hand sides: the (minimum-norm) least-squares
    # coefficients are P Y with P the pseudo-inverse of the design, and the fitted energy
    # ‖B c‖² = cᵀ (BᵀB) c.  Cost per right-hand side: n p + p² multiply-adds, as a QR solve.
    P = torch.linalg.pinv(B)  # (p, n_el)
    gram = B.T @ B
    const = int(np.flatnonzero(owner_np == 0)[0])  # the trivial irrep's column
    n_samples, n_units = Z.shape[1], Z.shape[2]
    Y = Z.reshape(n_el, -1)
    # Centre each unit by its grand mean chunk by chunk (no full copy of Z): offsets lie in
    # the fit anyway, and centring keeps ‖Y‖² − ‖fit‖² free of cancellation.
    mu = Z.mean(dim=(0, 1))
    energy = torch.zeros(n_irreps, dtype=Z.dtype, device=Z.device)
    total_sq = torch.zeros((), dtype=Z.dtype, device=Z.device)
    fitted_sq = torch.zeros((), dtype=Z.dtype, device=Z.device)
    c0 = torch.empty(Y.shape[1], dtype=Z.dtype, device=Z.device)
    chunk = max(n_units, (_CHUNK // n_units) * n_units)  # whole samples per chunk
    for start in range(0, Y.shape[1], chunk):
        block = Y[:, start : start + chunk].reshape(n_el, -1, n_units) - mu
        block = block.reshape(n_el, -1)
        C = P @ block  # (p, chunk)
        energy.index_add_(0, owner, (C * C).sum(dim=1))
        fitted_sq += (C * (gram @ C)).sum()
        c0[start : start + block.shape[1]] = C[const]
        total_sq += (block * block).sum()
    # Invariant share: the spread over samples of each unit's Haar mean (c0 per (sample, unit)).
    c0 = c0.reshape(n_samples, n_units)
    energy[0] = ((c0 - c0.mean(dim=0, keepdim=True)) ** 2).sum()
    residual = (total_sq - fitted_sq).clamp_min(0.0) / n_el
    out = torch.cat([energy, residual.reshape(1)])
    total = out.sum()
    if total <= 0:
        out = torch.zeros_like(out)
        out[0] = 1.0
        return names, out
    return names, (out / total).clamp_min(0.0)


# -- the runner's hooks (probes.run on runs of a continuous group) ---------------------------
def run_element_values(run: Any, group: Any, n_elements: int) -> np.ndarray:
    """The element values of a continuous group's run, as the harmonic fit needs them.

    Stores written without element values read back as indices ``arange(n)``; for those the
    orbit axis was the group's uniform grid (SO(2)), which :meth:`grid` gives back.

    Raises
    ------
    ValueError
        If the run holds indices and the group has no grid of that size, or the number of
        values differs from the run's element axis.
    """
    values = np.asarray(run.element_values)
    if values.dtype.kind in "iu":
        try:
            values = group.grid(len(values))
        except NotImplementedError:
            raise ValueError(
                f"run {run!r} stores no element values of {group!r} (only indices); record "
                "it with an action of that group (its element_values are stored)"
            ) from None
    values = np.asarray(values, dtype=np.float64)
    if len(values) != n_elements:
        raise ValueError(
            f"run {run!r} stores {len(values)} element values for {n_elements} elements"
        )
    return values


def continuous_block(Zt: torch.Tensor, group: Any, settings: RunSettings) -> dict:
    """The runner's ``spectrum`` and ``invariance`` of one (layer, step) of a continuous run.

    ``settings`` carries ``element_values`` and the resolved ``harmonic_degree`` (set by
    :func:`probes.run`); ``invariance`` is the spectrum's Haar invariant share.
    """
    wanted = set(settings.probes)
    if not wanted & {"spectrum", "invariance"}:
        return {}
    _, shares = harmonic_spectrum(Zt, group, settings.element_values, settings.harmonic_degree)
    out: dict[str, np.ndarray] = {}
    if "spectrum" in wanted:
        out["spectrum"] = shares.cpu().numpy()
    if "invariance" in wanted:
        out["invariance"] = np.asarray(float(shares[0]))
    return out
