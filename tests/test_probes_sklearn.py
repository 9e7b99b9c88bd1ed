"""The probes in scikit-learn's model selection: score() is one float, an unfitted probe
raises NotFittedError, and GridSearchCV / cross_val_score split the samples of an orbit."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import GridSearchCV, KFold, cross_val_score

import probes
from latentgeo.datasets.planted import planted_latents
from latentgeo.groups import Cyclic
from probes._lie_algebra import one_parameter_elements

G = Cyclic(4)
ANGLES = np.array([0.0, 0.1, -0.1, 0.7, -1.5])


def _so2_orbit(rng, n=80):
    J = np.array([[0.0, -1.0], [1.0, 0.0]])
    from scipy.linalg import expm

    x = rng.normal(size=(n, 2))
    return np.stack([x @ expm(t * J).T for t in ANGLES])


# (estimator, the fit's extra argument, the methods that need a fit with their arguments)
CASES = [
    (probes.LinearProbe(n_null=0, n_bootstrap=0), None, ["predict", "score", "score_elements"]),
    (probes.OrthogonalProbe(n_bootstrap=0), None, ["score"]),
    (probes.GroupConsistentProbe(G, n_bootstrap=0), None, ["score"]),
    (probes.GeneratorProbe(n_bootstrap=0), "angles", ["score", "rho"]),
    (probes.LieAlgebraProbe("so2", n_bootstrap=0), "coords", ["score", "rho", "bracket_check"]),
]


def _data(rng, extra):
    if extra is None:
        return planted_latents(G, {"A": 1, "E1": 1}, 80, noise=0.05).Z, None
    Z = _so2_orbit(rng)
    return Z, (ANGLES if extra == "angles" else ANGLES[:, None])


def _args(method, Z):
    return {"rho": (0.3,), "bracket_check": ()}.get(method, (Z,))


@pytest.mark.parametrize("est, extra, methods", CASES, ids=lambda c: type(c).__name__)
def test_unfitted_probes_raise_not_fitted_error(rng, est, extra, methods):
    Z, _ = _data(rng, extra)
    for method in methods:
        with pytest.raises(NotFittedError, match="not fitted"):
            getattr(est, method)(*_args(method, Z))
    if isinstance(est, probes.LinearProbe):
        with pytest.raises(NotFittedError):
            _ = est.excess_r2_


@pytest.mark.parametrize("est, extra, methods", CASES, ids=lambda c: type(c).__name__)
def test_score_is_one_float_the_mean_over_non_identity_elements(rng, est, extra, methods):
    Z, elements = _data(rng, extra)
    fitted = est.fit(Z) if elements is None else est.fit(Z, elements)
    held_out = Z[:, fitted.test_index_]
    score = fitted.score(held_out)
    assert type(score) is float
    # On the held-out samples of the fit, score() is the mean of r2_ over the other elements
    # (the orthogonal probe scores in its whitened coordinates, as r2_ does).
    identity = 0
    np.testing.assert_allclose(score, np.delete(fitted.r2_, identity).mean(), rtol=0, atol=1e-9)


def test_grid_search_and_cross_val_score_over_samples(rng):
    """A sample-major DataArray is split along samples; the probes read it element-major.
    On an exact C4 representation a tiny penalty beats a huge one."""
    p = planted_latents(G, {"A": 1, "E1": 2}, 120, noise=0.0)
    X = xr.DataArray(p.Z, dims=("element", "sample", "unit")).transpose("sample", "element", "unit")
    est = probes.LinearProbe(n_null=0, n_bootstrap=0)
    search = GridSearchCV(est, {"alphas": [[1e-8], [1e8]]}, cv=KFold(3))
    search.fit(X)
    assert search.best_params_ == {"alphas": [1e-8]}
    assert search.best_score_ > 0.999
    scores = search.cv_results_["mean_test_score"]
    assert scores[1] < 0.5  # the huge penalty shrinks every map towards 0
    cv = cross_val_score(est, X, cv=KFold(4))
    assert cv.shape == (4,) and np.all(cv > 0.999)
    # The same split by hand: fit on the training fold, score on the held-out fold.
    train, test = next(KFold(3).split(np.arange(120)))
    manual = probes.LinearProbe(n_null=0, n_bootstrap=0, alphas=[1e-8]).fit(p.Z[:, train])
    np.testing.assert_allclose(
        search.cv_results_["split0_test_score"][0], manual.score(p.Z[:, test]), atol=1e-12
    )


def test_grid_search_of_a_lie_probe_with_its_elements(rng):
    """The elements are a fit parameter of the orbit (not split with the samples)."""
    R, _a = one_parameter_elements("so3", [0.05, -0.05, 0.3])
    x = rng.normal(size=(90, 3))
    Z = np.einsum("gij,nj->gni", R, x)
    X = xr.DataArray(Z, dims=("element", "sample", "unit")).transpose("sample", "element", "unit")
    est = probes.LieAlgebraProbe(n_bootstrap=0, estimate_spread=False, max_iter=30)
    search = GridSearchCV(est, {"refine": [False, True]}, cv=KFold(3))
    search.fit(X, elements=R)
    assert search.best_score_ > 0.999
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()
