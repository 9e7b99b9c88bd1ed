"""The one validation vocabulary (``latentgeo._validate``) and its rule across the public API:
a wrong *type* is a ``TypeError``, a wrong *value* a ``ValueError``, and the message names the
argument and the value."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
import torch

import latentgeo.actions as la
import latentgeo.geometry as geo
import latentgeo.groups as lg
import latentgeo.reducers as lr
import latentgeo.schedules as ls
import latentgeo.testing
import trajectories
from latentgeo._validate import (
    as_orbit_tensor,
    as_tensor,
    check_choice,
    check_int,
    check_real,
    default_tolerance,
)
from latentgeo.datasets import modular_addition, planted_latents
from latentgeo.models import SmallCNN


@pytest.mark.parametrize("value", [3, np.int64(3), np.uint8(3)])
def test_check_int_accepts_integers_and_returns_int(value) -> None:
    out = check_int(value, "n", minimum=1, maximum=3)
    assert out == 3 and type(out) is int


@pytest.mark.parametrize("value", [True, 3.0, np.float64(3), "3", None, Fraction(3), [3]])
def test_check_int_refuses_other_types_with_type_error(value) -> None:
    with pytest.raises(TypeError, match=r"n must be an int, got"):
        check_int(value, "n", minimum=1)


@pytest.mark.parametrize(
    ("value", "bounds", "message"),
    [
        (0, {"minimum": 1}, r"n must be an int >= 1, got 0"),
        (-1, {"minimum": 0}, r"n must be an int >= 0, got -1"),
        (1, {"minimum": 2}, r"an int >= 2, got 1"),
        (9, {"maximum": 8}, r"an int <= 8, got 9"),
        (9, {"minimum": 0, "maximum": 8}, r"an int in \[0, 8\], got 9"),
    ],
)
def test_check_int_bounds_are_value_errors(value, bounds, message) -> None:
    with pytest.raises(ValueError, match=message):
        check_int(value, "n", **bounds)


def test_check_real() -> None:
    assert check_real(np.float32(0.5), "x", minimum=0, maximum=1) == 0.5
    assert check_real(2, "x") == 2.0 and type(check_real(2, "x")) is float
    for bad in (True, "0.5", None, 1j, torch.tensor(0.5)):
        with pytest.raises(TypeError, match="x must be a real number"):
            check_real(bad, "x")
    for bad in (float("nan"), float("inf")):
        with pytest.raises(ValueError, match="x must be finite"):
            check_real(bad, "x")
    with pytest.raises(ValueError, match=r"x must be in \(0, 1\), got 1.0"):
        check_real(1, "x", minimum=0, maximum=1, open_minimum=True, open_maximum=True)
    with pytest.raises(ValueError, match=r"x must be > 0, got 0.0"):
        check_real(0, "x", minimum=0, open_minimum=True)
    assert check_real(0, "x", minimum=0) == 0.0  # closed bound


def test_check_choice() -> None:
    assert check_choice("arc", "convention", ("arc", "chordal")) == "arc"
    with pytest.raises(ValueError, match=r"convention must be one of \('arc', 'chordal'\)"):
        check_choice("chord", "convention", ("arc", "chordal"))
    with pytest.raises(TypeError, match="a str"):
        check_choice(1, "convention", ("arc", "chordal"))
    assert check_choice(2, "k", (1, 2)) == 2  # non-str choices compare by value


def test_one_tolerance_policy_in_one_order() -> None:
    for dtype in (torch.float16, torch.bfloat16, torch.float32, torch.float64):
        rtol, atol = default_tolerance(dtype)
        # rtol first: a relative tolerance no finer than the dtype's resolution, and the
        # absolute one no larger than the relative one (values of unit scale).
        assert torch.finfo(dtype).eps <= rtol < 0.1 and 0 < atol <= rtol
        assert default_tolerance(str(dtype).removeprefix("torch.")) == (rtol, atol)
    assert default_tolerance(np.float32) == default_tolerance(torch.float32) == (1e-4, 1e-5)
    assert default_tolerance(torch.int64) == default_tolerance(np.int8) == (0.0, 0.0)
    with pytest.raises(TypeError, match="no default tolerance"):
        default_tolerance(torch.complex64)
    # Every public spelling is the same function.
    assert latentgeo.testing.default_tolerance is default_tolerance


def test_as_tensor_and_orbit_tensor() -> None:
    t = as_tensor(np.arange(6).reshape(2, 3), "x", min_ndim=2)
    assert t.dtype == torch.float64 and t.shape == (2, 3)
    assert as_tensor(torch.ones(2, dtype=torch.float32), "x").dtype == torch.float32
    with pytest.raises(TypeError, match="x must be a numeric array"):
        as_tensor(np.array(["a"]), "x")
    with pytest.raises(ValueError, match="at least 3 dimensions"):
        as_tensor(np.ones((2, 2)), "x", min_ndim=3)
    Z = np.zeros((4, 5, 3))
    Z[2, 1, 0] = np.nan
    with pytest.raises(ValueError, match=r"1 non-finite values .* element 2"):
        as_orbit_tensor(Z)
    with pytest.raises(TypeError, match="dtype must be"):
        as_orbit_tensor(np.ones((2, 2, 2)), dtype="int8")


def _subset() -> la.Action:
    return la.TokenShift(7, position=(0, 1))


# (constructor call, wrong type, wrong value): each public constructor or function, called
# once with an argument of the wrong type and once with the wrong value.
CASES = {
    "Cyclic": (lambda v: lg.Cyclic(v), 3.0, 0),
    "Dihedral": (lambda v: lg.Dihedral(v), "4", 0),
    "Symmetric": (lambda v: lg.Symmetric(v), True, 0),
    "SO3 irreps": (lambda v: lg.SO3().irreps(v), 1.5, -1),
    "TokenShift": (lambda v: la.TokenShift(v), 7.0, 0),
    "SetPermutation": (lambda v: la.SetPermutation(v), "3", 0),
    "ImageTranslations": (lambda v: la.ImageTranslations(v, 4), 4.0, 0),
    "ElementSubset.n_elements": (lambda v: la.ElementSubset(_subset(), v), 2.5, 0),
    "ElementSubset.seed": (lambda v: la.ElementSubset(_subset(), 3, seed=v), "1", None),
    "PointCloudRotations": (lambda v: la.PointCloudRotations("SO3", v), 4.0, 0),
    "BlockMeanPool": (lambda v: lr.BlockMeanPool(v), 1.5, 0),
    "RandomProjection": (lambda v: lr.RandomProjection(v), "3", 0),
    "EveryN": (lambda v: ls.EveryN(v), 2.0, 0),
    "LogSpaced": (lambda v: ls.LogSpaced(v), None, 0),
    "SmallCNN": (lambda v: SmallCNN(width=v), 8.0, 0),
    "modular_addition": (lambda v: modular_addition(v), 7.5, 1),
    "planted_latents": (
        lambda v: planted_latents(lg.Cyclic(3), {"A": 1}, v, 0.1),
        10.0,
        1,
    ),
    "principal_subspace": (lambda v: geo.principal_subspace(torch.randn(9, 4), v), 2.0, 0),
    "Grassmann": (lambda v: geo.Grassmann(v, 1), "3", 0),
    "trajectories.change_points": (
        lambda v: trajectories.change_points(np.arange(12.0), min_size=v),
        1.5,
        0,
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_wrong_type_is_type_error_and_wrong_value_is_value_error(case: str) -> None:
    call, wrong_type, wrong_value = CASES[case]
    with pytest.raises(TypeError, match=repr(wrong_type).replace("(", r"\(").replace(")", r"\)")):
        call(wrong_type)
    if wrong_value is not None:
        with pytest.raises(ValueError) as err:
            call(wrong_value)
        assert not isinstance(err.value, TypeError)
        assert repr(wrong_value) in str(err.value)
