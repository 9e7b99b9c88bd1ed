"""What the data identifies: the numerical span of the latents every probe fits on.

A layer whose latents span fewer dimensions than it has units (dead units, a bias-free linear
read-out of a low-dimensional feature, float32 round-off around an exact low-rank layer)
determines a map ``z ↦ rho(g) z`` only on that span: off it, any map fits the data equally
well, and a verdict that depends on it (a bracket law, a homomorphism defect, a character) is
arbitrary.  The probes therefore fit on the principal subspace of the centred training
latents of the identity element and report its dimension as ``rank_``.

Tolerance (the rule of :func:`numpy.linalg.matrix_rank`, with the precision of the data):
singular values ``σ_k > tol · σ_max`` are kept, with ``tol = max(n_train, n_units) · ε`` and
``ε`` the machine epsilon of the *coarser* of the input's dtype and the computation dtype —
latents stored in float32 and analysed in float64 are exact only to float32 precision, so
their round-off directions are not part of the span.  ``rank_tol`` (a probe parameter)
overrides ``tol``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from latentgeo._validate import resolve_dtype
from probes._ridge import Design

__all__ = ["Span", "data_eps", "numerical_span", "rank_tolerance", "truncate_design"]


def data_eps(Z: Any, dtype: torch.dtype | str) -> float:
    """Machine epsilon of the coarser of ``Z``'s own dtype and the computation ``dtype``
    (a torch dtype or its name, ``"float64"``).

    Integer and unknown inputs count as exact (the computation dtype decides).
    """
    eps = float(torch.finfo(resolve_dtype(dtype)).eps)
    own = getattr(Z, "dtype", None)
    if isinstance(own, torch.dtype):
        if own.is_floating_point:
            eps = max(eps, float(torch.finfo(own).eps))
        return eps
    if own is None and not isinstance(Z, np.ndarray):
        return eps
    try:
        np_dtype = np.dtype(own) if own is not None else np.asarray(Z).dtype
    except TypeError:
        return eps
    if np_dtype.kind == "f":
        eps = max(eps, float(np.finfo(np_dtype).eps))
    return eps


def rank_tolerance(rank_tol: float | None, n: int, d: int, eps: float) -> float:
    """The relative singular-value threshold: ``rank_tol`` or ``max(n, d) · eps``."""
    return float(rank_tol) if rank_tol is not None else max(n, d) * eps


@dataclass(frozen=True)
class Span:
    """Principal subspace of centred latents.

    Attributes
    ----------
    basis : Tensor of shape (n_units, rank)
        Orthonormal columns spanning the latents (right singular vectors).
    singular_values : Tensor of shape (min(n, n_units),)
        All singular values, descending.
    rank : int
    tol : float
        The relative threshold that was applied.
    """

    basis: torch.Tensor
    singular_values: torch.Tensor
    rank: int
    tol: float

    @property
    def full(self) -> bool:
        """Whether the span is the whole unit space."""
        return self.rank == self.basis.shape[0]


def numerical_span(Xc: torch.Tensor, tol: float) -> Span:
    """Principal subspace of the centred latents ``Xc`` (n, n_units) at relative ``tol``.

    Parameters
    ----------
    Xc : Tensor of shape (n_samples, n_units)
        Centred latents.
    tol : float
        Singular values ``> tol · σ_max`` are kept (see :func:`rank_tolerance`).

    Returns
    -------
    Span
    """
    _, s, Vt = torch.linalg.svd(Xc, full_matrices=False)
    top = float(s[0]) if s.numel() else 0.0
    rank = int((s > tol * top).sum()) if top > 0 else 0
    return Span(basis=Vt[:rank].T.contiguous(), singular_values=s, rank=rank, tol=tol)


def truncate_design(design: Design, tol: float) -> Design:
    """Drop the singular triplets of a ridge design below ``tol · σ_max``.

    The penalised solution then lives on the numerical span of the inputs: the directions
    below the threshold are round-off of the data (e.g. float32 latents analysed in float64),
    and fitting them would let noise decide the map there.  The dropped energy moves to
    ``dropped`` (the inputs' residual on themselves).
    """
    s = design.s
    if s.numel() == 0:
        return design
    keep = s > tol * s.max()
    if bool(keep.all()):
        return design
    return Design(
        mean=design.mean,
        U=design.U[:, keep].contiguous(),
        s=s[keep],
        Vt=design.Vt[keep].contiguous(),
        dropped=design.dropped + (s[~keep] ** 2).sum(),
    )
