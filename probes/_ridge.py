"""Multi-target ridge regression sharing one SVD, with closed-form penalty selection.

All elements of a group orbit are regressed on the same inputs ``Z[identity]``, so one thin SVD
of the centred training inputs serves every element, every penalty and every null permutation:
with ``Xc = U diag(s) Vᵀ`` and ``B = Uᵀ Yc`` the ridge solution for penalty ``α`` is
``W(α) = V diag(s / (s² + α)) B`` and its residual is ``P⊥ Yc + U diag(α / (s² + α)) B``.

Two selection criteria are offered:

* ``"gcv"`` — generalised cross-validation (Golub, Heath & Wahba 1979),
  ``GCV(α) = n · RSS(α) / (n − tr H(α))²`` with ``tr H = 1 + Σ s²/(s²+α)`` (the 1 is the
  unpenalised intercept).  ``RSS(α) = ‖P⊥Yc‖² + Σₖ (α/(sₖ²+α))² ‖Bₖ‖²`` needs only the row norms
  of ``B``, so every penalty of the grid costs O(rank) per element once ``B`` is known.
* ``"loo"`` — exact efficient leave-one-out, ``Σᵢ ‖eᵢ(α)‖² / (1 − hᵢᵢ(α))²``; this is what
  scikit-learn's ``RidgeCV`` computes in its ``gcv_mode`` (same choice, same ties: the first
  minimum in grid order).  It costs O(n · rank · d) per penalty and element.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

__all__ = [
    "GRAM_CONDITION_LIMIT",
    "Design",
    "default_alphas",
    "fit_design",
    "large_empty",
    "ridge_weights",
    "select_alpha",
]


@dataclass(frozen=True)
class Design:
    """Thin SVD of the centred training inputs.

    Attributes
    ----------
    mean : Tensor of shape (n_units,)
    U : Tensor of shape (n_train, rank)
    s : Tensor of shape (rank,)
        Singular values above the numerical rank threshold.
    Vt : Tensor of shape (rank, n_units)
    """

    mean: torch.Tensor
    U: torch.Tensor
    s: torch.Tensor
    Vt: torch.Tensor
    #: Sum of the squared singular values below the rank threshold (0-dim tensor): the
    #: residual of regressing the inputs on themselves.
    dropped: torch.Tensor

    @property
    def n(self) -> int:
        return self.U.shape[0]


#: Largest ratio of the largest to the smallest eigenvalue of the training Gram matrix for
#: which :func:`fit_design` takes the eigendecomposition path: every eigenvalue of ``XcᵀXc`` is
#: then known to a relative error of about ``n_units · eps · 1e6 ≈ 1e-10`` (Weyl), and ``U`` is
#: orthonormal to the same order.  Worse-conditioned inputs take the QR + SVD path.
GRAM_CONDITION_LIMIT = 1e6


def large_empty(shape: tuple[int, ...], dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """``torch.empty`` for a large block; on the CPU backed by numpy's allocator.

    numpy asks the kernel for transparent huge pages on large blocks (``madvise``, numpy >=
    1.22 on Linux; scikit-learn's arrays get them), torch's CPU allocator does not unless
    the process sets ``THP_MEM_ALLOC_ENABLE``: first touch of a fresh 100 MB block then
    costs one fault per 2 MiB instead of per 4 KiB, which is most of the cost of gathering
    the training targets at the benchmark size.  Elsewhere (or for other dtypes) plain
    ``torch.empty``.
    """
    if torch.device(device).type == "cpu" and dtype in (torch.float32, torch.float64):
        np_dtype = np.float32 if dtype == torch.float32 else np.float64
        return torch.from_numpy(np.empty(shape, dtype=np_dtype))
    return torch.empty(shape, dtype=dtype, device=device)


def fit_design(X: torch.Tensor) -> Design:
    """Centre ``X`` (n_train, n_units) and keep its numerically non-zero singular triplets.

    Two paths with the same result to round-off:

    * well-conditioned tall inputs (``n_train > n_units`` and ``cond(Xc)² <=``
      :data:`GRAM_CONDITION_LIMIT`): the symmetric eigendecomposition of the Gram matrix
      ``XcᵀXc = V diag(s²) Vᵀ`` and ``U = Xc V diag(1/s)`` — one GEMM-rich pass of about
      ``4 n d²`` flops, several times faster than a QR or an SVD of ``Xc``;
    * otherwise Householder QR then the SVD of the small triangle (tall), or a direct thin
      SVD (wide): backward stable at any condition number, and what keeps rank-deficient
      latents (dead units) exact.
    """
    mean = X.mean(dim=0)
    Xc = torch.sub(X, mean, out=large_empty(tuple(X.shape), X.dtype, X.device))
    n, d = Xc.shape
    if n > d and d > 0:
        evals, evecs = torch.linalg.eigh(Xc.T @ Xc)  # ascending
        top = evals[-1]
        if bool(top > 0) and bool(evals[0] * GRAM_CONDITION_LIMIT >= top):
            s2 = evals.flip(0)
            V = evecs.flip(1)
            s = s2.sqrt()
            U = torch.mm(Xc, V / s, out=large_empty((n, d), X.dtype, X.device))
            return Design(
                mean=mean,
                U=U,
                s=s,
                Vt=V.T.contiguous(),
                dropped=torch.zeros((), dtype=X.dtype, device=X.device),
            )
    if n > d:
        # Tall: Householder QR, then the SVD of the small triangle.  As accurate as a direct
        # SVD (both backward stable) and the divide-and-conquer workspace is d × d, not n × d.
        Q, R = torch.linalg.qr(Xc)
        Ur, s, Vt = torch.linalg.svd(R)
        U = Q @ Ur
        del Q, R, Ur
    else:
        U, s, Vt = torch.linalg.svd(Xc, full_matrices=False)
    # Same threshold as numpy.linalg.matrix_rank: directions below it are round-off (centring
    # alone removes one), and keeping them would divide by ~0 in the penalised inverse.
    tol = s.max() * max(Xc.shape) * torch.finfo(X.dtype).eps if s.numel() else 0.0
    keep = s > tol
    return Design(
        mean=mean,
        U=U[:, keep].contiguous(),
        s=s[keep],
        Vt=Vt[keep].contiguous(),
        dropped=(s[~keep] ** 2).sum(),
    )


def default_alphas(design: Design, n_alphas: int = 29) -> torch.Tensor:
    """Scale-aware penalty grid: half-decades from 1e-10 to 1e4 times the mean eigenvalue.

    Scaling by the mean eigenvalue of ``XcᵀXc`` makes the grid independent of the units of
    the latents, so one default serves raw pixels and normalised embeddings alike.
    """
    scale = (design.s**2).mean() if design.s.numel() else torch.ones((), dtype=design.s.dtype)
    exps = torch.linspace(-10.0, 4.0, n_alphas, dtype=design.s.dtype, device=design.s.device)
    return scale * 10.0**exps


def select_alpha(
    design: Design,
    Yc: torch.Tensor,
    B: torch.Tensor,
    alphas: torch.Tensor,
    criterion: str,
    inputs: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Score every penalty for every element and return the index of the best one.

    Parameters
    ----------
    design : Design
    Yc : Tensor of shape (n_elements, n_train, n_units)
        Centred training targets.
    B : Tensor of shape (n_elements, rank, n_units)
        ``Uᵀ Yc`` per element.
    alphas : Tensor of shape (n_alphas,)
    criterion : {"gcv", "loo"}
    inputs : int, optional
        Index of an element whose targets are the inputs themselves (the identity): its
        residual outside the span is known (``design.dropped``) and not recomputed.

    Returns
    -------
    best : LongTensor of shape (n_elements,)
        Index into ``alphas`` of the first minimiser of the criterion.
    scores : Tensor of shape (n_elements, n_alphas)
        The criterion (mean squared error scale) for every element and penalty.
    """
    s2 = design.s**2
    n = design.n
    shrink = alphas[:, None] / (s2[None, :] + alphas[:, None])  # (n_alphas, rank): α/(s²+α)
    if criterion == "gcv":
        b2 = torch.linalg.vector_norm(B, dim=2) ** 2  # (G, rank), without a B² temporary
        # ‖P⊥Yc‖² computed directly rather than as ‖Yc‖² − ‖B‖², which cancels catastrophically
        # when the fit is nearly exact (exactly the regime where small penalties win).
        perp = _perp_norms(design, Yc, B, inputs)  # (G,)
        rss = perp[:, None] + (b2[:, None, :] * shrink[None] ** 2).sum(dim=2)  # (G, n_alphas)
        dof_left = shrink.sum(dim=1) + (n - 1 - s2.numel())  # n − tr H(α)
        # No residual degrees of freedom left (interpolation): GCV is undefined, never chosen.
        ok = (dof_left > 0)[None, :]
        denom = torch.where(ok, (dof_left / n) ** 2, torch.ones_like(dof_left))
        scores = torch.where(ok, rss / n / denom, torch.full_like(rss, torch.inf))
    elif criterion == "loo":
        G = B.shape[0]
        perp = Yc - torch.einsum("nr,grd->gnd", design.U, B)  # (G, n, d)
        u2 = design.U**2
        scores = torch.empty(G, alphas.numel(), dtype=B.dtype, device=B.device)
        for a in range(alphas.numel()):
            resid = perp + torch.einsum("nr,grd->gnd", design.U, shrink[a][None, :, None] * B)
            one_minus_h = 1.0 - 1.0 / n - u2 @ (1.0 - shrink[a])  # (n,)
            loo = resid / one_minus_h[None, :, None]
            scores[:, a] = (loo**2).mean(dim=(1, 2))
    else:
        raise ValueError(f"criterion must be 'gcv' or 'loo', got {criterion!r}")
    return torch.argmin(scores, dim=1), scores


def _perp_norms(
    design: Design, Yc: torch.Tensor, B: torch.Tensor, inputs: int | None = None
) -> torch.Tensor:
    """‖(I − UUᵀ) Yc‖² per element, without forming the (n × n) projector.

    ``‖Yc‖² − ‖B‖²`` is exact in exact arithmetic and costs nothing, but it loses everything
    to cancellation when the targets lie (almost) in the span of the inputs, which is exactly
    the equivariant regime where small penalties should win.  Its absolute error is about
    ``eps · ‖Yc‖²``, so it is kept when the result is above ``1e-6 ‖Yc‖²`` (relative error
    below ~1e-10) and recomputed from the residual otherwise.
    """
    # vector_norm reduces without materialising Yc² (an (n, d) temporary per element); over
    # the contiguous unit axis first (several times faster than over (n, d) of a strided view).
    tss = (torch.linalg.vector_norm(Yc, dim=2) ** 2).sum(dim=1)
    out = tss - torch.linalg.vector_norm(B, dim=(1, 2)) ** 2
    threshold = torch.finfo(Yc.dtype).eps ** 0.5
    if inputs is not None:
        out[inputs] = design.dropped  # the inputs' own residual: the dropped directions
    for g in torch.nonzero(out <= threshold * tss).flatten().tolist():
        if g != inputs:
            out[g] = ((Yc[g] - design.U @ B[g]) ** 2).sum()
    return out.clamp_min(0.0)


def ridge_weights(design: Design, B: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """Ridge coefficients ``W[g]`` of shape (n_units_in, n_units_out) for per-element penalties.

    Parameters
    ----------
    design : Design
    B : Tensor of shape (n_elements, rank, n_units)
    alpha : Tensor of shape (n_elements,)

    Returns
    -------
    Tensor of shape (n_elements, n_units, n_units)
        ``Yc ≈ Xc @ W[g]``.
    """
    s = design.s
    gain = s[None, :] / (s[None, :] ** 2 + alpha[:, None])  # (G, rank)
    return torch.einsum("rd,gr,gre->gde", design.Vt, gain, B)
