"""Assertion helpers for users' own tests (in the spirit of ``xarray.testing``).

:func:`assert_equivariant` checks a model or function against a group action on a batch,
element by element, and reports the worst element when the check fails.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

# The one tolerance policy, (rtol, atol); re-exported as latentgeo.testing.default_tolerance.
from latentgeo._validate import default_tolerance

if TYPE_CHECKING:
    from latentgeo.actions import Action

__all__ = ["assert_equivariant", "default_tolerance"]


def assert_equivariant(
    model_or_fn: Callable[[Any], Any],
    action: Action,
    x: Any,
    atol: float | None = None,
    rtol: float | None = None,
    out_action: Any = None,
    *,
    select: Any = None,
) -> None:
    """Assert ``f(g·x) == out_action(g, f(x))`` for every element ``g`` of the action's group.

    With ``out_action`` None or ``"invariant"`` the check is invariance, ``f(g·x) == f(x)``.
    A ``torch.nn.Module`` is called through latentgeo's protected model-call path
    (``latentgeo._model_call``): eval mode entered and left through the model's own
    ``train()`` (dropout and batch statistics would break any symmetry), every submodule's own
    mode restored afterwards, no gradients, random state untouched.  Outputs that are not a
    tensor (tuples, dicts, dataclasses, ``ModelOutput``) stand for their first tensor
    (depth-first), or the one ``select`` names.

    Parameters
    ----------
    model_or_fn : callable
        A model or function of a batch of inputs.
    action : latentgeo.actions.Action
        ``action(g, x)`` acts on inputs; ``action.group`` lists the elements.
    x : Tensor
        A batch of inputs.
    atol, rtol : float, optional
        Tolerances of ``|f(g·x) − expected| <= atol + rtol |expected|``.  Default from the
        output dtype: float32 ``(rtol, atol) = (1e-4, 1e-5)``, float64 ``(1e-7, 1e-10)``.
    out_action : Action or callable ``(g, y) -> y``, or "invariant", optional
        How the group acts on outputs.
    select : str, sequence or callable, optional
        Which tensor of a structured output to compare (``"logits"``, ``"0.1"``, a callable);
        default: the first tensor, depth-first (see ``latentgeo._outputs``).

    Raises
    ------
    AssertionError
        Naming the worst element, its largest absolute error, the tolerance at that entry and
        the number of entries out of tolerance.

    Examples
    --------
    >>> import torch
    >>> from latentgeo.actions import ImageRotations
    >>> from latentgeo.groups import Cyclic
    >>> from latentgeo.testing import assert_equivariant
    >>> x = torch.randn(4, 1, 6, 6, dtype=torch.float64)
    >>> assert_equivariant(lambda t: t.sum(dim=(-2, -1)), ImageRotations(Cyclic(4)), x)
    """
    import torch

    if not callable(model_or_fn):
        raise TypeError(f"model_or_fn must be callable, got {model_or_fn!r}")
    group = getattr(action, "group", None)
    if group is None or not callable(action):
        raise TypeError(f"action must be a latentgeo Action with a group, got {action!r}")
    if out_action == "invariant":
        out_action = None
    elif out_action is not None and not callable(out_action):
        raise TypeError(
            f"out_action must be an Action, a callable (g, y) -> y or 'invariant', got "
            f"{out_action!r}"
        )
    for name, value in (("atol", atol), ("rtol", rtol)):
        if value is not None and not (isinstance(value, (int, float)) and value >= 0):
            raise ValueError(f"{name} must be a non-negative float, got {value!r}")

    from latentgeo._model_call import protected_call
    from latentgeo._outputs import select_output

    def f(inputs: Any) -> torch.Tensor:
        out = model_or_fn(inputs)
        if select is None and isinstance(out, torch.Tensor):
            return out
        if isinstance(out, (numbers.Number, np.ndarray)):
            return torch.as_tensor(out)
        return select_output(out, select, what="the model's output")[0]

    # Every call of the model in one protected block: eval through its own API, no grad,
    # random state kept, every submodule's own mode restored afterwards.
    with protected_call(model_or_fn):
        y = f(x)
        if not y.is_floating_point():
            raise TypeError(f"outputs must be floating point, got dtype {y.dtype}")
        d_rtol, d_atol = default_tolerance(y.dtype)
        rtol = d_rtol if rtol is None else float(rtol)
        atol = d_atol if atol is None else float(atol)
        names = list(getattr(group, "elements", range(group.order)))
        worst = None  # (excess, element, max error, tolerance there, n bad)
        for g in range(group.order):
            got = f(action(g, x))
            want = y if out_action is None else torch.as_tensor(out_action(g, y))
            if got.shape != want.shape:
                raise AssertionError(
                    f"element {names[g]!r}: output shape {tuple(got.shape)} differs from "
                    f"the expected {tuple(want.shape)}"
                )
            err = (got - want).abs().to(torch.float64)
            tol = atol + rtol * want.abs().to(torch.float64)
            bad = ~(err <= tol)  # NaN counts as a failure
            if bool(bad.any()):
                excess = torch.where(bad, err - tol, torch.zeros_like(err))
                excess = torch.nan_to_num(excess, nan=float("inf"))
                i = int(torch.argmax(excess.flatten()))
                item = (
                    float(excess.flatten()[i]),
                    names[g],
                    float(err.flatten()[i]),
                    float(tol.flatten()[i]),
                    int(bad.sum()),
                )
                if worst is None or item[0] > worst[0]:
                    worst = item
    if worst is not None:
        kind = "invariant" if out_action is None else "equivariant"
        raise AssertionError(
            f"not {kind}: worst element {worst[1]!r} has absolute error {worst[2]:.3e} where "
            f"the tolerance is {worst[3]:.3e} (atol={atol:g}, rtol={rtol:g}); "
            f"{worst[4]} entries out of tolerance for that element"
        )
