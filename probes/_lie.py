"""Lie-generator probe of a one-parameter group: ``z(T_θ x) ≈ expm(θ L) z(x)`` (SO(2) and
any one-parameter family).  The Lie derivatives that call a model are in
:mod:`probes._lie_derivative`."""

from __future__ import annotations

from dataclasses import dataclass
from numbers import Integral, Real
from typing import Any, ClassVar

import numpy as np
import torch

from probes._base import Interval, RidgeProbeBase
from probes._generator_fit import (
    embed,
    fit_generators,
    fitted_span,
    identity_span,
    predict_on_span,
    span_score,
    to_span,
    warn_rank_zero,
)
from probes._scoring import r2_and_interval
from probes._span import Span, data_eps
from probes._validation import as_orbit_tensor, train_test_indices

__all__ = ["GeneratorProbe"]


@dataclass(eq=False, repr=False, kw_only=True)
class GeneratorProbe(RidgeProbeBase):
    """Fit a Lie-algebra generator ``L`` with ``z(R_θ x) ≈ expm(θ L) z(x)`` for SO(2).

    Two stages (:mod:`probes._generator_fit`, shared with :class:`LieAlgebraProbe`).  (1) For
    the small angles ``0 < |θ| <= small_angle`` ridge maps ``rho(θ)`` are fitted, and ``L₀`` is
    the least-squares solution of ``θ L ≈ log rho(θ)`` over those angles (the principal
    matrix logarithm is unambiguous near the identity).  (2) ``L`` is refined on all training
    angles, large ones included, by minimising ``Σ_θ ‖Zc_θ − Zc_0 expm(θL)ᵀ‖² / Σ_θ ‖Zc_θ‖²``
    with L-BFGS through ``torch.linalg.matrix_exp``.  Starting from ``L₀`` keeps the
    refinement on the branch the small angles identify, which large angles alone cannot
    (``expm(θL)`` is periodic in L's frequencies).  Latents are centred per angle with their
    training means.  Both stages work on the numerical span of the untransformed training
    latents (:mod:`probes._span`); ``L`` is zero off it, where the data do not determine it.

    Parameters
    ----------
    small_angle : float
        Largest angle magnitude ``|θ|`` (radians) used for the initial estimate.
    refine : bool
        Run stage (2).
    max_iter : int
        L-BFGS iterations of stage (2) (at least 1).
    alphas, criterion :
        Penalty grid and selection of the stage (1) ridge maps, see
        :class:`probes._base.RidgeProbeBase`.
    test_size, random_state, device, dtype, n_bootstrap, confidence, rank_tol :
        See :class:`probes._base.ProbeBase`.

    Attributes
    ----------
    generator_ : ndarray of shape (n_units, n_units)
        The fitted ``L`` (NaN when the latents do not vary, with a warning).
    generator_init_ : ndarray of shape (n_units, n_units)
        ``L₀`` from the small angles.
    angles_ : ndarray of shape (n_angles,)
    r2_ : ndarray of shape (n_angles,)
        Held-out R² of ``expm(θL)`` per angle (with the training means).  It estimates the
        population R² of the fitted map on fresh samples, not the best generator's; see
        :mod:`probes._scoring` for its bias.
    r2_ci_ : ndarray of shape (n_angles, 2)
        Interval at ``confidence`` for the population R² of the fitted map (the estimand of
        ``r2_``): a delta-method Student interval over the held-out samples
        (:func:`probes._scoring.r2_interval`), calibrated in ``docs/calibration.md``.
        Computed when ``n_bootstrap > 0`` (the interval is analytic; the count itself is not
        used), NaN otherwise (and when ``rank_ == 0``).
    loss_ : float
        Final relative training loss of stage (2).
    rank_ : int
        Dimension of the span the generator was fitted on.
    components_ : ndarray of shape (rank, n_units)
        Orthonormal basis of that span.
    mean_ : ndarray of shape (n_angles, n_units)
        Training mean of every angle's latents.
    """

    small_angle: float = 0.2
    refine: bool = True
    max_iter: int = 100

    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        **RidgeProbeBase._parameter_constraints,
        "small_angle": [Interval(Real, 0, None, closed="neither")],
        "refine": ["boolean"],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
    }

    def fit(self, Z: Any, angles: Any) -> GeneratorProbe:
        """Fit ``L`` from latents at the given rotation angles.

        Parameters
        ----------
        Z : array-like or Tensor of shape (n_angles, n_samples, n_units)
            ``Z[a]`` the latents of the inputs rotated by ``angles[a]``.
        angles : array-like of shape (n_angles,)
            Radians; must contain 0 (the untransformed inputs, used as regressors).

        Returns
        -------
        self
        """
        self._validate_params()
        eps = data_eps(Z, self.dtype)
        Zt = as_orbit_tensor(Z, dtype=self.dtype, device=self.device)
        theta = np.asarray(angles, dtype=np.float64)
        if theta.ndim != 1 or theta.shape[0] != Zt.shape[0]:
            raise ValueError(
                f"angles must be 1-D with one angle per element of Z ({Zt.shape[0]}), got "
                f"shape {theta.shape}"
            )
        if not np.all(np.isfinite(theta)):
            raise ValueError(f"angles must be finite, got {theta!r}")
        zero = np.flatnonzero(np.abs(theta) < 1e-12)
        if zero.size != 1:
            raise ValueError(f"angles must contain exactly one 0 (the identity), got {theta!r}")
        small = np.flatnonzero((np.abs(theta) > 0) & (np.abs(theta) <= self.small_angle))
        if small.size == 0:
            raise ValueError(
                f"no angle with 0 < |θ| <= small_angle={self.small_angle!r}; the generator "
                f"is identified from small angles (got {theta!r})"
            )
        e = int(zero[0])
        train, test = train_test_indices(Zt.shape[1], self.test_size, self.random_state)
        tr = torch.as_tensor(train, device=Zt.device)
        te = torch.as_tensor(test, device=Zt.device)
        span = identity_span(Zt, tr, e, self.rank_tol, eps)
        th = torch.as_tensor(theta[:, None], dtype=Zt.dtype, device=Zt.device)
        d = Zt.shape[2]
        self.angles_ = theta
        self.train_index_, self.test_index_ = train, test
        self.rank_ = span.rank
        self.components_ = span.basis.T.cpu().numpy()
        self.n_features_in_ = d
        if span.rank == 0:
            warn_rank_zero("the generator and its held-out R²")
            nan = np.full((d, d), np.nan)
            self.generator_, self.generator_init_ = nan, nan.copy()
            self.mean_ = Zt[:, tr].mean(dim=1).cpu().numpy()
            self.loss_ = float("nan")
            self.r2_ = np.full(len(theta), np.nan)
            self.r2_ci_ = np.full((len(theta), 2), np.nan)
            return self
        fit = fit_generators(
            Zt,
            tr,
            th,
            e,
            small,
            span,
            alphas=self.alphas,
            criterion=self.criterion,
            refine=self.refine,
            max_iter=self.max_iter,
        )
        Y_hat = predict_on_span(Zt[e, te], fit.mean, th, fit.L, e, span)
        Y_te = Zt[:, te]
        self.generator_ = embed(fit.L[0], span).cpu().numpy()
        self.generator_init_ = embed(fit.L0[0], span).cpu().numpy()
        self.mean_ = fit.mean[:, 0].cpu().numpy()
        self.loss_ = fit.loss
        r2, ci = r2_and_interval(Y_te, Y_hat, self.confidence if self.n_bootstrap else None)
        self.r2_, self.r2_ci_ = r2.cpu().numpy(), ci.cpu().numpy()
        return self

    def rho(self, theta: Any) -> np.ndarray:
        """``Q expm(θ L_Q) Qᵀ`` for one angle or an array of angles.

        The map on the fitted span (``components_``), zero on its orthogonal complement (the
        identity map when the span is every unit).

        Parameters
        ----------
        theta : float or array-like of shape (n,)

        Returns
        -------
        ndarray of shape (n_units, n_units) or (n, n_units, n_units)
        """
        self._check_fitted()
        th = torch.as_tensor(np.asarray(theta, dtype=np.float64))
        if self.rank_ == 0:
            return np.full((*th.shape, self.n_features_in_, self.n_features_in_), np.nan)
        span, L = self._fitted(th.to(torch.float64))
        E = torch.linalg.matrix_exp(th[..., None, None] * L)
        return embed(E, span).numpy()

    def _fitted(self, like: torch.Tensor) -> tuple[Span, torch.Tensor]:
        """The fitted span and the generator in its coordinates, in ``like``'s dtype."""
        span = fitted_span(self.components_, like)
        G = torch.as_tensor(self.generator_, dtype=like.dtype, device=like.device)
        return span, to_span(G, span)

    def score(self, Z: Any, y: None = None) -> float:
        """Mean R² over the non-zero angles of the fitted ``expm(θL)`` on new samples.

        Parameters
        ----------
        Z : array-like of shape (n_angles, n_samples, n_units)
            Latents of new samples at the fitted angles ``angles_``.
        y : None
            Ignored (scikit-learn signature).

        Returns
        -------
        float
            NaN when the fit identified nothing (``rank_ == 0``).
        """

        def layout() -> tuple[np.ndarray, int]:
            angles = np.asarray(self.angles_)
            return angles[:, None], int(np.flatnonzero(np.abs(angles) < 1e-12)[0])

        return span_score(self, Z, layout)
