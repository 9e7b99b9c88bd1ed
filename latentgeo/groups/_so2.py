"""The continuous rotation group SO(2), its Lie algebra and real irreps."""

from __future__ import annotations

from typing import Any

import numpy as np

from latentgeo._validate import check_int

from ._cyclic import Cyclic, rotation_matrices
from ._protocol import Group, as_generator
from ._registry import GROUPS

__all__ = ["SO2", "SO2Irrep"]

_GENERATOR = np.array([[0.0, -1.0], [1.0, 0.0]])


def _angles(theta: Any) -> np.ndarray:
    a = np.asarray(theta, dtype=np.float64)
    if not np.all(np.isfinite(a)):
        raise ValueError(f"angles must be finite, got {theta!r}")
    return a


class SO2Irrep:
    """The real irrep of SO(2) of frequency ``k``: ``θ -> R(kθ)`` (trivial for ``k = 0``).

    Parameters
    ----------
    frequency : int
        ``k >= 0``.  ``k = 0`` is the 1-d trivial irrep ``"A"``; ``k >= 1`` is the 2-d
        rotation irrep ``"E{k}"`` (complex type: the realification of ``exp(ikθ)``).
    """

    frequency: int

    __slots__ = ("frequency",)

    def __init__(self, frequency: int) -> None:
        k = check_int(frequency, "SO2 irrep frequency", minimum=0)
        object.__setattr__(self, "frequency", k)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"SO2Irrep is immutable; cannot set {name!r}")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SO2Irrep):
            return NotImplemented
        return self.frequency == other.frequency

    def __hash__(self) -> int:
        return hash(("SO2Irrep", self.frequency))

    def __repr__(self) -> str:
        return f"SO2().irrep({self.frequency})"

    def __reduce__(self) -> tuple:
        return (SO2Irrep, (self.frequency,))

    @property
    def name(self) -> str:
        """``"A"`` for the trivial irrep, ``"E{k}"`` otherwise (as for :class:`Cyclic`)."""
        return "A" if self.frequency == 0 else f"E{self.frequency}"

    @property
    def dim(self) -> int:
        """1 for ``k = 0``, else 2."""
        return 1 if self.frequency == 0 else 2

    @property
    def type(self) -> str:
        """``"real"`` for ``k = 0``, else ``"complex"``."""
        return "real" if self.frequency == 0 else "complex"

    @property
    def generator(self) -> np.ndarray:
        """Image of the Lie algebra generator, shape (dim, dim): ``k J`` (zero for k = 0)."""
        if self.frequency == 0:
            return np.zeros((1, 1))
        return self.frequency * _GENERATOR.copy()

    def __call__(self, theta: Any) -> np.ndarray:
        """Matrices at angles ``theta``, shape ``theta.shape + (dim, dim)``."""
        a = _angles(theta)
        if self.frequency == 0:
            return np.ones((*a.shape, 1, 1))
        return rotation_matrices(self.frequency * a)

    @property
    def degree(self) -> int:
        """The frequency ``k`` (the protocol's degree of a continuous group's irrep)."""
        return self.frequency

    def character_at(self, theta: Any) -> np.ndarray:
        """Trace at angles ``theta``: 1 for ``k = 0``, else ``2 cos(kθ)``."""
        a = _angles(theta)
        return np.ones_like(a) if self.frequency == 0 else 2 * np.cos(self.frequency * a)


@GROUPS.register
class SO2(Group):
    """The rotation group SO(2), elements given by angles ``θ`` (radians).

    ``θ`` acts as the rotation matrix ``exp(θ J)`` with Lie algebra generator
    ``J = [[0, -1], [1, 0]]``; composition adds angles.  Real irreps are indexed by
    frequency ``k >= 0`` (:meth:`irrep`).  :meth:`discretize` gives the subgroup ``C_n`` on
    the uniform grid :meth:`grid`, with element ``k`` at angle ``2πk/n``, so that
    ``SO2().irrep(j)`` restricted to the grid equals ``Cyclic(n)``'s irrep ``E{j}``
    (``0 < j < n/2``).

    Examples
    --------
    >>> G = SO2()
    >>> np.allclose(G.exp(np.pi / 2), G.generator)
    True
    >>> G.discretize(8)
    Cyclic(8)
    """

    __slots__ = ()
    spec_prefix = "SO2"

    @classmethod
    def _from_spec_number(cls, n: int | None) -> SO2:
        if n is not None:
            raise ValueError(f"unexpected digits after 'SO2': {n!r}")
        return cls()

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SO2):
            return NotImplemented
        return True

    def __hash__(self) -> int:
        return hash("SO2")

    def __repr__(self) -> str:
        return "SO2()"

    def __reduce__(self) -> tuple:
        return (SO2, ())

    @property
    def spec(self) -> str:
        """``"SO2"``."""
        return "SO2"

    @property
    def is_finite(self) -> bool:
        """``False``."""
        return False

    @property
    def dim(self) -> int:
        """Dimension of the Lie group (1)."""
        return 1

    @property
    def identity(self) -> float:
        """The identity angle, 0."""
        return 0.0

    @property
    def generator(self) -> np.ndarray:
        """Lie algebra generator ``J``, the 2x2 skew matrix ``[[0, -1], [1, 0]]``."""
        return _GENERATOR.copy()

    def exp(self, theta: Any) -> np.ndarray:
        """Rotation matrices ``exp(θ J)``, shape ``theta.shape + (2, 2)``, float64."""
        return rotation_matrices(_angles(theta))

    def log(self, rotation: Any) -> np.ndarray:
        """Angle in ``(-π, π]`` of rotation matrices of shape (..., 2, 2)."""
        r = np.asarray(rotation, dtype=np.float64)
        if r.shape[-2:] != (2, 2):
            raise ValueError(f"rotation matrices must have shape (..., 2, 2), got {r.shape!r}")
        return np.arctan2(r[..., 1, 0] - r[..., 0, 1], r[..., 0, 0] + r[..., 1, 1])

    def compose(self, a: Any, b: Any) -> np.ndarray:
        """Angle of ``a∘b``, wrapped to ``[0, 2π)``."""
        return np.mod(_angles(a) + _angles(b), 2 * np.pi)

    def inverse(self, a: Any) -> np.ndarray:
        """Angle of the inverse, wrapped to ``[0, 2π)``."""
        return np.mod(-_angles(a), 2 * np.pi)

    def irrep(self, name: str | int) -> SO2Irrep:
        """The real irrep by name (``"A"``, ``"E1"``, ``"E2"``, ...) or frequency ``k >= 0``.

        Raises
        ------
        ValueError
            If the name is not ``"A"`` or ``"E{k}"`` with ``k >= 1``, or ``k < 0``.
        """
        if isinstance(name, str):
            if name == "A":
                return SO2Irrep(0)
            if name.startswith("E") and name[1:].isdigit() and int(name[1:]) >= 1:
                return SO2Irrep(int(name[1:]))
            raise ValueError(
                f"SO2 has no irrep {name!r}; irreps are 'A', 'E1', 'E2', ... (frequency k)"
            )
        return SO2Irrep(name)

    def irreps(self, max_degree: int | None = None) -> tuple[SO2Irrep, ...]:
        """Irreps of frequency ``0, 1, ..., max_degree`` (``"A"``, ``"E1"``, ...).

        Raises
        ------
        ValueError
            If ``max_degree`` is omitted: a continuous group has infinitely many irreps.
        """
        if max_degree is None:
            raise ValueError(
                "SO2 has infinitely many irreps; pass max_degree (the largest frequency)"
            )
        m = check_int(max_degree, "max_degree", minimum=0)
        return tuple(SO2Irrep(k) for k in range(m + 1))

    def sample(self, n: int, generator: Any = None) -> np.ndarray:
        """``n`` Haar-random angles, uniform on ``[0, 2π)``, float64 array of shape (n,)."""
        n = check_int(n, "number of elements n", minimum=0)
        return as_generator(generator).uniform(0.0, 2 * np.pi, size=n)

    def grid(self, n: int) -> np.ndarray:
        """``n`` uniform angles ``2πk/n``, ``k = 0..n-1``, shape (n,)."""
        n = check_int(n, "number of grid angles n", minimum=1)
        return 2 * np.pi * np.arange(n) / n

    def discretize(self, n: int) -> Cyclic:
        """The subgroup ``C_n`` of rotations by multiples of ``2π/n`` (element k at ``2πk/n``)."""
        return Cyclic(check_int(n, "number of grid angles n", minimum=1))
