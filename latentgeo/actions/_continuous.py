"""What actions of continuous groups share: sampled element names and the action check.

An action of a compact continuous group acts through a fixed set of element values
(``action.element_values``, element 0 the identity) and can act with any element value
(``action.act_value``).  Its homomorphism law is checked against values composed by the
group: ``act(g, act(h, x)) == act_value(g∘h, x)`` — ``g∘h`` need not be one of the fixed
elements.
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np
import torch

from latentgeo.actions._base import ActionCheck, ActionCheckError, as_tensor, default_tolerance

__all__ = ["check_continuous", "sampled_names"]


def sampled_names(n: int) -> tuple[str, ...]:
    """Names ``"g0", "g1", ...`` of ``n`` sampled elements."""
    return tuple(f"g{k}" for k in range(n))


def check_continuous(
    action: Any,
    x: Any,
    *,
    max_pairs: int = 256,
    seed: int = 0,
    atol: float | None = None,
    rtol: float | None = None,
    mask: Any = None,
    strict: bool | None = None,
) -> ActionCheck:
    """:meth:`Action.check` for an action of a continuous group (see the module docstring).

    Checks ``act(e, x) == x`` and, for ``max_pairs`` seeded random pairs of the fixed
    elements, ``act(g, act(h, x)) == act_value(group.compose(g, h), x)``; parameters and
    result as :meth:`latentgeo.actions.Action.check`.
    """
    t, _ = as_tensor(x)
    action._validate(t)
    if not isinstance(max_pairs, numbers.Integral) or isinstance(max_pairs, bool) or max_pairs < 1:
        raise ValueError(f"max_pairs must be a positive int, got {max_pairs!r}")
    d_atol, d_rtol = default_tolerance(t.dtype)
    atol = d_atol if atol is None else float(atol)
    rtol = d_rtol if rtol is None else float(rtol)
    strict = action.exact if strict is None else bool(strict)
    if mask is not None:
        mask, _ = as_tensor(mask, "mask")
        mask = mask.to(device=t.device, dtype=torch.bool)

    def err(a: torch.Tensor, b: torch.Tensor) -> float:
        d = (a.to(torch.float64) - b.to(torch.float64)).abs()
        if mask is not None:
            d = d * mask
        return float(d.max()) if d.numel() else 0.0

    values = action.element_values
    order = len(values)
    identity_error = err(action._act(0, t), t)
    rng = np.random.default_rng(seed)
    n_pairs = min(max_pairs, order * order)
    flat = rng.choice(order * order, size=n_pairs, replace=False)
    pairs = np.stack([flat // order, flat % order], axis=1)
    group = action.group
    hom_error, worst = 0.0, None
    for g, h in pairs:
        lhs = action._act(int(g), action._act(int(h), t))
        rhs = action.act_value(group.compose(values[g], values[h]), t)
        e = err(lhs, rhs)
        if worst is None or e > hom_error:
            hom_error, worst = e, (int(g), int(h))
    max_error = max(identity_error, hom_error)
    scale = float(t.detach().abs().max()) if t.numel() else 0.0
    tol = atol + rtol * scale
    names = action.elements
    result = ActionCheck(
        max_error=max_error,
        identity_error=identity_error,
        homomorphism_error=hom_error,
        relative_error=max_error / scale if scale > 0 else max_error,
        worst_pair=None if worst is None else (names[worst[0]], names[worst[1]]),
        n_pairs=n_pairs,
        tolerance=tol,
        passed=max_error <= tol,
        exact=action.exact,
    )
    if strict and not result.passed:
        raise ActionCheckError(
            f"{action!r} is not a group action on this data: max error {max_error:.3g} "
            f"(identity {identity_error:.3g}, worst pair {result.worst_pair} "
            f"{hom_error:.3g}) exceeds the tolerance {tol:.3g}"
        )
    return result
