"""Orthogonal probe: whiten to rank k, then orthogonal Procrustes per element."""

from __future__ import annotations

from dataclasses import dataclass
from numbers import Integral
from typing import Any, ClassVar

import numpy as np
import torch
from sklearn.utils._param_validation import Interval

from probes._base import ProbeBase
from probes._scoring import bootstrap_r2, variance_weighted_r2
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
    rank : int
        Number of principal components kept (``k``); the only positional parameter.
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
        Held-out R² in the whitened coordinates (each kept component weighs the same).
    r2_ci_ : ndarray of shape (n_elements, 2)
    """

    rank: int
    identity: int = 0

    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        **ProbeBase._parameter_constraints,
        "rank": [Interval(Integral, 1, None, closed="left")],
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
        Zt = as_orbit_tensor(Z, dtype=self.dtype, device=self.device)
        G, n, d = Zt.shape
        k = self.rank
        if not 0 <= self.identity < G:
            raise ValueError(f"identity must be an index in [0, {G}), got {self.identity!r}")
        train, test = train_test_indices(n, self.test_size, self.random_state)
        if k > min(d, len(train) - 1):
            raise ValueError(
                f"rank={k!r} exceeds what {len(train)} training samples of {d} units can "
                f"whiten (at most {min(d, len(train) - 1)})"
            )
        tr = torch.as_tensor(train, device=Zt.device)
        te = torch.as_tensor(test, device=Zt.device)
        mean = Zt[:, tr].mean(dim=1)  # (G, d)
        Xc = Zt[self.identity, tr] - mean[self.identity]
        _, s, Vt = torch.linalg.svd(Xc, full_matrices=False)
        eig = s[:k] ** 2 / (len(train) - 1)
        if bool((eig <= torch.finfo(Zt.dtype).eps * eig[0]).any()):
            raise ValueError(
                f"the inputs have numerical rank below rank={k!r}; choose a smaller rank"
            )
        P = Vt[:k].T / eig.sqrt()  # (d, k): z ↦ Λ^{-1/2} Wᵀ z

        def whiten(idx: torch.Tensor) -> torch.Tensor:
            return (Zt[:, idx] - mean[:, None, :]) @ P  # (G, m, k)

        Wtr = whiten(tr)
        # Procrustes: R = U Vᵀ from the SVD of the cross-covariance Σ_i w_g,i w_e,iᵀ.
        M = Wtr.transpose(1, 2) @ Wtr[self.identity]  # (G, k, k)
        U, _, Vh = torch.linalg.svd(M)
        R = U @ Vh
        Wte = whiten(te)
        Y_hat = Wte[self.identity] @ R.transpose(1, 2)  # rows: (R w)ᵀ = wᵀ Rᵀ
        rng = np.random.default_rng(self.random_state)
        self.rho_ = R.cpu().numpy()
        self.components_ = Vt[:k].cpu().numpy()
        self.explained_variance_ = eig.cpu().numpy()
        self.mean_ = mean.cpu().numpy()
        self.r2_ = variance_weighted_r2(Wte, Y_hat).cpu().numpy()
        self.r2_ci_ = bootstrap_r2(Wte, Y_hat, self.n_bootstrap, self.confidence, rng).cpu().numpy()
        self.train_index_, self.test_index_ = train, test
        return self
