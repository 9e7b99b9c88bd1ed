"""What actions of continuous groups share: sampled element names and the action check.

An action of a compact continuous group acts through a fixed set of element values
(``action.element_values``, element 0 the identity) and can act with any element value
(``action.act_value``).  Its homomorphism law is checked against values composed by the
group: ``act(g, act(h, x)) == act_value(g∘h, x)`` — ``g∘h`` need not be one of the fixed
elements.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from latentgeo.actions._base import ActionCheck, as_tensor, check_result, check_settings

if TYPE_CHECKING:
    pass

__all__ = ["check_continuous", "sampled_names"]


def sampled_names(n: int) -> tuple[str, ...]:
    """Names ``"g0", "g1", ...`` of ``n`` sampled elements."""
    return tuple(f"g{k}" for k in range(n))


def check_continuous(
    action: Any,  # an Action with act_value (ImageRotationAngles, PointCloudRotations)
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
    atol, rtol, strict, mask = check_settings(action, t, max_pairs, atol, rtol, mask, strict)

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
    return check_result(action, t, identity_error, hom_error, worst, n_pairs, atol, rtol, strict)
