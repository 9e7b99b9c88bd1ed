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

import scipy.linalg
import torch
from scipy.linalg import blas

from probes._dense import blas_threads, gemm, large_empty, numpy_blas

__all__ = [
    "GRAM_CONDITION_LIMIT",
    "Design",
    "default_alphas",
    "expected_null_r2",
    "expected_scores",
    "fit_design",
    "gcv_scores",
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
        evals, evecs = _gram_eigh(Xc)  # ascending
        top = evals[-1]
        if bool(top > 0) and bool(evals[0] * GRAM_CONDITION_LIMIT >= top):
            s2 = evals.flip(0)
            V = evecs.flip(1)
            s = s2.sqrt()
            U = gemm(Xc, V / s, out=large_empty((n, d), X.dtype, X.device))
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


def _gram_eigh(Xc: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Eigendecomposition ``(evals ascending, evecs)`` of the Gram matrix ``XcᵀXc``.

    On the CPU the Gram matrix is one BLAS ``syrk`` (the symmetric rank-k update computes
    one triangle: half the flops of a general product, which torch does not call) and the
    eigendecomposition LAPACK's divide and conquer ``syevd`` on that triangle, both through
    scipy on the tensors' memory.  Elsewhere (GPU) ``torch.linalg.eigh(Xc.T @ Xc)``.
    """
    if numpy_blas(Xc):
        a = Xc.contiguous().numpy().T  # (d, n), Fortran-ordered: no copy
        syrk = blas.dsyrk if Xc.dtype == torch.float64 else blas.ssyrk
        with blas_threads():
            gram = syrk(1.0, a, trans=0, lower=1)  # lower triangle of a aᵀ = XcᵀXc
            evals, evecs = scipy.linalg.eigh(
                gram, lower=True, driver="evd", overwrite_a=True, check_finite=False
            )
        return torch.from_numpy(evals), torch.from_numpy(evecs)
    return torch.linalg.eigh(Xc.T @ Xc)


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
        perp = _perp_norms(design, Yc, B, b2.sum(dim=1), inputs)  # (G,)
        scores = gcv_scores(shrink, n, b2, perp)
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


def gcv_scores(shrink: torch.Tensor, n: int, b2: torch.Tensor, perp: torch.Tensor) -> torch.Tensor:
    """Generalised cross-validation ``RSS(α) / n / (1 − tr H(α) / n)²`` for every penalty.

    Parameters
    ----------
    shrink : Tensor of shape (n_alphas, rank)
        ``α / (s² + α)`` per penalty and singular direction.
    n : int
        Number of training samples.
    b2 : Tensor of shape (..., rank)
        Squared norms of the targets' projections ``‖Bₖ‖²``.
    perp : Tensor of shape (...)
        Squared norm of the targets outside the inputs' span, ``‖P⊥Yc‖²``.

    Returns
    -------
    Tensor of shape (..., n_alphas)
        Infinite where no residual degree of freedom is left (interpolation: undefined, never
        chosen).
    """
    rss = perp[..., None] + (b2[..., None, :] * shrink**2).sum(dim=-1)  # (..., n_alphas)
    dof_left = shrink.sum(dim=1) + (n - 1 - shrink.shape[1])  # n − tr H(α)
    ok = dof_left > 0
    denom = torch.where(ok, (dof_left / n) ** 2, torch.ones_like(dof_left))
    return torch.where(ok, rss / n / denom, torch.full_like(rss, torch.inf))


def expected_scores(design: Design, alphas: torch.Tensor, criterion: str) -> torch.Tensor:
    """Expectation of :func:`select_alpha`'s scores over random re-pairings, per unit ``τ``.

    With the training targets a uniform draw without replacement from ``n`` samples of total
    variance ``τ`` (``n − 1`` denominator), ``E[B Bᵀ] = τ I`` and ``E‖P⊥Yc‖² = (n_train −
    1 − rank) τ`` (GCV); for leave-one-out ``E‖eᵢ(α)‖² = τ [(I − H)²]ᵢᵢ = τ (1 − 1/n_train −
    Σₖ uᵢₖ² (1 − shrinkₖ²))``.  Both criteria are linear in the targets' second moments, so
    these are exact expectations: ``τ`` times the returned values for GCV, ``τ / n_units``
    times them for leave-one-out (whose score is a mean over units).

    Returns
    -------
    Tensor of shape (n_alphas,)
    """
    n_train = design.n
    s2 = design.s**2
    r = s2.numel()
    shrink = alphas[:, None] / (s2[None, :] + alphas[:, None])  # (n_alphas, rank)
    if criterion == "gcv":
        ones = torch.ones(r, dtype=s2.dtype, device=s2.device)
        perp = torch.as_tensor(float(n_train - 1 - r), dtype=s2.dtype, device=s2.device)
        return gcv_scores(shrink, n_train, ones, perp)
    if criterion == "loo":
        u2 = design.U**2  # (n_train, rank)
        base = 1.0 - 1.0 / n_train
        resid = base - u2 @ (1.0 - shrink**2).T  # E‖eᵢ‖² / τ, (n_train, n_alphas)
        lever = base - u2 @ (1.0 - shrink).T  # 1 − hᵢᵢ
        return (resid / lever**2).mean(dim=0)
    raise ValueError(f"criterion must be 'gcv' or 'loo', got {criterion!r}")


def expected_null_r2(
    design: Design,
    X_test: torch.Tensor,
    alphas: torch.Tensor,
    criterion: str,
    n_samples: int,
    rotated: torch.Tensor | None = None,
) -> torch.Tensor:
    """Chance level of the held-out R²: its expectation over random re-pairings, in closed form.

    The null of a ridge probe re-pairs the samples (target sample ``i`` gets the input of
    sample ``π(i)``, ``π`` uniform), refits with the same inputs and penalty selection, and
    scores on the held-out samples.  Its expectation over ``π`` needs no refit: with the
    training targets a uniform draw without replacement from all ``n`` samples, and
    ``τ = tr Cov(y)`` over them (``n − 1`` denominator),

    * the projections ``B = Uᵀ Y_π`` have ``E[B Bᵀ] = τ I`` (``U ⊥ 1``) and the residual
      outside the span ``E‖P⊥Yc‖² = (n_train − 1 − rank) τ``, which gives the expected
      selection criterion and the penalty ``α*`` it chooses (GCV, or exact leave-one-out with
      ``E‖eᵢ‖² = τ [(I − H)²]ᵢᵢ``);
    * the held-out error of the refit is ``E Σᵢ ‖yᵢ − ŷᵢ‖² = τ [n_test ((n + 1) / n +
      n_test / (n n_train)) + Σₖ gₖ² ‖X̃_test vₖ‖²]`` with ``gₖ = sₖ / (sₖ² + α*)`` and the
      held-out inputs ``X̃_test`` centred by the training mean, and the held-out total sum
      of squares ``(n_test − 1) τ``.

    ``τ`` cancels: the chance level depends on the inputs, the split and the penalty grid,
    not on the element, so one value serves every element (``1 − E[SSE] / E[SST]``, the
    ratio of expectations; the two differ at order ``1 / n_test``).  It omits the spread of
    the penalty the criterion picks on a particular re-pairing, which lowers the expectation
    of the refitted null when the targets have few effective units (measured in
    ``docs/calibration.md``).  This is the Rao–Blackwellised permutation null: the same
    estimand as the mean of re-paired fits, without their Monte-Carlo error.

    Parameters
    ----------
    design : Design
        Of the training inputs.
    X_test : Tensor of shape (n_test, n_units)
        Held-out inputs (uncentred).
    alphas : Tensor of shape (n_alphas,)
    criterion : {"gcv", "loo"}
    n_samples : int
        ``n_train + n_test``.
    rotated : Tensor of shape (n_test, rank), optional
        ``(X_test − design.mean) @ design.Vt.T`` when the caller has it (else computed).

    Returns
    -------
    0-dim Tensor
        The expected held-out R² of the procedure on re-paired samples.
    """
    n_train = design.n
    n_test = X_test.shape[0]
    alpha = alphas[torch.argmin(expected_scores(design, alphas, criterion))]
    gain2 = (design.s / (design.s**2 + alpha)) ** 2
    XV = rotated if rotated is not None else gemm(X_test - design.mean, design.Vt.T)
    spread = (torch.linalg.vector_norm(XV, dim=0) ** 2 * gain2).sum()
    n = n_samples
    sse = n_test * ((n + 1) / n + n_test / (n * n_train)) + spread
    return 1.0 - sse / max(n_test - 1, 1)


def _perp_norms(
    design: Design,
    Yc: torch.Tensor,
    B: torch.Tensor,
    b2: torch.Tensor,
    inputs: int | None = None,
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
    if Yc.transpose(0, 1).is_contiguous():  # a (G, n, d) view of sample-major (n, G, d) memory
        tss = (torch.linalg.vector_norm(Yc.transpose(0, 1), dim=2) ** 2).sum(dim=0)
    else:
        tss = (torch.linalg.vector_norm(Yc, dim=2) ** 2).sum(dim=1)
    out = tss - b2  # b2: ‖B[g]‖² per element
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
