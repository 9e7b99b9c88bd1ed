"""The probes as scikit-learn estimators: params, clone, repr, declared validation."""

from dataclasses import dataclass
from numbers import Integral
from typing import Any, ClassVar

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.utils._param_validation import Interval, InvalidParameterError

import probes
from latentgeo.datasets.planted import planted_latents
from latentgeo.groups import Cyclic
from probes._base import ProbeBase, RidgeProbeBase

G = Cyclic(4)


def _estimators():
    return [
        probes.LinearProbe(n_null=2, alphas=[0.1, 1.0], random_state=3),
        probes.OrthogonalProbe(2, n_bootstrap=10, dtype=torch.float32),
        probes.GroupConsistentProbe(G, generators=["r"], criterion="loo"),
        probes.GeneratorProbe(small_angle=0.3, refine=False, test_size=0.3),
        probes.LieAlgebraProbe("so2", max_iter=5, rank_tol=1e-6),
    ]


@pytest.mark.parametrize("est", _estimators(), ids=lambda e: type(e).__name__)
def test_clone_and_params_round_trip(est):
    params = est.get_params()
    twin = clone(est)
    assert type(twin) is type(est) and twin is not est
    assert twin.get_params().keys() == params.keys()
    for k, v in params.items():
        assert repr(twin.get_params()[k]) == repr(v), k
    # set_params then get_params returns what was set; set_params returns self.
    assert twin.set_params(random_state=11, n_bootstrap=0) is twin
    assert twin.get_params()["random_state"] == 11 and twin.n_bootstrap == 0
    assert est.random_state != 11  # the original is untouched
    with pytest.raises(ValueError, match="Invalid parameter 'nope'"):
        twin.set_params(nope=1)
    # The shared parameters are declared once, on the bases.
    shared = set(ProbeBase._get_param_names())
    assert shared == {
        "test_size",
        "random_state",
        "device",
        "dtype",
        "n_bootstrap",
        "confidence",
        "rank_tol",
    }
    assert shared <= set(params)
    if isinstance(est, RidgeProbeBase):
        assert {"alphas", "criterion"} <= set(params)


def test_repr_from_the_signature():
    assert repr(probes.LinearProbe()) == "LinearProbe()"
    assert repr(probes.LinearProbe(n_null=0, criterion="loo")) == (
        "LinearProbe(criterion='loo', n_null=0)"
    )
    assert repr(probes.OrthogonalProbe(3)) == "OrthogonalProbe(rank=3)"
    assert repr(probes.GroupConsistentProbe(G, n_bootstrap=0)) == (
        "GroupConsistentProbe(group=Cyclic(4), n_bootstrap=0)"
    )


@pytest.mark.parametrize(
    ("make", "param", "value"),
    [
        (lambda v: probes.LinearProbe(n_null=v), "n_null", -1),
        (lambda v: probes.LinearProbe(n_bootstrap=v), "n_bootstrap", 2.5),
        (lambda v: probes.LinearProbe(criterion=v), "criterion", "kfold"),
        (lambda v: probes.LinearProbe(test_size=v), "test_size", 1.5),
        (lambda v: probes.LinearProbe(confidence=v), "confidence", 1.0),
        (lambda v: probes.LinearProbe(dtype=v), "dtype", torch.float16),
        (lambda v: probes.LinearProbe(random_state=v), "random_state", "seed"),
        (lambda v: probes.OrthogonalProbe(v), "rank", 0),
        (lambda v: probes.GroupConsistentProbe(v), "group", "C4"),
        (lambda v: probes.GeneratorProbe(small_angle=v), "small_angle", -0.1),
        (lambda v: probes.GeneratorProbe(max_iter=v), "max_iter", 0),
    ],
)
def test_invalid_params_name_the_value(make, param, value):
    Z = planted_latents(G, {"A": 1, "E1": 1}, 60).Z
    est = make(value)  # __init__ only stores: nothing raised yet
    assert getattr(est, param) is value
    with pytest.raises(InvalidParameterError, match=rf"'{param}' parameter.*Got {value!r}"):
        if isinstance(est, probes.GeneratorProbe):
            est.fit(Z[:2], angles=[0.0, 0.1])
        else:
            est.fit(Z)
    assert issubclass(InvalidParameterError, ValueError)


def test_fit_returns_self_and_sets_only_underscored_attributes():
    p = planted_latents(G, {"A": 1, "E1": 1}, 80, noise=0.05)
    for est in (
        probes.LinearProbe(n_null=1, n_bootstrap=5),
        probes.OrthogonalProbe(2, n_bootstrap=5),
        probes.GroupConsistentProbe(G, n_bootstrap=5),
    ):
        params = est.get_params()
        before = set(vars(est))
        assert est.fit(p.Z) is est
        new = set(vars(est)) - before
        assert new and all(name.endswith("_") for name in new), sorted(new)
        assert repr(est.get_params()) == repr(params)  # fit changes no parameter
        # A clone is unfitted and refits to the same numbers (the seed is a parameter).
        twin = clone(est)
        assert not hasattr(twin, "r2_")
        np.testing.assert_array_equal(twin.fit(p.Z).r2_, est.r2_)


def test_a_new_probe_subclasses_the_base():
    @dataclass(eq=False, repr=False)
    class ScaledProbe(RidgeProbeBase):
        scale: float = 1.0

        _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
            **RidgeProbeBase._parameter_constraints,
            "scale": [Interval(Integral, 1, None, closed="left")],
        }

        def fit(self, Z, y=None):
            self._validate_params()
            self.lin_ = probes.LinearProbe(**self.ridge_params(), n_null=0).fit(Z)
            return self

    est = ScaledProbe(scale=2, criterion="loo", n_bootstrap=0)
    assert repr(est) == "ScaledProbe(criterion='loo', n_bootstrap=0, scale=2)"
    assert clone(est).get_params() == est.get_params()
    Z = planted_latents(G, {"A": 1, "E1": 1}, 60).Z
    assert est.fit(Z).lin_.criterion == "loo"
    with pytest.raises(InvalidParameterError, match=r"'scale' parameter.*Got 0"):
        ScaledProbe(scale=0).fit(Z)


def test_runner_settings_are_the_estimator_params(tmp_path):
    from probes._settings import linear_keys, make_settings

    params = set(probes.LinearProbe().get_params())
    assert set(linear_keys()) == params - {"device", "dtype", "identity"}
    with pytest.raises(InvalidParameterError, match=r"'n_null' parameter.*Got -2"):
        make_settings(("linear",), {"n_null": -2}, torch.float64)
    s = make_settings(
        ("linear",), {"alphas": np.array([1.0, 2.0]), "confidence": 0.9}, torch.float64
    )
    assert s.linear == {"alphas": [1.0, 2.0], "confidence": 0.9}
