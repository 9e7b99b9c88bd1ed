"""A user's group registered with latentgeo, as a user's package would ship it.

``Dic3()`` is the dicyclic group of order 12; its spec starts like the built-in dihedral
``D3``.  :class:`RegularShift` is its regular representation on (..., 12) vectors.  Imported by
``tests/test_matrix.py`` and by the dask worker processes that rebuild the group.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

import latentgeo.actions as la
import latentgeo.groups as lg
from latentgeo.actions import Action
from latentgeo.groups import FiniteGroup

__all__ = ["Dic3", "RegularShift"]


def _dicyclic_table(n: int) -> np.ndarray:
    """Cayley table of Dic_n = <a, x | a^{2n} = 1, x^2 = a^n, x a x^-1 = a^-1>.

    Element ``k + 2n j`` is ``a^k x^j``; ``(a^k x^j)(a^m x^l) = a^{k + (-1)^j m} x^j x^l``
    with ``x^2 = a^n``.
    """
    m2 = 2 * n
    table = np.empty((2 * m2, 2 * m2), dtype=np.int64)
    for g in range(2 * m2):
        k, j = g % m2, g // m2
        for h in range(2 * m2):
            m, l_ = h % m2, h // m2
            e = k + (m if j == 0 else -m)
            if j == 1 and l_ == 1:
                e, jj = e + n, 0
            else:
                jj = j ^ l_
            table[g, h] = (e % m2) + m2 * jj
    return table


@lg.register
class Dic3(FiniteGroup):
    """The dicyclic group of order 12."""

    def __init__(self) -> None:
        names = tuple(
            ("e" if k == 0 else f"a{k}") if j == 0 else f"a{k}x" for j in (0, 1) for k in range(6)
        )
        self._setup(_dicyclic_table(3), names)

    def _key(self) -> tuple:
        return ()

    def __repr__(self) -> str:
        return "Dic3()"

    @property
    def spec(self) -> str:
        return "Dic3()"


@la.register
class RegularShift(Action):
    """Dic3 acting on (..., 12) vectors by its regular representation (coordinate shuffles)."""

    @property
    def group(self) -> Dic3:
        return Dic3()

    def _act(self, k: int, x: torch.Tensor) -> torch.Tensor:
        perm = np.argsort(np.asarray(self.group.cayley_table)[k])
        return x[..., torch.as_tensor(perm)]

    def _validate(self, x: torch.Tensor) -> None:
        if x.shape[-1] != 12:
            raise ValueError(f"RegularShift acts on (..., 12) inputs, got {tuple(x.shape)}")

    def to_spec(self) -> dict[str, Any]:
        return {"type": "RegularShift"}

    def __eq__(self, other: object) -> bool:
        return type(other) is RegularShift

    def __hash__(self) -> int:
        return hash("RegularShift")
