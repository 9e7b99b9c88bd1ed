"""Lie-algebra probe: one generator per basis element, and the bracket law they must obey.

For a Lie group acting on inputs with Lie algebra basis ``X_1..X_k`` (e.g. so(3):
``X_x, X_y, X_z``), a layer that carries a representation ``ρ`` satisfies
``z(exp(A)·x) = expm(dρ(A)) z(x)`` with ``dρ`` linear, ``dρ(Σ a_i X_i) = Σ a_i L_i``, and the
``L_i`` obey the algebra's bracket: ``[L_i, L_j] = Σ_k c_ijk L_k`` with the structure constants
of the basis (so(3): ``[L_x, L_y] = L_z`` and cyclic).  :class:`LieAlgebraProbe` fits the
``L_i`` from stored latents of elements near the identity (e.g. small rotations about three
axes), scores them on held-out samples, and :func:`bracket_law` checks the bracket.  A layer
can be linearly equivariant along each one-parameter subgroup separately and still fail the
bracket: then its maps do not come from one representation of the group.

The bases live in :mod:`probes._lie_basis`, the law in :mod:`probes._lie_bracket`, the
two-stage fit (shared with :class:`~probes.GeneratorProbe`) in :mod:`probes._generator_fit`.
"""

from __future__ import annotations

from dataclasses import dataclass
from numbers import Integral, Real
from typing import Any, ClassVar

import numpy as np
import torch

from probes._base import Interval, RidgeProbeBase, StrOptions
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
from probes._lie_basis import (
    coordinates,
    lie_algebra_basis,
    one_parameter_elements,
    structure_constants,
)
from probes._lie_bracket import BracketLawCheck, bracket_law, undetermined_check
from probes._scoring import r2_and_interval
from probes._span import data_eps
from probes._validation import as_orbit_tensor, train_test_indices

__all__ = [
    "BracketLawCheck",
    "LieAlgebraProbe",
    "bracket_law",
    "lie_algebra_basis",
    "one_parameter_elements",
    "structure_constants",
]


@dataclass(eq=False, repr=False)
class LieAlgebraProbe(RidgeProbeBase):
    """Fit one generator ``L_i`` per Lie-algebra basis element from orbit latents.

    Model: ``z(exp(Σ_i a_i X_i)·x) ≈ expm(Σ_i a_i L_i) z(x)`` (latents centred per element
    with their training means), the Lie-algebra version of :class:`GeneratorProbe`.  Two
    stages, as there: (1) for the elements near the identity (``‖a‖ <= small_t``) ridge maps
    ``ρ(g)`` are fitted and the ``L_i`` solve the linear least-squares problem
    ``Σ_i a_gi L_i ≈ log ρ(g)`` over those elements (the principal logarithm is unambiguous
    near the identity; the small elements must span every basis direction; if that estimate
    explains the training latents worse than ``L = 0``, stage (2) starts from 0); (2) the ``L_i``
    are refined on all training elements by L-BFGS on
    ``Σ_g ‖Zc_g − Zc_e expm(Σ a_gi L_i)ᵀ‖² / Σ_g ‖Zc_g‖²`` through ``torch.linalg.matrix_exp``.
    Both stages work on the numerical span of the untransformed training latents
    (:mod:`probes._span`; its dimension is ``rank_``): off it the data do not determine the
    generators, and arbitrary off-span blocks would decide the bracket law (they change
    ``expm`` on the span through its higher-order terms), so the generators are fitted in the
    span's coordinates and are zero off it; the bracket law is checked there.  Scores are
    held-out R² per element (never in-sample: with ``n_units >= n_samples`` a linear fit
    explains anything in-sample).  With ``estimate_spread`` the whole fit is
    repeated on two disjoint halves of the training samples; the relative disagreement of
    the two sets of generators sets the tolerance of :meth:`bracket_check`.

    Parameters
    ----------
    basis : {"so3", "so2"} or array-like of shape (k, m, m)
        The Lie algebra basis the elements are expressed in (see :func:`lie_algebra_basis`).
    small_t : float
        Largest ``‖a‖`` (radians for rotations) of the elements used in stage (1).
    refine : bool
        Run stage (2).
    max_iter : int
        L-BFGS iterations of stage (2) (at least 1).
    estimate_spread : bool
        Fit the two half-sample generator sets behind ``spread_``.
    alphas, criterion :
        Penalty grid and selection of the stage (1) ridge maps, see
        :class:`probes._base.RidgeProbeBase`.
    test_size, random_state, device, dtype, n_bootstrap, confidence, rank_tol :
        See :class:`probes._base.ProbeBase`.

    Attributes
    ----------
    generators_ : ndarray of shape (k, n_units, n_units)
        The fitted ``L_i``: ``Q L_i^Q Qᵀ`` with ``Q = components_ᵀ`` (zero off the span).  NaN,
        with a warning, when the latents do not vary (``rank_ == 0``).
    generators_init_ : ndarray of shape (k, n_units, n_units)
        Stage (1) estimate.
    generator_names_ : tuple of str
    coordinates_ : ndarray of shape (n_elements, k)
        Lie-algebra coordinates of the elements.
    r2_ : ndarray of shape (n_elements,)
        Held-out R² of ``expm(Σ a_i L_i)`` per element (with the training means).  It
        estimates the population R² of the fitted map on fresh samples, not the best
        generators'; see :mod:`probes._scoring` for its bias.
    r2_ci_ : ndarray of shape (n_elements, 2)
        Interval at ``confidence`` for the population R² of the fitted map (the estimand of
        ``r2_``): a delta-method Student interval over the held-out samples
        (:func:`probes._scoring.r2_interval`), calibrated in ``docs/calibration.md``.
        Computed when ``n_bootstrap > 0`` (the interval is analytic; the count itself is not
        used), NaN otherwise (and when ``rank_ == 0``).
    loss_ : float
        Relative training loss after the fit.
    spread_ : float
        ``max_i ‖L_i^A − L_i^B‖_F / (‖L_i^A‖_F + ‖L_i^B‖_F)`` over the two half-sample fits
        (a relative error scale); NaN without ``estimate_spread``.
    generator_errors_ : ndarray of shape (k, n_units, n_units) or None
        ``L^A − L^B``, the error realisation behind :meth:`bracket_check`'s tolerance; None
        without ``estimate_spread``.
    structure_constants_ : ndarray of shape (k, k, k)
    rank_ : int
        Dimension of the numerical span the generators were fitted on.
    components_ : ndarray of shape (rank, n_units)
        Orthonormal basis of that span.
    mean_ : ndarray of shape (n_elements, n_units)
        Training mean of every element's latents.
    train_index_, test_index_ : ndarray of int

    References
    ----------
    Gruver et al., "The Lie derivative for measuring learned equivariance", ICLR 2023 (Lie
    derivatives of networks); Hall, *Lie Groups, Lie Algebras, and Representations*, §3-4
    (``ρ(exp A) = expm(dρ(A))`` and the bracket of the differential).

    Examples
    --------
    >>> import numpy as np
    >>> from probes import LieAlgebraProbe, one_parameter_elements
    >>> R, a = one_parameter_elements("so3", [0.05, -0.05, 0.1, 0.5])
    >>> x = np.random.default_rng(0).normal(size=(100, 3))
    >>> Z = np.einsum("gij,nj->gni", R, x)     # vectors: the defining representation
    >>> probe = LieAlgebraProbe(n_bootstrap=0).fit(Z, R)
    >>> bool(probe.bracket_check().holds and probe.r2_.min() > 0.999)
    True
    """

    basis: Any = "so3"
    small_t: float = 0.2
    refine: bool = True
    max_iter: int = 200
    estimate_spread: bool = True

    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        **RidgeProbeBase._parameter_constraints,
        "basis": [StrOptions({"so3", "so2"}), "array-like"],
        "small_t": [Interval(Real, 0, None, closed="neither")],
        "refine": ["boolean"],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "estimate_spread": ["boolean"],
    }

    def fit(self, Z: Any, elements: Any, y: None = None) -> LieAlgebraProbe:
        """Fit the generators from orbit latents.

        Parameters
        ----------
        Z : array-like or Tensor of shape (n_elements, n_samples, n_units)
            ``Z[g]`` the latents of the inputs moved by element ``g``.
        elements : array-like of shape (n_elements, m, m) or (n_elements, k)
            The elements as group matrices (their principal logarithms give the coordinates;
            e.g. ``Run.element_values`` of a rotation orbit) or directly as Lie-algebra
            coordinates.  Exactly one must be the identity (all coordinates zero).
        y : None
            Ignored (scikit-learn signature).

        Returns
        -------
        self

        Raises
        ------
        ValueError
            Shapes that disagree, no or several identities, no element near the identity
            along some basis direction, elements outside the group the basis spans.
        """
        self._validate_params()
        B, names = lie_algebra_basis(self.basis)
        eps = data_eps(Z, self.dtype)
        Zt = as_orbit_tensor(Z, dtype=self.dtype, device=self.device)
        a = coordinates(elements, B)
        if a.shape[0] != Zt.shape[0]:
            raise ValueError(
                f"elements must give one element per row of Z ({Zt.shape[0]}), got {a.shape[0]}"
            )
        size = np.linalg.norm(a, axis=1)
        zero = np.flatnonzero(size == 0)
        if zero.size != 1:
            raise ValueError(
                f"elements must contain exactly one identity (zero coordinates), found {zero.size}"
            )
        small = np.flatnonzero((size > 0) & (size <= self.small_t))
        if small.size == 0 or np.linalg.matrix_rank(a[small]) < B.shape[0]:
            raise ValueError(
                f"the elements with 0 < |a| <= small_t={self.small_t!r} must span all "
                f"{B.shape[0]} basis directions (got {small.size} such elements); record small "
                "transformations along every generator (see one_parameter_elements)"
            )
        e = int(zero[0])
        k, G, d = B.shape[0], Zt.shape[0], Zt.shape[2]
        train, test = train_test_indices(Zt.shape[1], self.test_size, self.random_state)
        tr = torch.as_tensor(train, device=Zt.device)
        span = identity_span(Zt, tr, e, self.rank_tol, eps)
        A = torch.as_tensor(a, dtype=Zt.dtype, device=Zt.device)
        self.generator_names_ = names
        self.coordinates_ = a
        self.structure_constants_ = structure_constants(B)
        self.train_index_, self.test_index_ = train, test
        self.n_features_in_ = d
        self.rank_ = span.rank
        self.components_ = span.basis.T.cpu().numpy()
        self.spread_ = float("nan")
        self.generator_errors_: np.ndarray | None = None
        if span.rank == 0:
            warn_rank_zero("the generators, their bracket law and the held-out R²")
            self.generators_ = np.full((k, d, d), np.nan)
            self.generators_init_ = self.generators_.copy()
            self.mean_ = Zt[:, tr].mean(dim=1).cpu().numpy()
            self.loss_ = float("nan")
            self.r2_ = np.full(G, np.nan)
            self.r2_ci_ = np.full((G, 2), np.nan)
            return self

        def fit_on(idx: np.ndarray) -> Any:
            return fit_generators(
                Zt,
                torch.as_tensor(idx, device=Zt.device),
                A,
                e,
                small,
                span,
                alphas=self.alphas,
                criterion=self.criterion,
                refine=self.refine,
                max_iter=self.max_iter,
            )

        fit = fit_on(train)
        if self.estimate_spread:
            # Both halves on the same span: their difference is an error of the same
            # generators, in the same coordinates.
            half = len(train) // 2
            LA, LB = (fit_on(idx).L for idx in (train[:half], train[half:]))
            num = torch.linalg.matrix_norm(LA - LB)
            den = torch.linalg.matrix_norm(LA) + torch.linalg.matrix_norm(LB)
            rel = torch.where(den > 0, num / torch.where(den > 0, den, 1.0), 0.0)
            self.spread_ = float(rel.max())
            self.generator_errors_ = embed(LA - LB, span).cpu().numpy()

        te = torch.as_tensor(test, device=Zt.device)
        Y_hat = predict_on_span(Zt[e, te], fit.mean, A, fit.L, e, span)
        Y_te = Zt[:, te]
        self.generators_ = embed(fit.L, span).cpu().numpy()
        self.generators_init_ = embed(fit.L0, span).cpu().numpy()
        self.mean_ = fit.mean[:, 0].cpu().numpy()
        self.loss_ = fit.loss
        r2, ci = r2_and_interval(Y_te, Y_hat, self.confidence if self.n_bootstrap else None)
        self.r2_, self.r2_ci_ = r2.cpu().numpy(), ci.cpu().numpy()
        return self

    def _identity(self) -> int:
        return int(np.flatnonzero(np.linalg.norm(self.coordinates_, axis=1) == 0)[0])

    def bracket_check(self, tol: float | None = None) -> BracketLawCheck:
        """The bracket law ``[L_i, L_j] = Σ_k c_ijk L_k`` of the fitted generators, on their span.

        The generators act on the span (``components_``) and vanish off it, so the law is
        checked on their ``rank_ × rank_`` blocks ``Qᵀ L_i Q`` (the embedding is an algebra
        homomorphism: ``[Q A Qᵀ, Q B Qᵀ] = Q [A, B] Qᵀ``, so the residuals are the same).

        Parameters
        ----------
        tol : float, optional
            Explicit tolerance on the relative residual; by default the first-order bound
            under ``generator_errors_`` (see :func:`bracket_law`).

        Returns
        -------
        BracketLawCheck
            With NaN residuals and ``holds=False`` (and a warning) when the latents did not
            vary and no generator was identified.
        """
        self._check_fitted()
        if self.rank_ == 0:
            return undetermined_check(
                self.basis, "the latents do not vary (rank 0): no generator is identified"
            )
        like = torch.zeros((), dtype=torch.float64)
        span = fitted_span(self.components_, like)

        def on_span(M: np.ndarray | None) -> np.ndarray | None:
            if M is None:
                return None
            return to_span(torch.as_tensor(M, dtype=torch.float64), span).numpy()

        return bracket_law(
            on_span(self.generators_), self.basis, tol, on_span(self.generator_errors_)
        )

    def rho(self, coordinates: Any) -> np.ndarray:
        """``Q expm(Σ a_i L_i^Q) Qᵀ`` for coordinates of shape (k,) or (n, k).

        The map on the fitted span (``components_``), zero on its orthogonal complement (the
        identity map's restriction when the span is every unit).
        """
        self._check_fitted()
        a = torch.as_tensor(np.asarray(coordinates, dtype=np.float64))
        if self.rank_ == 0:
            d = self.n_features_in_
            return np.full((*a.shape[:-1], d, d), np.nan)
        span, L = self._fitted(a)
        E = torch.linalg.matrix_exp(torch.einsum("...i,iab->...ab", a, L))
        return embed(E, span).numpy()

    def _fitted(self, like: torch.Tensor) -> tuple[Any, torch.Tensor]:
        span = fitted_span(self.components_, like)
        L = torch.as_tensor(self.generators_, dtype=like.dtype, device=like.device)
        return span, to_span(L, span)

    def score(self, Z: Any, y: None = None) -> float:
        """Mean R² over the non-identity elements of the fitted maps on new samples.

        Parameters
        ----------
        Z : array-like of shape (n_elements, n_samples, n_units)
            Latents of new samples at the fitted elements (``coordinates_``).
        y : None
            Ignored (scikit-learn signature).

        Returns
        -------
        float
            NaN when the fit identified nothing (``rank_ == 0``).
        """
        return span_score(self, Z, lambda: (np.asarray(self.coordinates_), self._identity()))
