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
"""

from __future__ import annotations

import dataclasses
import warnings
from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator

from latentgeo._validate import check_choice, check_int, check_real
from probes._lie import lbfgs_minimize
from probes._ridge import default_alphas, fit_design, ridge_weights, select_alpha
from probes._scoring import bootstrap_r2, variance_weighted_r2
from probes._validation import as_orbit_tensor, train_test_indices

__all__ = [
    "BracketLawCheck",
    "LieAlgebraProbe",
    "bracket_law",
    "lie_algebra_basis",
    "one_parameter_elements",
    "structure_constants",
]

_COORD_ATOL = 1e-12


def lie_algebra_basis(basis: Any) -> tuple[np.ndarray, tuple[str, ...]]:
    """Resolve a Lie algebra basis to matrices and generator names.

    Parameters
    ----------
    basis : {"so3", "so2"} or array-like of shape (k, m, m)
        ``"so3"``: the standard so(3) basis ``(X_i)_{jk} = −ε_{ijk}`` (names ``L_x, L_y,
        L_z``, see :func:`latentgeo.actions.so3_basis`); ``"so2"``: ``[[0, −1], [1, 0]]``
        (name ``L``); otherwise ``k`` linearly independent square matrices (names ``L_0``...).

    Returns
    -------
    matrices : float64 ndarray of shape (k, m, m)
    names : tuple of str

    Raises
    ------
    ValueError
        Unknown name, wrong shape, non-finite or linearly dependent matrices.
    """
    if isinstance(basis, str):
        if basis == "so3":
            from latentgeo.actions import so3_basis

            return so3_basis(), ("L_x", "L_y", "L_z")
        if basis == "so2":
            return np.array([[[0.0, -1.0], [1.0, 0.0]]]), ("L",)
        raise ValueError(
            f"basis must be 'so3', 'so2' or an array of shape (k, m, m), got {basis!r}"
        )
    try:
        B = np.asarray(basis, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise TypeError(f"basis must be numeric of shape (k, m, m), got {basis!r}") from err
    if B.ndim != 3 or B.shape[1] != B.shape[2] or B.shape[0] < 1:
        raise ValueError(f"basis must have shape (k, m, m) with k >= 1, got {B.shape}")
    if not np.all(np.isfinite(B)):
        raise ValueError("basis must be finite")
    flat = B.reshape(B.shape[0], -1)
    if np.linalg.matrix_rank(flat) < B.shape[0]:
        raise ValueError(f"the {B.shape[0]} basis matrices are linearly dependent")
    return B, tuple(f"L_{i}" for i in range(B.shape[0]))


def structure_constants(basis: Any) -> np.ndarray:
    """Structure constants ``c[i, j, k]`` with ``[X_i, X_j] = Σ_k c[i, j, k] X_k``.

    Parameters
    ----------
    basis : {"so3", "so2"} or array-like of shape (k, m, m)

    Returns
    -------
    float64 ndarray of shape (k, k, k)

    Raises
    ------
    ValueError
        If the span of the basis is not closed under the commutator (not a Lie algebra).
    """
    B, _ = lie_algebra_basis(basis)
    k = B.shape[0]
    flat = B.reshape(k, -1).T  # (m², k)
    brackets = np.einsum("iab,jbc->ijac", B, B) - np.einsum("jab,ibc->ijac", B, B)
    target = brackets.reshape(k * k, -1).T  # (m², k²)
    coef, *_ = np.linalg.lstsq(flat, target, rcond=None)
    resid = float(np.linalg.norm(flat @ coef - target)) / max(float(np.linalg.norm(target)), 1.0)
    if resid > 1e-9:
        raise ValueError(
            f"the basis is not closed under the commutator (relative residual {resid:.2e}): "
            "its span is not a Lie algebra"
        )
    return coef.T.reshape(k, k, k)


def one_parameter_elements(basis: Any, ts: Any) -> tuple[np.ndarray, np.ndarray]:
    """Group elements ``exp(t X_i)`` for every basis element and parameter, identity first.

    Use them as the elements of an orbit (e.g. an action over chosen rotations) to record the
    latents :class:`LieAlgebraProbe` fits.

    Parameters
    ----------
    basis : {"so3", "so2"} or array-like of shape (k, m, m)
    ts : array-like of shape (n_t,)
        Non-zero parameters (radians for rotations).

    Returns
    -------
    elements : float64 ndarray of shape (1 + k * n_t, m, m)
        ``elements[0]`` is the identity, then ``exp(t X_0)`` for every ``t``, then ``X_1``...
    coordinates : float64 ndarray of shape (1 + k * n_t, k)
        The matching Lie-algebra coordinates (row 0 zero).
    """
    B, _ = lie_algebra_basis(basis)
    t = np.asarray(ts, dtype=np.float64).ravel()
    if t.size == 0 or not np.all(np.isfinite(t)) or np.any(t == 0):
        raise ValueError(f"ts must be finite and non-zero (0 is added as the identity), got {ts!r}")
    k = B.shape[0]
    coords = np.zeros((1 + k * t.size, k))
    for i in range(k):
        coords[1 + i * t.size : 1 + (i + 1) * t.size, i] = t
    A = torch.as_tensor(np.einsum("ni,iab->nab", coords, B))
    return torch.linalg.matrix_exp(A).numpy(), coords


def _coordinates(elements: Any, B: np.ndarray) -> np.ndarray:
    """Lie-algebra coordinates of each element: given directly (n, k) or by the principal
    logarithm of group matrices (n, m, m), projected on the basis."""
    k, m = B.shape[0], B.shape[1]
    arr = np.asarray(elements, dtype=np.float64)
    if not np.all(np.isfinite(arr)):
        raise ValueError("elements must be finite")
    if arr.ndim == 2:
        if arr.shape[1] != k:
            raise ValueError(
                f"coordinates must have shape (n_elements, {k}) for a basis of {k} elements, "
                f"got {arr.shape}"
            )
        return arr
    if arr.ndim != 3 or arr.shape[1:] != (m, m):
        raise ValueError(
            f"elements must be group matrices of shape (n_elements, {m}, {m}) or Lie-algebra "
            f"coordinates of shape (n_elements, {k}), got {arr.shape}"
        )
    from scipy.linalg import logm

    logs_c = np.stack([logm(g) for g in arr])
    bad_log = np.flatnonzero(
        ~np.all(np.isfinite(logs_c), axis=(1, 2))
        | (np.abs(np.imag(logs_c)).max(axis=(1, 2)) > 1e-8)
    )
    if bad_log.size:
        raise ValueError(
            f"elements {bad_log[:5].tolist()} have no real principal logarithm (e.g. a "
            "reflection, det < 0): they are not exponentials of a real Lie algebra"
        )
    logs = np.real(logs_c)
    flat = B.reshape(k, -1).T
    coef, *_ = np.linalg.lstsq(flat, logs.reshape(len(arr), -1).T, rcond=None)
    resid = np.linalg.norm(flat @ coef - logs.reshape(len(arr), -1).T, axis=0)
    bad = np.flatnonzero(resid > 1e-8 * np.maximum(1.0, np.linalg.norm(logs, axis=(1, 2))))
    if bad.size:
        raise ValueError(
            f"elements {bad[:5].tolist()} are not exponentials of the span of the basis "
            f"(log residual {resid[bad[0]]:.2e}); pass elements of the group the basis spans"
        )
    coef[np.abs(coef) < _COORD_ATOL] = 0.0
    return coef.T


@dataclasses.dataclass(frozen=True)
class BracketLawCheck:
    """Outcome of the bracket-law check ``[L_i, L_j] = Σ_k c_ijk L_k`` of fitted generators.

    The relative residual of a pair is ``‖[L_i, L_j] − Σ_k c_ijk L_k‖_F`` over
    ``‖[L_i, L_j]‖_F + ‖Σ_k c_ijk L_k‖_F`` (0 when both sides vanish): it lies in [0, 1],
    is 0 when the law holds and ~1 when the two sides are unrelated.  For generators scaled by
    ``s`` from a true representation it is ``|s − 1| / (s + 1)``.

    Attributes
    ----------
    pairs : tuple of (str, str)
        The checked pairs ``(L_i, L_j)``, ``i < j``.
    relative_residual : ndarray of shape (n_pairs,)
    max_relative_residual : float
    tolerance : ndarray of shape (n_pairs,)
        What each residual was compared with (see ``rule``).
    rule : str
        How ``tolerance`` was set.
    holds : bool
        ``relative_residual <= tolerance < 1`` for every pair.  The residual never exceeds 1,
        so a tolerance of 1 or more (generators too noisy to tell) cannot confirm the law and
        gives False.
    """

    pairs: tuple[tuple[str, str], ...]
    relative_residual: np.ndarray
    max_relative_residual: float
    tolerance: np.ndarray
    rule: str
    holds: bool


def bracket_law(
    generators: Any,
    basis: Any = "so3",
    tol: float | None = None,
    generator_errors: Any = None,
) -> BracketLawCheck:
    """Check ``[L_i, L_j] = Σ_k c_ijk L_k`` for fitted generators (one per basis element).

    Tolerance rule (when ``tol`` is None and ``generator_errors`` ``Δ_i`` are given): the
    residual that errors ``Δ`` in the generators would cause to first order,
    ``‖[Δ_i, L_j] + [L_i, Δ_j] − Σ_k c_ijk Δ_k‖_F / (‖[L_i, L_j]‖_F + ‖Σ_k c_ijk L_k‖_F)``,
    floored at ``√ε`` (float64).  :class:`LieAlgebraProbe` passes ``Δ = L^A − L^B``, the
    difference of the generators fitted on two disjoint halves of its training samples: its
    spread is about twice the error of the full fit (each half has √2 times the error, and the
    difference of two independent errors another √2), so the rule has a factor ~2 of headroom
    over the noise-induced residual.  It does not see systematic errors (e.g. attenuation
    from noisy inputs); those count as violations.  Without errors the rule is ``√ε`` (exact
    generators only).

    Parameters
    ----------
    generators : array-like of shape (k, d, d)
    basis : {"so3", "so2"} or array-like of shape (k, m, m)
        The basis the generators were fitted along (gives ``c_ijk``).
    tol : float, optional
        Explicit tolerance on the relative residual (all pairs).
    generator_errors : array-like of shape (k, d, d), optional
        A realisation of the generators' estimation error (e.g. a split-half difference).

    Returns
    -------
    BracketLawCheck

    Examples
    --------
    >>> from latentgeo.actions import so3_basis
    >>> bracket_law(so3_basis()).holds
    True
    >>> round(bracket_law(2 * so3_basis()).max_relative_residual, 12)  # |s - 1| / (s + 1)
    0.333333333333
    """
    B, names = lie_algebra_basis(basis)
    c = structure_constants(B)
    L = np.asarray(generators, dtype=np.float64)
    k = B.shape[0]
    if L.ndim != 3 or L.shape[0] != k or L.shape[1] != L.shape[2]:
        raise ValueError(f"generators must have shape ({k}, d, d) for this basis, got {L.shape}")
    if not np.all(np.isfinite(L)):
        raise ValueError("generators must be finite")
    floor = float(np.sqrt(np.finfo(np.float64).eps))
    if tol is not None:
        tol = check_real(tol, "tol", minimum=0)
        rule = "explicit tolerance"
    elif generator_errors is not None:
        err = np.asarray(generator_errors, dtype=np.float64)
        if err.shape != L.shape or not np.all(np.isfinite(err)):
            raise ValueError(
                f"generator_errors must be finite of the generators' shape {L.shape}, got "
                f"shape {err.shape}"
            )
        rule = (
            "max(sqrt(eps_float64), first-order residual of the split-half generator differences)"
        )
    else:
        rule = "sqrt(eps_float64) (no error estimate: exact generators)"
    pairs, res, tols = [], [], []
    for i in range(k):
        for j in range(i + 1, k):
            lhs = L[i] @ L[j] - L[j] @ L[i]
            rhs = np.einsum("k,kab->ab", c[i, j], L)
            den = np.linalg.norm(lhs) + np.linalg.norm(rhs)
            res.append(float(np.linalg.norm(lhs - rhs) / den) if den > 0 else 0.0)
            pairs.append((names[i], names[j]))
            if tol is not None:
                tols.append(float(tol))
            elif generator_errors is not None:
                pert = (
                    err[i] @ L[j]
                    - L[j] @ err[i]
                    + L[i] @ err[j]
                    - err[j] @ L[i]
                    - np.einsum("k,kab->ab", c[i, j], err)
                )
                num = np.linalg.norm(pert)
                t = num / den if den > 0 else (0.0 if num == 0 else np.inf)
                tols.append(max(floor, float(t)))
            else:
                tols.append(floor)
    res_arr, tol_arr = np.asarray(res), np.asarray(tols)
    return BracketLawCheck(
        pairs=tuple(pairs),
        relative_residual=res_arr,
        max_relative_residual=float(res_arr.max()) if res_arr.size else 0.0,
        tolerance=tol_arr,
        rule=rule,
        holds=bool(np.all((res_arr <= tol_arr) & (tol_arr < 1.0))),
    )


class LieAlgebraProbe(BaseEstimator):
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
    Scores are held-out R² per element (never in-sample: with ``n_units >= n_samples`` a
    linear fit explains anything in-sample).  With ``estimate_spread`` the whole fit is
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
        L-BFGS iterations of stage (2).
    estimate_spread : bool
        Fit the two half-sample generator sets behind ``spread_``.
    alphas, test_size, random_state, device, dtype, criterion, n_bootstrap, confidence :
        As for :class:`LinearProbe`.

    Attributes
    ----------
    generators_ : ndarray of shape (k, n_units, n_units)
        The fitted ``L_i``.
    generators_init_ : ndarray of shape (k, n_units, n_units)
        Stage (1) estimate.
    generator_names_ : tuple of str
    coordinates_ : ndarray of shape (n_elements, k)
        Lie-algebra coordinates of the elements.
    r2_ : ndarray of shape (n_elements,)
        Held-out R² of ``expm(Σ a_i L_i)`` per element.
    r2_ci_ : ndarray of shape (n_elements, 2)
    loss_ : float
        Relative training loss after the fit.
    spread_ : float
        ``max_i ‖L_i^A − L_i^B‖_F / (‖L_i^A‖_F + ‖L_i^B‖_F)`` over the two half-sample fits
        (a relative error scale); NaN without ``estimate_spread``.
    generator_errors_ : ndarray of shape (k, n_units, n_units) or None
        ``L^A − L^B``, the error realisation behind :meth:`bracket_check`'s tolerance; None
        without ``estimate_spread``.
    structure_constants_ : ndarray of shape (k, k, k)
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

    def __init__(
        self,
        basis: Any = "so3",
        small_t: float = 0.2,
        refine: bool = True,
        max_iter: int = 200,
        estimate_spread: bool = True,
        alphas: Any = None,
        test_size: float | int = 0.25,
        random_state: int | None = 0,
        device: Any = None,
        dtype: torch.dtype = torch.float64,
        criterion: str = "gcv",
        n_bootstrap: int = 200,
        confidence: float = 0.95,
    ) -> None:
        self.basis = basis
        self.small_t = small_t
        self.refine = refine
        self.max_iter = max_iter
        self.estimate_spread = estimate_spread
        self.alphas = alphas
        self.test_size = test_size
        self.random_state = random_state
        self.device = device
        self.dtype = dtype
        self.criterion = criterion
        self.n_bootstrap = n_bootstrap
        self.confidence = confidence

    def _check_params(self) -> None:
        check_real(self.small_t, "small_t", minimum=0, open_minimum=True)
        for name in ("max_iter", "n_bootstrap"):
            check_int(getattr(self, name), name, minimum=0)
        check_choice(self.criterion, "criterion", ("gcv", "loo"))
        check_real(
            self.confidence,
            "confidence",
            minimum=0,
            maximum=1,
            open_minimum=True,
            open_maximum=True,
        )

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
        self._check_params()
        B, names = lie_algebra_basis(self.basis)
        Zt = as_orbit_tensor(Z, dtype=self.dtype, device=self.device)
        a = _coordinates(elements, B)
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
        train, test = train_test_indices(Zt.shape[1], self.test_size, self.random_state)
        A = torch.as_tensor(a, dtype=Zt.dtype, device=Zt.device)
        L, L0, mean, loss = self._fit_on(Zt, torch.as_tensor(train, device=Zt.device), A, e, small)

        self.spread_ = float("nan")
        self.generator_errors_ = None
        if self.estimate_spread:
            half = len(train) // 2
            fits = [
                self._fit_on(Zt, torch.as_tensor(idx, device=Zt.device), A, e, small)[0]
                for idx in (train[:half], train[half:])
            ]
            num = torch.linalg.matrix_norm(fits[0] - fits[1])
            den = torch.linalg.matrix_norm(fits[0]) + torch.linalg.matrix_norm(fits[1])
            rel = torch.where(den > 0, num / torch.where(den > 0, den, 1.0), 0.0)
            self.spread_ = float(rel.max())
            self.generator_errors_ = (fits[0] - fits[1]).cpu().numpy()

        te = torch.as_tensor(test, device=Zt.device)
        with torch.no_grad():
            E = torch.linalg.matrix_exp(torch.einsum("gi,iab->gab", A, L))
            Y_hat = (Zt[e, te] - mean[e]) @ E.transpose(1, 2) + mean
        Y_te = Zt[:, te]
        rng = np.random.default_rng(self.random_state)
        self.generators_ = L.detach().cpu().numpy()
        self.generators_init_ = L0.detach().cpu().numpy()
        self.generator_names_ = names
        self.coordinates_ = a
        self.structure_constants_ = structure_constants(B)
        self.loss_ = loss
        self.r2_ = variance_weighted_r2(Y_te, Y_hat).cpu().numpy()
        self.r2_ci_ = (
            bootstrap_r2(Y_te, Y_hat, self.n_bootstrap, self.confidence, rng).cpu().numpy()
        )
        self.train_index_, self.test_index_ = train, test
        self.n_features_in_ = Zt.shape[2]
        return self

    def _fit_on(
        self, Zt: torch.Tensor, tr: torch.Tensor, A: torch.Tensor, e: int, small: np.ndarray
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, float]:
        """Both stages on the training samples ``tr``: (L, L0, per-element means, loss)."""
        mean = Zt[:, tr].mean(dim=1, keepdim=True)
        Zc = Zt[:, tr] - mean  # (G, n_tr, d)
        X = Zc[e]
        # Stage 1: ridge maps of the small elements (one SVD of the identity latents).
        design = fit_design(X)
        alphas = (
            default_alphas(design)
            if self.alphas is None
            else torch.as_tensor(np.asarray(self.alphas, dtype=np.float64), dtype=Zt.dtype)
        )
        idx = torch.as_tensor(small, device=Zt.device)
        Y = Zc[idx]  # (s, n_tr, d), centred
        Bp = torch.einsum("nr,snd->srd", design.U, Y)
        best, _ = select_alpha(design, Y, Bp, alphas.to(Zt.device), self.criterion)
        W = ridge_weights(design, Bp, alphas.to(Zt.device)[best])  # (s, d_in, d_out)
        rho = W.transpose(1, 2).cpu().numpy()
        from scipy.linalg import logm

        with warnings.catch_warnings():
            # scipy flags inaccurate logarithms of maps far from the identity (non-equivariant
            # latents); stage 1 only starts stage 2, which does not use logarithms.
            from scipy.linalg import LinAlgWarning

            warnings.filterwarnings("ignore", "logm result may be inaccurate", RuntimeWarning)
            warnings.filterwarnings("ignore", category=LinAlgWarning)
            logs = np.stack([np.real(logm(M)) for M in rho])  # (s, d, d)
        a_small = A[idx].cpu().numpy()
        coef, *_ = np.linalg.lstsq(a_small, logs.reshape(len(small), -1), rcond=None)
        d = Zt.shape[2]
        L0 = torch.as_tensor(coef.reshape(-1, d, d), dtype=Zt.dtype, device=Zt.device)

        def loss_fn(L: torch.Tensor) -> torch.Tensor:
            E = torch.linalg.matrix_exp(torch.einsum("gi,iab->gab", A, L))
            return ((Zc - X @ E.transpose(1, 2)) ** 2).sum() / (Zc**2).sum()

        with torch.no_grad():
            # Logarithms of maps far from any representation (non-equivariant latents) can be
            # huge; then start from L = 0 (no equivariance), whichever explains more.
            if not float(loss_fn(L0)) <= float(loss_fn(torch.zeros_like(L0))):
                L0 = torch.zeros_like(L0)
        if self.refine and self.max_iter > 0:
            L, loss = lbfgs_minimize(loss_fn, L0, self.max_iter)
        else:
            with torch.no_grad():
                L, loss = L0, float(loss_fn(L0))
        return L, L0, mean, loss

    def bracket_check(self, tol: float | None = None) -> BracketLawCheck:
        """The bracket law ``[L_i, L_j] = Σ_k c_ijk L_k`` of the fitted generators.

        Parameters
        ----------
        tol : float, optional
            Explicit tolerance on the relative residual; by default the first-order bound
            under ``generator_errors_`` (see :func:`bracket_law`).

        Returns
        -------
        BracketLawCheck
        """
        if not hasattr(self, "generators_"):
            raise RuntimeError("this LieAlgebraProbe is not fitted yet; call fit(Z, elements)")
        return bracket_law(self.generators_, self.basis, tol, self.generator_errors_)

    def rho(self, coordinates: Any) -> np.ndarray:
        """``expm(Σ a_i L_i)`` for coordinates of shape (k,) or (n, k)."""
        if not hasattr(self, "generators_"):
            raise RuntimeError("this LieAlgebraProbe is not fitted yet; call fit(Z, elements)")
        a = torch.as_tensor(np.asarray(coordinates, dtype=np.float64))
        L = torch.as_tensor(self.generators_)
        return torch.linalg.matrix_exp(torch.einsum("...i,iab->...ab", a, L)).numpy()
