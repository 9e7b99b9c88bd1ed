"""The quaternion group Q8 with closed-form real irreps (one of quaternionic type)."""

from __future__ import annotations

import numpy as np

from ._finite import FiniteGroup
from ._irreps import Irrep
from ._registry import GROUPS

__all__ = ["Quaternion"]

_NAMES = ("1", "-1", "i", "-i", "j", "-j", "k", "-k")
# Unit quaternions (a, b, c, d) = a + b i + c j + d k of each element, in index order.
_UNITS = np.array(
    [
        [1, 0, 0, 0],
        [-1, 0, 0, 0],
        [0, 1, 0, 0],
        [0, -1, 0, 0],
        [0, 0, 1, 0],
        [0, 0, -1, 0],
        [0, 0, 0, 1],
        [0, 0, 0, -1],
    ],
    dtype=np.float64,
)


def left_multiplication(q: np.ndarray) -> np.ndarray:
    """The 4x4 real matrix of ``x -> q x`` on ``H = R^4`` (basis 1, i, j, k), batched."""
    a, b, c, d = np.moveaxis(q, -1, 0)
    rows = [
        [a, -b, -c, -d],
        [b, a, -d, c],
        [c, d, a, -b],
        [d, -c, b, a],
    ]
    return np.stack([np.stack(r, -1) for r in rows], -2)


@GROUPS.register
class Quaternion(FiniteGroup):
    """The quaternion group ``Q8 = {±1, ±i, ±j, ±k}`` under quaternion multiplication.

    Elements in index order ``"1", "-1", "i", "-i", "j", "-j", "k", "-k"``;
    ``i∘j = k``, ``j∘k = i``, ``k∘i = j``, ``i∘i = -1``.  Spec ``"Q8"``.

    Real irreps (closed forms, in this order):

    - ``"A"``: trivial;
    - ``"Bi"``, ``"Bj"``, ``"Bk"``: the signs with ``±i`` (resp. ``±j``, ``±k``) in the kernel;
    - ``"H"``: left multiplication of ``H = R^4`` by the unit quaternion, of quaternionic
      type (the realification of the 2-dimensional complex irrep, whose Frobenius–Schur
      indicator is -1; character ``4 Re(q)``).

    Examples
    --------
    >>> G = Quaternion()
    >>> G.elements[G.compose("i", "j")], [(r.name, r.type) for r in G.irreps()][-1]
    ('k', ('H', 'quaternionic'))
    """

    spec_prefix = "Q"

    def __init__(self) -> None:
        mats = left_multiplication(_UNITS)
        prod = np.einsum("aij,bj->abi", mats, _UNITS)  # the quaternion a∘b
        table = np.argmin(np.abs(prod[:, :, None, :] - _UNITS[None, None]).sum(-1), axis=-1)
        self._setup(table, _NAMES)

    @classmethod
    def _from_spec_number(cls, n: int | None) -> Quaternion:
        if n != 8:
            raise ValueError(f"the quaternion group has spec 'Q8' (order 8), got 'Q{n or ''}'")
        return cls()

    def _key(self) -> tuple:
        return ()

    def __repr__(self) -> str:
        return "Quaternion()"

    def __reduce__(self) -> tuple:
        return (Quaternion, ())

    @property
    def spec(self) -> str:
        return "Q8"

    @property
    def generators(self) -> tuple[int, ...]:
        return (2, 4)

    @property
    def units(self) -> np.ndarray:
        """Unit quaternion ``(a, b, c, d)`` of each element, shape (8, 4)."""
        out = _UNITS.copy()
        out.flags.writeable = False
        return out

    def _compute_irreps(self) -> tuple[Irrep, ...]:
        one = np.ones(8)
        irreps = [Irrep("A", 1, one[:, None, None], one, "real")]
        for axis, name in ((1, "Bi"), (2, "Bj"), (3, "Bk")):
            # +1 on ±1 and on ±(the kernel's unit), -1 on the other two pairs.
            sign = np.where((_UNITS[:, 0] != 0) | (_UNITS[:, axis] != 0), 1.0, -1.0)
            irreps.append(Irrep(name, 1, sign[:, None, None], sign, "real"))
        mats = left_multiplication(_UNITS)
        irreps.append(Irrep("H", 4, mats, 4 * _UNITS[:, 0], "quaternionic"))
        return tuple(irreps)
