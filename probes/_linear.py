"""Linear (ridge) equivariance probe: fit rho(g) for every group element at once."""

from __future__ import annotations

from dataclasses import dataclass
from numbers import Integral
from typing import Any, ClassVar

import numpy as np
import torch

from probes._base import Interval, RidgeProbeBase, StrOptions
from probes._dense import Workspace, gemm, large_empty
from probes._ridge import Design, default_alphas, expected_null_r2, fit_design, select_alpha
from probes._scoring import r2_and_interval, variance_weighted_r2
from probes._span import data_eps, rank_tolerance, truncate_design
from probes._validation import as_orbit_tensor, train_test_indices

__all__ = ["LinearProbe", "alpha_grid", "null_precision"]


def alpha_grid(alphas: Any, design: Design) -> torch.Tensor:
    """The penalties to search: ``alphas`` checked (finite, positive, 1-D), or the default grid.

    Raises
    ------
    ValueError
        Empty, not 1-D, non-finite or non-positive ``alphas``.
    """
    if alphas is None:
        return default_alphas(design)
    grid = torch.as_tensor(np.asarray(alphas, dtype=np.float64), dtype=design.s.dtype).to(
        design.s.device
    )
    if grid.ndim != 1 or grid.numel() == 0:
        raise ValueError(f"alphas must be a non-empty 1-D sequence, got {alphas!r}")
    if not bool(torch.isfinite(grid).all()) or bool((grid <= 0).any()):
        raise ValueError(f"alphas must be finite and positive, got {alphas!r}")
    return grid


def null_precision(
    design: Design, X: torch.Tensor, alphas: torch.Tensor
) -> tuple[Design, torch.Tensor, torch.Tensor]:
    """The re-paired (null) fits' inputs in float32: ``(design, X, alphas)``.

    ``X``: the held-out inputs (rotated by the null's own ``design.Vt`` afterwards).

    The null is a chance level; float32 GEMMs run at about twice the float64 rate, and the
    null's held-out R² is a ratio of sums whose float32 round-off (relative ~1e-6) is far
    inside its own sampling interval (``benchmarks/calibration.py`` checks it lies inside the
    exact float64 null's interval on every planted setting).  Float32 inputs are returned
    unchanged; the null's targets are converted as they are gathered
    (:class:`probes._dense.Workspace`).
    """
    if X.dtype != torch.float64:
        return design, X, alphas
    f = torch.float32
    small = Design(
        mean=design.mean.to(f),
        U=design.U.to(f),
        s=design.s.to(f),
        Vt=design.Vt.to(f),
        dropped=design.dropped.to(f),
    )
    return small, X.to(f), alphas.to(f)


@dataclass(eq=False, repr=False, kw_only=True)
class LinearProbe(RidgeProbeBase):
    """Ridge probe of linear equivariance ``z(g·x) ≈ rho(g) z(x) + b(g)``.

    Every element's map is fitted on the same training inputs ``Z[identity]``, so one thin SVD
    of the centred inputs serves all elements, all penalties and the null fits.  The penalty is
    chosen per element in closed form over a grid: by generalised cross-validation (default,
    O(rank) per penalty once the targets are projected) or by exact leave-one-out (identical to
    scikit-learn's ``RidgeCV``).  All scores are computed on held-out samples: with
    ``n_units >= n_samples`` least squares fits anything in-sample, so an in-sample R² would
    only measure the size of the layer.

    A scikit-learn estimator (:class:`probes._base.RidgeProbeBase`): keyword-only
    parameters, ``get_params``/``set_params``, :func:`sklearn.base.clone`; invalid parameters
    raise ``InvalidParameterError`` (a ``ValueError``) at ``fit``.

    Parameters
    ----------
    n_null : int, default 1
        0 skips the null (``null_r2_`` is NaN).  Otherwise, with ``null="permutation"``, the
        number of re-paired fits (targets permuted relative to inputs) averaged into
        ``null_r2_``; with ``null="expected"`` any positive value computes the closed form.
    null : {"expected", "permutation"}, default "expected"
        How the chance level ``null_r2_`` is computed.  ``"expected"``: the expectation of
        the re-paired fit's held-out R² over uniformly random re-pairings, in closed form
        (:func:`probes._ridge.expected_null_r2`; no refit, the same value for every element).
        ``"permutation"``: ``n_null`` actual re-paired fits (float32 when ``dtype`` is
        float64, :func:`null_precision`), whose mean estimates the same quantity with
        Monte-Carlo error; it also keeps the spread of the penalty choice, which the closed
        form omits (it matters when targets have few effective units; measured in
        ``docs/calibration.md``).
    identity : int, default 0
        Index of the identity element along axis 0 of ``Z`` (0 by the contract).
    alphas, criterion :
        Penalty grid and its selection, see :class:`probes._base.RidgeProbeBase`.
    test_size, random_state, device, dtype, n_bootstrap, confidence, rank_tol :
        Split, seed, placement, bootstrap, see :class:`probes._base.ProbeBase`.

    Attributes
    ----------
    rho_ : ndarray of shape (n_elements, n_units, n_units)
        ``rho_[g] @ z`` predicts the (centred) latent of ``g·x``.
    bias_ : ndarray of shape (n_elements, n_units)
    alpha_ : ndarray of shape (n_elements,)
        Chosen penalty per element.
    alphas_ : ndarray of shape (n_alphas,)
        The grid that was searched.
    cv_scores_ : ndarray of shape (n_elements, n_alphas)
        Selection criterion for every element and penalty.
    r2_ : ndarray of shape (n_elements,)
        Held-out R², variance-weighted over units (``sklearn.metrics.r2_score``'s
        convention).  It estimates the population R² of the fitted map ``rho_`` (on fresh
        samples), which is below the population R² of the *best* linear map by the fit's
        own error: about ``(1 − R²)(n_units + 1) / (n_train − n_units − 2)`` for a
        least-squares fit on Gaussian latents, less with a well-chosen penalty, and large
        when ``n_units`` approaches ``n_train`` (see :mod:`probes._scoring` and
        ``docs/calibration.md`` for the measured bias).
    null_r2_ : ndarray of shape (n_elements,)
        Held-out R² of the same procedure on re-paired samples, the chance level for this
        ``(n_samples, n_units)`` and split: its expectation over re-pairings (``null=
        "expected"``) or the mean of ``n_null`` re-paired fits (``null="permutation"``);
        NaN when ``n_null == 0``.  Both are calibrated against the exact float64 re-paired
        fits in ``docs/calibration.md``.
    null_r2_samples_ : ndarray of shape (n_fits, n_elements)
        One row per re-paired fit (``n_fits = n_null`` with ``null="permutation"``, 0
        otherwise).
    null_permutations_ : ndarray of shape (n_fits, n_samples)
        The re-pairing of every null fit: target sample ``i`` got input ``perm[i]``.
    r2_ci_ : ndarray of shape (n_elements, 2)
        Interval at ``confidence`` for the population R² of the fitted map (the estimand of
        ``r2_``): a delta-method Student interval over the held-out samples
        (:func:`probes._scoring.r2_interval`), calibrated in ``docs/calibration.md``.  It is
        *not* an interval for the best linear map's R², which it misses when the fit's
        error is large.  Computed when ``n_bootstrap > 0`` (the interval is analytic; the
        count itself is not used), NaN otherwise.
    rank_ : int
        Dimension of the numerical span of the training inputs (:mod:`probes._span`): the
        maps are fitted on it and are zero on its orthogonal complement, where the data do not
        determine them (``rho_[identity]`` is the projector onto the span).
    components_ : ndarray of shape (rank, n_units)
        Orthonormal basis of that span (right singular vectors of the training inputs).
    train_index_, test_index_ : ndarray of int
        The split of the samples.

    Examples
    --------
    >>> import numpy as np
    >>> from probes import LinearProbe
    >>> rng = np.random.default_rng(0)
    >>> z = rng.normal(size=(200, 3))
    >>> Z = np.stack([z, -z])                  # C2 acting by negation
    >>> probe = LinearProbe(n_null=0, n_bootstrap=0).fit(Z)
    >>> bool(probe.r2_.min() > 0.999)
    True
    """

    n_null: int = 1
    null: str = "expected"
    identity: int = 0

    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        **RidgeProbeBase._parameter_constraints,
        "n_null": [Interval(Integral, 0, None, closed="left")],
        "null": [StrOptions({"expected", "permutation"})],
        "identity": [Interval(Integral, 0, None, closed="left")],
    }

    @property
    def rho_(self) -> np.ndarray:
        """The fitted maps, shape (n_elements, n_units, n_units): ``rho_[g] @ z`` predicts the
        (centred) latent of ``g·x``.  Formed on first read from the fit's factors
        (``components_ᵀ`` times the scaled projections: one product), then kept.

        Raises
        ------
        AttributeError
            Before ``fit`` (so ``hasattr(probe, "rho_")`` is False, as for every fitted
            attribute).
        """
        rho = self.__dict__.get("_rho_")
        if rho is None:
            factor = self.__dict__.get("_rho_factor_")
            if factor is None:
                raise AttributeError(f"{type(self).__name__} has no attribute 'rho_' before fit")
            Vt = torch.from_numpy(np.ascontiguousarray(self.components_))
            W = gemm(Vt.T, torch.from_numpy(factor)).numpy()  # (d_in, G·d_out)
            G = self.n_elements_
            rho = W.reshape(W.shape[0], G, -1).transpose(1, 2, 0)  # (G, d_out, d_in) view
            self.__dict__["_rho_"] = rho
            del self.__dict__["_rho_factor_"]
        return rho

    # ------------------------------------------------------------------ validation
    def _check_identity(self, n_elements: int) -> None:
        if not 0 <= self.identity < n_elements:
            raise ValueError(
                f"identity must be an element index in [0, {n_elements}), got {self.identity!r}"
            )

    def _alpha_grid(self, design: Design) -> torch.Tensor:
        return alpha_grid(self.alphas, design)

    # ------------------------------------------------------------------ fitting
    def fit(self, Z: Any, y: None = None) -> LinearProbe:
        """Fit rho(g) and b(g) for every element and score them on held-out samples.

        Parameters
        ----------
        Z : array-like or Tensor of shape (n_elements, n_samples, n_units)
            Orbit latents; ``Z[identity]`` are the untransformed inputs.
        y : None
            Ignored (scikit-learn signature).

        Returns
        -------
        self : LinearProbe
        """
        self._validate_params()
        eps = data_eps(Z, self.dtype)
        Z = as_orbit_tensor(Z, dtype=self.dtype, device=self.device)
        G, n, d = Z.shape
        self._check_identity(G)
        train, test = train_test_indices(n, self.test_size, self.random_state)
        rng = np.random.default_rng(self.random_state)
        tr = torch.as_tensor(train, device=Z.device)
        te = torch.as_tensor(test, device=Z.device)

        # Sample-major view (n, G, d): gathering samples gives one contiguous block whose
        # reshape to (n, G·d) is free, so every element is regressed by the same GEMM.
        Zs = Z.permute(1, 0, 2)
        # The fit lives on the numerical span of the training inputs (probes._span): the
        # directions below the tolerance are round-off of the data, not latents.
        tol = rank_tolerance(self.rank_tol, len(train), d, eps)
        # (n_train, G, d): the fit's one large fresh buffer; the identity's slice of it is
        # the training inputs.
        Y = large_empty((len(train), G, d), Z.dtype, Z.device)
        torch.index_select(Zs, 0, tr, out=Y)
        design = truncate_design(fit_design(Y[:, self.identity]), tol)
        alphas = self._alpha_grid(design)
        # The maps rho(g) = Vᵀ diag(gain) B are not formed here (a (d × rank) @ (rank × G·d)
        # product): the held-out predictions come from the rotated inputs X Vᵀ and the scaled
        # projections, and ``rho_`` is formed from those factors when it is first read.
        DB, bias, alpha_idx, scores = self._fit_targets(design, Y, alphas, inputs=self.identity)
        # The training targets are spent: their memory holds the held-out blocks below.
        work = Workspace(Y)
        del Y
        X_test = Z[self.identity, te]
        XV = gemm(X_test, design.Vt.T)  # (n_test, rank): held-out inputs in the singular basis
        Y_test = work.gather(Z, 1, te, Z.dtype)  # (G, n_test, d)
        Y_hat = self._predict_projected(XV, DB, bias, out=work.take((len(test), G * d), Z.dtype))
        confidence = self.confidence if self.n_bootstrap else None
        constant = torch.zeros(G, dtype=torch.bool, device=Z.device)
        if self.n_null and self.null == "expected":
            lo, hi = torch.aminmax(Y_test, dim=1)
            constant = (lo == hi).all(dim=1)  # (G,): no variance to re-pair
        r2, ci = r2_and_interval(Y_test, Y_hat, confidence, overwrite=True)
        del Y_hat, Y_test

        null, perms = [], []
        null_r2 = torch.full((G,), float("nan"), dtype=Z.dtype, device=Z.device)
        if self.n_null and self.null == "expected":
            rotated = XV - design.mean @ design.Vt.T  # centred by the training mean
            null_r2 = expected_null_r2(
                design, X_test, alphas, self.criterion, n, rotated=rotated
            ).expand(G)
            # Constant held-out targets score by r2_from_sums' convention (the variance the
            # closed form divides by is 0): re-pairing them changes nothing, so the chance
            # level is the fit's own score.
            null_r2 = torch.where(constant, r2, null_r2)
        if self.n_null and self.null == "permutation":
            design_n, X_n, alphas_n = null_precision(design, X_test, alphas)
            XVn = X_n @ design_n.Vt.T  # rotated test inputs, shared by the null fits
            del X_n
        for _ in range(self.n_null if self.null == "permutation" else 0):
            # Re-pair: every target sample gets the input of another sample.  The inputs (and
            # so the decomposition) are unchanged; only the targets move.  The null needs no
            # weights: predictions come from the rotated inputs and the scaled projections.
            perm_np = rng.permutation(n)
            perms.append(perm_np)
            perm = torch.as_tensor(perm_np, device=Z.device)
            work.reset()
            Yn = work.gather(Zs, 0, perm[tr], XVn.dtype)  # (n_train, G, d), the null's dtype
            DBp, bp, _, _ = self._fit_targets(design_n, Yn, alphas_n)
            del Yn
            Yp = work.gather(Z, 1, perm[te], XVn.dtype)  # (G, n_test, d)
            Yp_hat = self._predict_projected(
                XVn, DBp, bp, out=work.take((len(test), G * d), XVn.dtype)
            )
            # Both operands are scratch: the scoring may overwrite them.
            r2p, _ = r2_and_interval(Yp, Yp_hat, None, overwrite=True)
            null.append(r2p.to(Z.dtype))
            del DBp, Yp_hat, Yp
        del work

        # rho_'s factors: the scaled projections in their (rank, G·d) layout (a view of the
        # fit's buffer), with components_ below.
        self.__dict__.pop("_rho_", None)
        self._rho_factor_ = DB.permute(1, 0, 2).reshape(DB.shape[1], G * d).cpu().numpy()
        self.bias_ = bias.cpu().numpy()
        self.alphas_ = alphas.cpu().numpy()
        self.alpha_ = self.alphas_[alpha_idx.cpu().numpy()]
        self.cv_scores_ = scores.cpu().numpy()
        self.r2_ = r2.cpu().numpy()
        self.r2_ci_ = ci.cpu().numpy()
        if null:
            self.null_r2_samples_ = torch.stack(null).cpu().numpy()
            self.null_r2_ = self.null_r2_samples_.mean(axis=0)
        else:
            self.null_r2_samples_ = np.empty((0, G))
            self.null_r2_ = null_r2.cpu().numpy().copy()
        self.null_permutations_ = np.array(perms, dtype=np.int64).reshape(len(perms), n)
        self.train_index_, self.test_index_ = train, test
        self.rank_ = int(design.s.numel())
        self.components_ = design.Vt.cpu().numpy()
        self.n_features_in_ = d
        self.n_elements_ = G
        return self

    def _fit_targets(
        self,
        design: Design,
        Y: torch.Tensor,
        alphas: torch.Tensor,
        inputs: int | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Ridge fits for targets ``Y`` of shape (n_train, G, d), a fresh copy (centred here).

        ``inputs``: the element whose targets are the design's own inputs (the identity of a
        real fit): its projection ``Uᵀ Xc = diag(s) Vᵀ`` is known and left out of the GEMM.
        Returns the projections scaled by the chosen gain ``diag(s/(s²+α)) B`` (G, rank, d;
        the maps are ``Vᵀ`` times them, formed by :attr:`rho_` when read), the bias, the
        chosen penalty indices and the criterion scores.
        """
        n, G, d = Y.shape
        # Column means as one GEMV (a third of the time of a strided reduction over dim 0).
        ones = torch.full((n,), 1.0 / n, dtype=Y.dtype, device=Y.device)
        y_mean = torch.mv(Y.view(n, G * d).T, ones).view(G, d)
        Y -= y_mean  # in place: Y is the caller's gathered copy
        r = design.s.numel()
        U = design.U
        # Rank-major layout (rank, G, d): the projection GEMM writes it, and rho_ and the
        # predictions read it as one (rank, G·d) matrix (one GEMM each, no permuted copies);
        # the (G, rank, d) tensors handed on are views of it.
        if inputs is None:
            # One GEMM for all elements: (rank, n) @ (n, G·d).
            Bt = large_empty((r, G, d), Y.dtype, Y.device)
            gemm(U.T, Y.reshape(n, G * d), out=Bt.view(r, G * d))
        else:
            Bt = large_empty((r, G, d), Y.dtype, Y.device)
            Bt[:, inputs] = design.s[:, None] * design.Vt
            others = [g for g in range(G) if g != inputs]
            if others and inputs == 0:
                # Views with a row stride of G·d on both sides: the GEMM reads the targets of
                # elements 1.. and writes their projections in place, no copies.
                gemm(U.T, Y[:, 1:].reshape(n, (G - 1) * d), out=Bt.view(r, G * d)[:, d:])
            elif others:
                Bo = gemm(U.T, Y[:, others].reshape(n, (G - 1) * d))
                Bt[:, others] = Bo.reshape(r, G - 1, d)
                del Bo
        B = Bt.permute(1, 0, 2)  # (G, r, d) view
        best, scores = select_alpha(
            design, Y.permute(1, 0, 2), B, alphas, self.criterion, inputs=inputs
        )
        s = design.s
        alpha = alphas[best]
        gain = s[:, None] / (s[:, None] ** 2 + alpha[None, :])  # (r, G)
        Bt *= gain[:, :, None]  # in place: Bt becomes diag(gain) B in the (r, G, d) layout
        DBt = Bt.reshape(r, G * d)
        del B
        # bias = ȳ − x̄ᵀ W with x̄ᵀ W = (x̄ᵀ V) diag(gain) B: no W needed.
        bias = y_mean - ((design.Vt @ design.mean) @ DBt).reshape(G, d)
        DB = Bt.permute(1, 0, 2)  # (G, r, d) view of the scaled projections
        return DB, bias, best, scores

    @staticmethod
    def _predict(
        X: torch.Tensor, W: torch.Tensor, bias: torch.Tensor, out: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``X @ W[g] + bias[g]`` for every element, as one GEMM: shape (G, n, d_out).

        ``out``: optional contiguous (n, G·d_out) buffer the result is written into.
        """
        G, d_in, d_out = W.shape
        # addmm adds the bias in the GEMM's own pass (no second (n, G·d_out) temporary).
        # W.permute(1, 0, 2) is free when W is a view of a (d_in, G, d_out) block.
        flat = gemm(
            X,
            W.permute(1, 0, 2).reshape(d_in, G * d_out),
            out=out,
            bias=bias.reshape(1, G * d_out),
        )  # (n, G·d_out)
        return flat.reshape(X.shape[0], G, d_out).permute(1, 0, 2)

    @staticmethod
    def _predict_projected(
        XV: torch.Tensor, DB: torch.Tensor, bias: torch.Tensor, out: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Predictions from rotated inputs ``XV = X Vᵀᵀ`` (n, rank) and ``DB`` (G, rank, d).

        ``out``: optional contiguous (n, G·d) buffer the result is written into.
        """
        G, r, d = DB.shape
        flat = gemm(XV, DB.permute(1, 0, 2).reshape(r, G * d), out=out, bias=bias.reshape(1, G * d))
        return flat.reshape(XV.shape[0], G, d).permute(1, 0, 2)

    # ------------------------------------------------------------------ use
    def predict(self, Z: Any) -> np.ndarray:
        """Predict every element's latents from ``Z[identity]``.

        Parameters
        ----------
        Z : array-like of shape (n_elements, n_samples, n_units) or (n_samples, n_units)
            Orbit latents (only ``Z[identity]`` is used) or the untransformed latents alone.

        Returns
        -------
        ndarray of shape (n_elements, n_samples, n_units)
        """
        self._check_fitted()
        X = self._inputs(Z)
        W = torch.as_tensor(self.rho_, dtype=X.dtype, device=X.device).transpose(1, 2)
        bias = torch.as_tensor(self.bias_, dtype=X.dtype, device=X.device)
        return self._predict(X, W, bias).cpu().numpy()

    def _inputs(self, Z: Any) -> torch.Tensor:
        if getattr(Z, "ndim", None) == 2:
            Z = Z[None]
            t = as_orbit_tensor(Z, dtype=self.dtype, device=self.device)[0]
        else:
            t = as_orbit_tensor(Z, dtype=self.dtype, device=self.device)
            self._check_elements(t.shape[0])
            t = t[self.identity]
        if t.shape[1] != self.n_features_in_:
            raise ValueError(
                f"Z has {t.shape[1]} units but the probe was fitted on {self.n_features_in_}"
            )
        return t

    def _check_elements(self, G: int) -> None:
        if G != self.n_elements_:
            raise ValueError(
                f"Z has {G} elements along axis 0 but the probe was fitted on {self.n_elements_}"
            )

    def score_elements(self, Z: Any) -> np.ndarray:
        """Variance-weighted R² per element of the fitted maps on new orbit latents.

        Parameters
        ----------
        Z : array-like of shape (n_elements, n_samples, n_units)

        Returns
        -------
        ndarray of shape (n_elements,)
        """
        self._check_fitted()
        t = as_orbit_tensor(Z, dtype=self.dtype, device=self.device, min_samples=2)
        self._check_elements(t.shape[0])
        if t.shape[2] != self.n_features_in_:
            raise ValueError(
                f"Z has {t.shape[2]} units but the probe was fitted on {self.n_features_in_}"
            )
        W = torch.as_tensor(self.rho_, dtype=t.dtype, device=t.device).transpose(1, 2)
        bias = torch.as_tensor(self.bias_, dtype=t.dtype, device=t.device)
        return variance_weighted_r2(t, self._predict(t[self.identity], W, bias)).cpu().numpy()

    def score(self, Z: Any, y: None = None) -> float:
        """Mean R² of the fitted maps on new orbit latents over the non-identity elements.

        The one number scikit-learn's model selection maximises (``GridSearchCV``,
        ``cross_val_score``); per element see :meth:`score_elements`.

        Parameters
        ----------
        Z : array-like of shape (n_elements, n_samples, n_units)
            Latents of samples not used in the fit (e.g. ``Z[:, test_index_]``).
        y : None
            Ignored (scikit-learn signature).

        Returns
        -------
        float
        """
        return self._mean_r2(self.score_elements(Z), self.identity)

    @property
    def excess_r2_(self) -> np.ndarray:
        """Held-out R² above the re-paired (chance) level, per element."""
        self._check_fitted()
        return self.r2_ - self.null_r2_
