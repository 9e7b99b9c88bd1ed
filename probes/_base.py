"""One estimator base for the probes: scikit-learn parameters, declared once.

Every probe (:class:`~probes.LinearProbe`, :class:`~probes.OrthogonalProbe`,
:class:`~probes.GroupConsistentProbe`, :class:`~probes.GeneratorProbe`, and new ones) is a
scikit-learn estimator (:class:`sklearn.base.BaseEstimator`):

* its parameters are dataclass fields, so ``__init__`` only stores them, and
  ``get_params``/``set_params``, :func:`sklearn.base.clone` and the repr (changed parameters
  only) come from the signature;
* the parameters shared by all probes (held-out split, seed, device, dtype, bootstrap) are
  fields of :class:`ProbeBase`, and those of every ridge-based probe (penalty grid and
  selection) of :class:`RidgeProbeBase`, written once; they are keyword-only;
* validation is declared once per parameter in ``_parameter_constraints`` (scikit-learn's
  ``sklearn.utils._param_validation``), merged along the class hierarchy, and checked by
  ``self._validate_params()`` at the start of ``fit``: a bad value raises
  ``sklearn.utils._param_validation.InvalidParameterError`` (a ``ValueError`` and a
  ``TypeError``) naming the parameter, the value and what is expected;
* fitted attributes end in ``_``; ``fit`` returns ``self``; a method that needs a fit raises
  :class:`sklearn.exceptions.NotFittedError` before it (``_check_fitted``);
* ``score(Z)`` returns one float, the mean held-out-style R² of the fitted maps on ``Z``
  over the non-identity elements, so :class:`~sklearn.model_selection.GridSearchCV` and
  :func:`~sklearn.model_selection.cross_val_score` select parameters (cross-validation splits
  axis 0: pass the latents sample-major as an ``xarray.DataArray`` with dims ``("sample",
  "element", "unit")``, which the probes put back in element-major order; a probe's
  per-element fit argument, e.g. ``LieAlgebraProbe``'s ``elements``, goes to
  ``search.fit(X, elements=...)`` and is passed whole — scikit-learn would split it too if
  its length equalled the number of samples);
* every probe fits on the numerical span of the latents (:mod:`probes._span`) and reports its
  dimension as ``rank_``.

A new probe subclasses one of the bases::

    @dataclass(eq=False, repr=False)
    class MyProbe(RidgeProbeBase):
        rank: int = 2
        _parameter_constraints: ClassVar[dict] = {
            **RidgeProbeBase._parameter_constraints,
            "rank": [Interval(Integral, 1, None, closed="left")],
        }

        def fit(self, Z, y=None):
            self._validate_params()
            ...
            return self
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from numbers import Integral
from typing import Any, ClassVar

import numpy as np
import torch
from sklearn.base import BaseEstimator
from sklearn.utils._param_validation import (
    HasMethods,
    Interval,
    Options,
    RealNotInt,
    StrOptions,
)
from sklearn.utils.validation import check_is_fitted

# The one module that imports scikit-learn's private parameter validation: the probes take
# their constraint types from here, so a change in scikit-learn breaks one place.
__all__ = [
    "HasAttributes",
    "Interval",
    "Options",
    "ProbeBase",
    "RealNotInt",
    "RidgeProbeBase",
    "StrOptions",
]


class HasAttributes(HasMethods):
    """Constraint: an object with all of ``names`` (e.g. a group: ``order``, ``irreps``).

    A :class:`~sklearn.utils._param_validation.HasMethods` (one of the constraint types
    scikit-learn's validator accepts) that checks attributes rather than callables.
    """

    def __init__(self, *names: str, what: str) -> None:
        super().__init__(list(names))
        self.names = names
        self.what = what

    def is_satisfied_by(self, val: Any) -> bool:
        return all(hasattr(val, name) for name in self.names)

    def __str__(self) -> str:
        return f"{self.what} (an object with {', '.join(self.names)})"


@dataclass(eq=False, repr=False, kw_only=True)
class ProbeBase(BaseEstimator):
    """Parameters every probe shares.

    Parameters
    ----------
    test_size : float or int, default 0.25
        Held-out fraction (float in (0, 1)) or number of samples (int >= 2).
    random_state : int or None, default 0
        Seed of the split, the null permutations and the bootstrap (a private
        ``numpy.random.Generator``; global RNG state is untouched).
    device : str or torch.device or int, optional
        Where to compute; defaults to the input's device (CPU for numpy).
    dtype : torch.dtype, default torch.float64
        ``torch.float64`` or ``torch.float32`` (or their names).
    n_bootstrap : int, default 200
        0 skips the interval ``r2_ci_`` (NaN); any positive value computes it.  The probes'
        R² intervals are analytic (:func:`probes._scoring.r2_interval`), so the count itself
        is not used by them; :func:`probes.run` passes it on to the percentile bootstrap of
        the invariance and spectrum intervals.
    confidence : float, default 0.95
        Nominal coverage of ``r2_ci_``.
    rank_tol : float in (0, 1), optional
        Relative threshold of the latents' numerical span: singular values of the centred
        training latents above ``rank_tol · σ_max`` count.  Default ``max(n_train, n_units) ·
        ε`` with ``ε`` the machine epsilon of the coarser of the input's dtype and ``dtype``
        (:mod:`probes._span`).
    """

    test_size: float | int = 0.25
    random_state: int | None = 0
    device: Any = None
    dtype: torch.dtype = torch.float64
    n_bootstrap: int = 200
    confidence: float = 0.95
    rank_tol: float | None = None

    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        "test_size": [
            Interval(RealNotInt, 0, 1, closed="neither"),
            Interval(Integral, 2, None, closed="left"),
        ],
        "random_state": [Interval(Integral, 0, None, closed="left"), None],
        "device": [str, torch.device, Interval(Integral, 0, None, closed="left"), None],
        "dtype": [
            Options(torch.dtype, {torch.float32, torch.float64}),
            StrOptions({"float32", "float64"}),
        ],
        "n_bootstrap": [Interval(Integral, 0, None, closed="left")],
        "confidence": [Interval(RealNotInt, 0, 1, closed="neither")],
        "rank_tol": [Interval(RealNotInt, 0, 1, closed="neither"), None],
    }

    def _check_fitted(self) -> None:
        """Raise :class:`sklearn.exceptions.NotFittedError` unless ``fit`` has run."""
        check_is_fitted(self)

    def _mean_r2(self, r2: Any, identity: int) -> float:
        """The one number ``score`` returns: the mean R² over the non-identity elements.

        The identity's own R² is 1 for any fit that reproduces its inputs, so it would only
        dilute the mean.  NaN, with a warning, when there is no other element.
        """
        values = np.delete(np.asarray(r2, dtype=np.float64), identity)
        if values.size == 0:
            warnings.warn(
                f"{type(self).__name__}.score: the orbit holds only the identity element; there "
                "is no equivariance to score (NaN)",
                RuntimeWarning,
                stacklevel=3,
            )
            return float("nan")
        return float(values.mean())


@dataclass(eq=False, repr=False, kw_only=True)
class RidgeProbeBase(ProbeBase):
    """Parameters of every probe that fits ridge maps (:mod:`probes._ridge`).

    Parameters
    ----------
    alphas : array-like of shape (n_alphas,), optional
        Penalties to choose from (finite, positive).  Default: 29 half-decades from
        ``1e-10`` to ``1e4`` times the mean eigenvalue of the centred training Gram matrix.
    criterion : {"gcv", "loo"}, default "gcv"
        Penalty selection: generalised cross-validation or exact leave-one-out (identical to
        scikit-learn's ``RidgeCV``).
    """

    alphas: Any = None
    criterion: str = "gcv"

    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        **ProbeBase._parameter_constraints,
        "alphas": ["array-like", None],
        "criterion": [StrOptions({"gcv", "loo"})],
    }

    def ridge_params(self) -> dict[str, Any]:
        """This probe's shared parameters, to build an inner :class:`~probes.LinearProbe`."""
        return {
            name: getattr(self, name)
            for name in RidgeProbeBase._get_param_names()
            if name not in ("n_bootstrap", "confidence")
        }
