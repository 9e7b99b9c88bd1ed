"""The two-stage generator fit shared by :class:`~probes.GeneratorProbe` and
:class:`~probes.LieAlgebraProbe`, on the span the latents identify.

Model: ``z(exp(Σ_i a_i X_i)·x) ≈ expm(Σ_i a_i L_i) z(x)`` on latents centred per element with
their training means.  (1) For the elements near the identity ridge maps ``ρ(g)`` are fitted
and the ``L_i`` solve ``Σ_i a_gi L_i ≈ log ρ(g)`` by least squares (the principal logarithm is
unambiguous near the identity); if that explains the training latents worse than ``L = 0``,
stage (2) starts from 0.  (2) The ``L_i`` are refined on all training elements by L-BFGS on
``Σ_g ‖Zc_g − Zc_e expm(Σ a_gi L_i)ᵀ‖² / Σ_g ‖Zc_g‖²`` through ``torch.linalg.matrix_exp``.

Everything happens in the coordinates of the numerical span of the identity's training
latents (:mod:`probes._span`): the data say nothing about the generators off it, and a fit in
all units would let arbitrary off-span blocks (which change ``expm`` on the span through its
higher-order terms) decide the algebra's laws.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from probes._linear import alpha_grid
from probes._ridge import fit_design, ridge_weights, select_alpha
from probes._span import Span

__all__ = [
    "GeneratorFit",
    "embed",
    "fit_generators",
    "fitted_span",
    "identity_span",
    "lbfgs_minimize",
    "predict_on_span",
    "to_span",
    "warn_rank_zero",
]


@dataclass(frozen=True)
class GeneratorFit:
    """Generators fitted in span coordinates.

    Attributes
    ----------
    L, L0 : Tensor of shape (k, rank, rank)
        Refined and stage (1) generators, in the span's coordinates.
    mean : Tensor of shape (n_elements, 1, n_units)
        Training mean of every element.
    loss : float
        Relative training loss of ``L``.
    """

    L: torch.Tensor
    L0: torch.Tensor
    mean: torch.Tensor
    loss: float


def lbfgs_minimize(
    loss_fn: Callable[[torch.Tensor], torch.Tensor], init: torch.Tensor, max_iter: int
) -> tuple[torch.Tensor, float]:
    """Minimise a scalar torch loss of one parameter tensor by L-BFGS (autograd gradients).

    scipy's L-BFGS drives the iteration: ``torch.optim`` would import ``torch._dynamo`` on
    first use, which costs seconds, and the small problems here gain nothing from torch's
    optimiser.  Returns the minimiser (same shape, dtype and device as ``init``) and its loss.
    """
    from scipy.optimize import minimize

    shape = init.shape

    def value_and_grad(flat: np.ndarray) -> tuple[float, np.ndarray]:
        param = torch.as_tensor(flat, dtype=init.dtype, device=init.device).reshape(shape)
        param.requires_grad_(True)
        with torch.enable_grad():
            loss = loss_fn(param)
            (grad,) = torch.autograd.grad(loss, param)
        return float(loss.detach()), grad.detach().cpu().numpy().ravel().astype(np.float64)

    res = minimize(
        value_and_grad,
        init.detach().cpu().numpy().ravel().astype(np.float64),
        jac=True,
        method="L-BFGS-B",
        options={"maxiter": max_iter, "gtol": 1e-12, "ftol": 1e-15},
    )
    best = torch.as_tensor(res.x, dtype=init.dtype, device=init.device).reshape(shape)
    with torch.no_grad():
        loss = float(loss_fn(best))
    return best, loss


def _coords(Zc: torch.Tensor, span: Span) -> torch.Tensor:
    """Latents in the span's coordinates (unchanged when the span is everything)."""
    return Zc if span.full else Zc @ span.basis.to(Zc.dtype)


def log_least_squares(maps: np.ndarray, coords: np.ndarray) -> np.ndarray:
    """``argmin_L Σ_g ‖Σ_i a_gi L_i − log M_g‖²`` over the real principal logarithms.

    Parameters
    ----------
    maps : ndarray of shape (s, r, r)
    coords : ndarray of shape (s, k)

    Returns
    -------
    ndarray of shape (k, r, r)
    """
    from scipy.linalg import LinAlgWarning, logm

    with warnings.catch_warnings():
        # Maps far from any representation (non-equivariant latents) have inaccurate
        # logarithms; stage 1 only starts stage 2, which uses no logarithm, and a start worse
        # than L = 0 is replaced by 0.  On the span the maps of an exact representation are
        # invertible, so an identified fit never meets this.
        warnings.filterwarnings("ignore", "logm result may be inaccurate", RuntimeWarning)
        warnings.filterwarnings("ignore", category=LinAlgWarning)
        # The real part: a fitted map near the identity has a real principal logarithm, and
        # round-off can leave ~1e-16 imaginary parts.
        logs = np.stack([np.real(logm(M)) for M in maps])
    r = maps.shape[1]
    coef, *_ = np.linalg.lstsq(coords, logs.reshape(len(maps), -1), rcond=None)
    return coef.reshape(-1, r, r)


def fit_generators(
    Zt: torch.Tensor,
    tr: torch.Tensor,
    A: torch.Tensor,
    e: int,
    small: np.ndarray,
    span: Span,
    *,
    alphas: Any,
    criterion: str,
    refine: bool,
    max_iter: int,
) -> GeneratorFit:
    """Both stages on the training samples ``tr``, in the coordinates of ``span``.

    Parameters
    ----------
    Zt : Tensor of shape (n_elements, n_samples, n_units)
    tr : LongTensor of shape (n_train,)
    A : Tensor of shape (n_elements, k)
        Lie-algebra coordinates of the elements.
    e : int
        Index of the identity.
    small : int ndarray
        Elements used in stage (1).
    span : Span
        From :func:`probes._span.numerical_span` of the identity's training latents.
    alphas, criterion :
        Penalty grid and selection of the stage (1) ridge maps.
    refine : bool
    max_iter : int

    Returns
    -------
    GeneratorFit
    """
    mean = Zt[:, tr].mean(dim=1, keepdim=True)
    Zc = _coords(Zt[:, tr] - mean, span)  # (G, n_tr, r)
    X = Zc[e]
    design = fit_design(X)
    grid = alpha_grid(alphas, design)
    idx = torch.as_tensor(small, device=Zt.device)
    Y = Zc[idx]  # (s, n_tr, r), centred
    Bp = torch.einsum("nr,snd->srd", design.U, Y)
    best, _ = select_alpha(design, Y, Bp, grid, criterion)
    W = ridge_weights(design, Bp, grid[best])  # (s, r_in, r_out)
    rho = W.transpose(1, 2).cpu().numpy()
    L0 = torch.as_tensor(
        log_least_squares(rho, A[idx].cpu().numpy()), dtype=Zt.dtype, device=Zt.device
    )

    def loss_fn(L: torch.Tensor) -> torch.Tensor:
        E = torch.linalg.matrix_exp(torch.einsum("gi,iab->gab", A, L))
        return ((Zc - X @ E.transpose(1, 2)) ** 2).sum() / (Zc**2).sum()

    with torch.no_grad():
        # Logarithms of maps far from any representation (non-equivariant latents) can be
        # huge; then start from L = 0 (no equivariance), whichever explains more.
        if not float(loss_fn(L0)) <= float(loss_fn(torch.zeros_like(L0))):
            L0 = torch.zeros_like(L0)
    if refine:
        L, loss = lbfgs_minimize(loss_fn, L0, max_iter)
    else:
        with torch.no_grad():
            L, loss = L0, float(loss_fn(L0))
    return GeneratorFit(L=L.detach(), L0=L0, mean=mean, loss=loss)


def embed(L: torch.Tensor, span: Span) -> torch.Tensor:
    """Generators (..., r, r) in span coordinates as maps of the units: ``Q L Qᵀ``.

    Zero off the span, where the data do not determine them.
    """
    if span.full:
        return L
    Q = span.basis.to(L.dtype)
    return Q @ L @ Q.T


def predict_on_span(
    X: torch.Tensor, mean: torch.Tensor, A: torch.Tensor, L: torch.Tensor, e: int, span: Span
) -> torch.Tensor:
    """Predicted latents ``Q expm(Σ a_i L_i) Qᵀ (x − μ_e) + μ_g`` of every element.

    Parameters
    ----------
    X : Tensor of shape (m, n_units)
        Latents of the identity.
    mean : Tensor of shape (n_elements, 1, n_units)
    A : Tensor of shape (n_elements, k)
    L : Tensor of shape (k, r, r)
        Generators in span coordinates.
    e : int
    span : Span

    Returns
    -------
    Tensor of shape (n_elements, m, n_units)
    """
    with torch.no_grad():
        E = torch.linalg.matrix_exp(torch.einsum("gi,iab->gab", A, L))
        C = _coords(X - mean[e], span) @ E.transpose(1, 2)  # (G, m, r)
        if not span.full:
            C = C @ span.basis.to(C.dtype).T
        return C + mean


def span_score(probe: Any, Z: Any, layout: Callable[[], tuple[np.ndarray, int]]) -> float:
    """Mean held-out R² of a fitted generator probe's maps ``expm(Σ a_i L_i)`` on new samples
    (the ``score`` of :class:`~probes.GeneratorProbe` and :class:`~probes.LieAlgebraProbe`).

    ``layout()`` gives the fitted elements' coordinates (n_elements, k) and the identity's
    position (read after the fitted check).  NaN when the fit identified nothing
    (``rank_ == 0``).

    Raises
    ------
    sklearn.exceptions.NotFittedError
        Before ``fit``.
    ValueError
        If ``Z`` is not (n_elements, n_samples, n_units) like the fit.
    """
    from probes._scoring import variance_weighted_r2
    from probes._validation import as_orbit_tensor

    probe._check_fitted()
    t = as_orbit_tensor(Z, dtype=probe.dtype, device=probe.device, min_samples=2)
    coordinates, e = layout()
    G = len(coordinates)
    if t.shape[0] != G or t.shape[2] != probe.n_features_in_:
        raise ValueError(
            f"Z must have shape ({G}, n_samples, {probe.n_features_in_}) like the fit, got "
            f"{tuple(t.shape)}"
        )
    if probe.rank_ == 0:
        return float("nan")
    A = torch.as_tensor(coordinates, dtype=t.dtype, device=t.device)
    mean = torch.as_tensor(probe.mean_, dtype=t.dtype, device=t.device)[:, None]
    span, L = probe._fitted(t)
    Y_hat = predict_on_span(t[e], mean, A, L.reshape(A.shape[1], *L.shape[-2:]), e, span)
    return float(probe._mean_r2(variance_weighted_r2(t, Y_hat).cpu().numpy(), e))


def identity_span(
    Zt: torch.Tensor, tr: torch.Tensor, e: int, rank_tol: float | None, eps: float
) -> Span:
    """The numerical span of the identity's centred training latents (:mod:`probes._span`)."""
    from probes._span import numerical_span, rank_tolerance

    X = Zt[e, tr]
    return numerical_span(X - X.mean(dim=0), rank_tolerance(rank_tol, X.shape[0], X.shape[1], eps))


def warn_rank_zero(what: str) -> None:
    """The one warning for latents that do not vary: nothing is identified."""
    warnings.warn(
        f"the untransformed training latents are constant (numerical rank 0): {what} are not "
        "identified by the data and are reported as NaN",
        RuntimeWarning,
        stacklevel=3,
    )


def fitted_span(components: np.ndarray, like: torch.Tensor) -> Span:
    """The span a probe stored as ``components_`` (rank, n_units), on ``like``'s device."""
    basis = torch.as_tensor(components.T, dtype=like.dtype, device=like.device)
    empty = torch.empty(0, dtype=like.dtype, device=like.device)
    return Span(basis=basis, singular_values=empty, rank=components.shape[0], tol=float("nan"))


def to_span(L: torch.Tensor, span: Span) -> torch.Tensor:
    """Maps of the units (..., d, d) in the span's coordinates: ``Qᵀ L Q`` (inverse of
    :func:`embed` on maps that vanish off the span)."""
    if span.full:
        return L
    Q = span.basis.to(L.dtype)
    return Q.T @ L @ Q
