"""Orthogonal probe: whiten to rank k, then orthogonal Procrustes per element."""

from __future__ import annotations

from dataclasses import dataclass
from numbers import Integral
from typing import Any, ClassVar

import numpy as np
import torch

from probes._base import Interval, ProbeBase
from probes._scoring import r2_and_interval, variance_weighted_r2
from probes._span import data_eps, numerical_span, rank_tolerance
from probes._validation import as_orbit_tensor, train_test_indices

__all__ = ["OrthogonalProbe"]


@dataclass(eq=False, repr=False)
class OrthogonalProbe(ProbeBase):
    """Fit ``rho(g) ∈ O(k)`` on the top-k whitened principal components.

    The untransformed latents ``Z[identity]`` of the training samples define a PCA basis
    ``W`` (n_units × k) with eigenvalues ``λ``; every element's latents are mapped to
    ``w = Λ^{-1/2} Wᵀ (z − μ_g)`` (``μ_g`` that element's training mean) and ``rho(g)`` solves
    the orthogonal Procrustes problem ``min_{R ∈ O(k)} Σ_i ‖w_g,i − R w_e,i‖²``.  When the probe
    distribution is closed under the group, any linear representation becomes orthogonal in
    these coordinates, so the orthogonal constraint costs nothing on equivariant layers and
    regularises everything else.

    Parameters
    ----------
    rank : int, optional
        Number of principal components kept (``k``); the only positional parameter.  Default:
        the numerical rank of the centred training inputs (:mod:`probes._span`), i.e. the
        whole span the data identify.  A ``rank`` above it raises (the extra components
        would be round-off, and whitening would divide by it).
    identity : int, default 0
        Index of the identity element along axis 0 of ``Z``.
    test_size, random_state, device, dtype, n_bootstrap, confidence, rank_tol :
        Split, seed, placement, bootstrap, see :class:`probes._base.ProbeBase`
        (keyword-only).

    Attributes
    ----------
    rho_ : ndarray of shape (n_elements, rank, rank)
        Orthogonal matrices (``rho_[g] @ rho_[g].T == I`` to round-off).
    components_ : ndarray of shape (rank, n_units)
        PCA directions of the training inputs.
    explained_variance_ : ndarray of shape (rank,)
    mean_ : ndarray of shape (n_elements, n_units)
        Training mean of every element.
    r2_ : ndarray of shape (n_elements,)
        Held-out R² in the whitened coordinates (each kept component weighs the same).  It
        estimates the population R² of the fitted map (the whitening, the training means and
        ``rho_`` held fixed, fresh samples), not the best orthogonal map's; see
        :mod:`probes._scoring` for its bias.
    r2_ci_ : ndarray of shape (n_elements, 2)
        Interval at ``confidence`` for the population R² of the fitted map (the estimand of
        ``r2_``): a delta-method Student interval over the held-out samples
        (:func:`probes._scoring.r2_interval`), calibrated in ``docs/calibration.md``.
        Computed when ``n_bootstrap > 0`` (the interval is analytic; the count itself is not
        used), NaN otherwise.
    rank_ : int
        The number of components used (``rank``, or the numerical rank by default).
    """

    rank: int | None = None
    identity: int = 0

    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        **ProbeBase._parameter_constraints,
        "rank": [Interval(Integral, 1, None, closed="left"), None],
        "identity": [Interval(Integral, 0, None, closed="left")],
    }

    def fit(self, Z: Any, y: None = None) -> OrthogonalProbe:
        """Whiten, fit one Procrustes rotation per element and score held out.

        Parameters
        ----------
        Z : array-like or Tensor of shape (n_elements, n_samples, n_units)

        y : None
            Ignored (scikit-learn signature).

        Returns
        -------
        self : OrthogonalProbe
        """
        self._validate_params()
        eps = data_eps(Z, self.dtype)
        Zt = as_orbit_tensor(Z, dtype=self.dtype, device=self.device)
        G, n, d = Zt.shape
        if not 0 <= self.identity < G:
            raise ValueError(f"identity must be an index in [0, {G}), got {self.identity!r}")
        train, test = train_test_indices(n, self.test_size, self.random_state)
        if self.rank is not None and self.rank > min(d, len(train) - 1):
            raise ValueError(
                f"rank={self.rank!r} exceeds what {len(train)} training samples of {d} units "
                f"can whiten (at most {min(d, len(train) - 1)})"
            )
        tr = torch.as_tensor(train, device=Zt.device)
        te = torch.as_tensor(test, device=Zt.device)
        mean = Zt[:, tr].mean(dim=1)  # (G, d)
        Xc = Zt[self.identity, tr] - mean[self.identity]
        span = numerical_span(Xc, rank_tolerance(self.rank_tol, len(train), d, eps))
        k = span.rank if self.rank is None else self.rank
        if self.rank is not None and k > span.rank:
            raise ValueError(
                f"the inputs have numerical rank {span.rank} (tolerance {span.tol:.2e} of the "
                f"largest singular value), below rank={k!r}; choose a smaller rank or None"
            )
        if k == 0:
            raise ValueError(
                "the untransformed training latents are constant (numerical rank 0): there is "
                "nothing to whiten"
            )
        eig = span.singular_values[:k] ** 2 / (len(train) - 1)
        P = span.basis[:, :k] / eig.sqrt()  # (d, k): z ↦ Λ^{-1/2} Wᵀ z

        def whiten(idx: torch.Tensor) -> torch.Tensor:
            return (Zt[:, idx] - mean[:, None, :]) @ P  # (G, m, k)

        Wtr = whiten(tr)
        # Procrustes: R = U Vᵀ from the SVD of the cross-covariance Σ_i w_g,i w_e,iᵀ.
        M = Wtr.transpose(1, 2) @ Wtr[self.identity]  # (G, k, k)
        U, _, Vh = torch.linalg.svd(M)
        R = U @ Vh
        Wte = whiten(te)
        Y_hat = Wte[self.identity] @ R.transpose(1, 2)  # rows: (R w)ᵀ = wᵀ Rᵀ
        self.rho_ = R.cpu().numpy()
        self.components_ = span.basis[:, :k].T.cpu().numpy()
        self.rank_ = k
        self.explained_variance_ = eig.cpu().numpy()
        self.mean_ = mean.cpu().numpy()
        r2, ci = r2_and_interval(Wte, Y_hat, self.confidence if self.n_bootstrap else None)
        self.r2_, self.r2_ci_ = r2.cpu().numpy(), ci.cpu().numpy()
        self.train_index_, self.test_index_ = train, test
        return self

    def score(self, Z: Any, y: None = None) -> float:
        """Mean R² over the non-identity elements of the fitted rotations on new samples.

        ``Z`` is whitened with the fitted components, eigenvalues and per-element training
        means, and scored in the whitened coordinates as ``r2_`` is.

        Parameters
        ----------
        Z : array-like of shape (n_elements, n_samples, n_units)
        y : None
            Ignored (scikit-learn signature).

        Returns
        -------
        float
        """
        self._check_fitted()
        t = as_orbit_tensor(Z, dtype=self.dtype, device=self.device, min_samples=2)
        G = self.rho_.shape[0]
        d = self.components_.shape[1]
        if t.shape[0] != G or t.shape[2] != d:
            raise ValueError(
                f"Z must have shape ({G}, n_samples, {d}) like the fit, got {tuple(t.shape)}"
            )
        P = torch.as_tensor(
            self.components_.T / np.sqrt(self.explained_variance_), dtype=t.dtype
        ).to(t.device)
        mean = torch.as_tensor(self.mean_, dtype=t.dtype, device=t.device)
        W = (t - mean[:, None, :]) @ P  # (G, m, k)
        R = torch.as_tensor(self.rho_, dtype=t.dtype, device=t.device)
        Y_hat = W[self.identity] @ R.transpose(1, 2)
        return self._mean_r2(variance_weighted_r2(W, Y_hat).cpu().numpy(), self.identity)
