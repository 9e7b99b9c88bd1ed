"""latentgeo.testing.assert_equivariant."""

import numpy as np
import pytest
import torch

from latentgeo.actions import ImageRotations
from latentgeo.groups import Cyclic, Dihedral
from latentgeo.testing import assert_equivariant, default_tolerance


def _x(dtype=torch.float64):
    return torch.randn(3, 2, 6, 6, generator=torch.Generator().manual_seed(0), dtype=dtype)


def test_invariant_and_equivariant_functions_pass():
    action = ImageRotations(Dihedral(4))
    x = _x()
    assert_equivariant(lambda t: t.sum(dim=(-2, -1)), action, x)
    assert_equivariant(lambda t: t.pow(2).sum(dim=(-2, -1)), action, x, out_action="invariant")
    # Pointwise maps commute with every rotation and flip: equivariant, output acted on.
    assert_equivariant(torch.tanh, action, x, out_action=action)
    assert_equivariant(torch.tanh, action, x, out_action=lambda g, y: action(g, y))


def test_failure_names_worst_element_and_tolerance():
    action = ImageRotations(Cyclic(4))
    x = _x()
    # Invariant under r2 only: rows reversed twice come back, but r and r3 change the sum.
    weights = torch.linspace(0, 1, 6, dtype=torch.float64)

    def column_weighted(t):
        return (t * weights).sum(dim=(-2, -1))

    with pytest.raises(AssertionError) as info:
        assert_equivariant(column_weighted, action, x)
    msg = str(info.value)
    assert "not invariant" in msg and "worst element" in msg
    assert "atol=1e-10" in msg and "rtol=1e-07" in msg
    worst = msg.split("worst element ")[1].split(" ")[0].strip("'")
    assert worst in {"r", "r2", "r3"}
    # The worst element really has the largest error.
    errs = {
        name: float((column_weighted(action(g, x)) - column_weighted(x)).abs().max())
        for g, name in enumerate(action.group.elements)
    }
    assert worst == max(errs, key=errs.get)


def test_tolerance_follows_dtype():
    assert default_tolerance(torch.float32) == (1e-4, 1e-5)
    assert default_tolerance(torch.float64) == (1e-7, 1e-10)
    action = ImageRotations(Cyclic(4))
    x = _x(torch.float32)

    def nearly_invariant(t):  # error ~1e-6 relative: passes in float32, not in float64
        s = t.sum(dim=(-2, -1))
        return s + 1e-6 * s.abs().max() * t[..., 0, 0]

    assert_equivariant(nearly_invariant, action, x)
    with pytest.raises(AssertionError):
        assert_equivariant(nearly_invariant, action, x.double())
    assert_equivariant(nearly_invariant, action, x.double(), atol=1e-3, rtol=0)
    with pytest.raises(TypeError, match="floating"):
        assert_equivariant(lambda t: (t > 0).sum(dim=(-2, -1)), action, x)


def test_module_eval_mode_restored():
    action = ImageRotations(Cyclic(4))
    # In eval mode dropout is the identity, so pooling is invariant; in train mode it is not.
    net = torch.nn.Sequential(torch.nn.Dropout(0.5), torch.nn.AdaptiveAvgPool2d(1))
    net.train()
    assert_equivariant(net, action, _x())
    assert net.training
    with pytest.raises(AssertionError):
        assert_equivariant(lambda t: net(t), action, _x())  # a plain function: not switched


def test_bad_arguments():
    action = ImageRotations(Cyclic(4))
    with pytest.raises(TypeError, match="callable"):
        assert_equivariant(42, action, _x())
    with pytest.raises(TypeError, match="Action"):
        assert_equivariant(torch.tanh, object(), _x())
    with pytest.raises(TypeError, match="out_action"):
        assert_equivariant(torch.tanh, action, _x(), out_action="equivariant")
    with pytest.raises(ValueError, match="atol"):
        assert_equivariant(torch.tanh, action, _x(), atol=-1.0)
    with pytest.raises(AssertionError, match="shape"):
        assert_equivariant(torch.tanh, action, _x(), out_action=lambda g, y: y[:1])
    assert np.isfinite(default_tolerance("float16")).all()
