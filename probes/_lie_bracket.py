"""The bracket law ``[L_i, L_j] = Σ_k c_ijk L_k`` that generators of a representation obey."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from latentgeo._validate import check_real
from probes._lie_basis import lie_algebra_basis, structure_constants

__all__ = ["BracketLawCheck", "bracket_law", "undetermined_check"]


@dataclasses.dataclass(frozen=True)
class BracketLawCheck:
    """Outcome of the bracket-law check ``[L_i, L_j] = Σ_k c_ijk L_k`` of fitted generators.

    The relative residual of a pair is ``‖[L_i, L_j] − Σ_k c_ijk L_k‖_F`` over
    ``‖[L_i, L_j]‖_F + ‖Σ_k c_ijk L_k‖_F`` (0 when both sides vanish to working precision:
    their sum is below ``√ε`` times ``‖X_i‖_F ‖X_j‖_F + Σ_k |c_ijk| ‖X_k‖_F``, the same bound for
    the basis ``X`` itself — generators that small are the trivial representation's, which
    obeys the law, to float64 precision): it lies in [0, 1],
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
        gives False, with a warning that the data cannot decide.
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
    basis_norms = np.linalg.norm(B, axis=(1, 2))
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
            unit = basis_norms[i] * basis_norms[j] + np.abs(c[i, j]) @ basis_norms
            negligible = den <= floor * unit  # both sides zero to working precision
            res.append(0.0 if negligible else float(np.linalg.norm(lhs - rhs) / den))
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
                t = 0.0 if negligible else num / den
                tols.append(max(floor, float(t)))
            else:
                tols.append(floor)
    res_arr, tol_arr = np.asarray(res), np.asarray(tols)
    undecided = [pairs[p] for p in np.flatnonzero(tol_arr >= 1.0)]
    if undecided:
        import warnings

        warnings.warn(
            f"the bracket law cannot be decided for {undecided!r}: the generators' estimated "
            "error is as large as the bracket itself (tolerance >= 1), so holds=False means "
            "'not confirmed'; more samples or less noise are needed",
            RuntimeWarning,
            stacklevel=2,
        )
    return BracketLawCheck(
        pairs=tuple(pairs),
        relative_residual=res_arr,
        max_relative_residual=float(res_arr.max()) if res_arr.size else 0.0,
        tolerance=tol_arr,
        rule=rule,
        holds=bool(np.all((res_arr <= tol_arr) & (tol_arr < 1.0))),
    )


def undetermined_check(basis: Any, cause: str) -> BracketLawCheck:
    """The check when the data identify no generator: NaN residuals, ``holds=False``, and a
    warning naming ``cause``."""
    import warnings

    _, names = lie_algebra_basis(basis)
    k = len(names)
    pairs = tuple((names[i], names[j]) for i in range(k) for j in range(i + 1, k))
    warnings.warn(f"the bracket law cannot be checked: {cause}", RuntimeWarning, stacklevel=3)
    nan = np.full(len(pairs), np.nan)
    return BracketLawCheck(
        pairs=pairs,
        relative_residual=nan,
        max_relative_residual=float("nan"),
        tolerance=nan.copy(),
        rule=f"undetermined: {cause}",
        holds=False,
    )
