"""What compact matrix groups (O(2), SO(3), O(3)) share: element validation, composition,
irreps by name, and the irrep value object."""

from __future__ import annotations

import abc
from typing import Any

import numpy as np

from latentgeo._validate import check_int

from ._protocol import Group

__all__ = ["MatrixGroup", "MatrixIrrep"]

#: Largest deviation of ``gᵀg`` from the identity accepted for an element value.
ORTHOGONALITY_TOL = 1e-6


class MatrixIrrep:
    """A real irrep of a compact matrix group, evaluated on element values (matrices).

    Parameters
    ----------
    group : MatrixGroup
        The group it represents.
    name : str
        Its name within the group (``"2"`` for SO(3), ``"1o"`` for O(3), ``"E3"`` for O(2)).

    Notes
    -----
    Immutable and hashable; equal when group and name are equal.  ``dim``, ``degree`` and
    ``type`` come from the group; every irrep here is absolutely irreducible
    (``type == "real"``).
    """

    __slots__ = ("_dim", "degree", "group", "name")
    group: MatrixGroup
    name: str
    degree: int
    _dim: int

    def __init__(self, group: MatrixGroup, name: str) -> None:
        dim, degree = group._irrep_shape(name)
        object.__setattr__(self, "group", group)
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "_dim", dim)
        object.__setattr__(self, "degree", degree)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable; cannot set {name!r}")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, MatrixIrrep):
            return NotImplemented
        return self.group == other.group and self.name == other.name

    def __hash__(self) -> int:
        return hash((self.group, self.name))

    def __repr__(self) -> str:
        return f"{self.group!r}.irrep({self.name!r})"

    def __reduce__(self) -> tuple:
        return (MatrixIrrep, (self.group, self.name))

    @property
    def dim(self) -> int:
        """Real dimension ``d``."""
        return self._dim

    @property
    def type(self) -> str:
        """``"real"``: these irreps stay irreducible over the complex numbers."""
        return "real"

    def __call__(self, elements: Any) -> np.ndarray:
        """Orthogonal matrices at element values, shape ``elements.shape[:-2] + (d, d)``.

        Raises
        ------
        ValueError
            If the values are not elements of the group (shape, orthogonality, determinant).
        """
        g = self.group.check_elements(elements)
        return self.group._irrep_matrices(self.name, g)

    def character_at(self, elements: Any) -> np.ndarray:
        """Traces at element values, shape ``elements.shape[:-2]``, float64 (closed forms)."""
        g = self.group.check_elements(elements)
        return self.group._irrep_character(self.name, g)


class MatrixGroup(Group):
    """Base of compact groups whose element values are ``n × n`` orthogonal matrices.

    Subclasses give :attr:`n`, whether reflections are included, the irrep names per degree
    and the matrices/characters; everything else (validation, composition, inversion, names,
    value-object behaviour) lives here.
    """

    __slots__ = ()

    #: Matrix size of an element value.
    n: int = 3
    #: Whether elements of determinant −1 belong to the group.
    reflections: bool = False

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, MatrixGroup):
            return NotImplemented
        return type(self) is type(other)

    def __hash__(self) -> int:
        return hash(self.spec)

    def __repr__(self) -> str:
        return f"{self.spec}()"

    def __reduce__(self) -> tuple:
        return (type(self), ())

    @property
    def is_finite(self) -> bool:
        """``False``."""
        return False

    @property
    def identity(self) -> np.ndarray:
        """The identity matrix, float64 of shape (n, n)."""
        return np.eye(self.n)

    def check_elements(self, values: Any) -> np.ndarray:
        """Element values as a float64 array of shape (..., n, n), validated.

        Raises
        ------
        TypeError
            If the values are not numeric.
        ValueError
            If the shape is not (..., n, n), a value is not finite, not orthogonal
            (``‖gᵀg − I‖ > 1e-6``) or, for a rotation group, has determinant −1.
        """
        arr = np.asarray(values)
        if arr.dtype == object or arr.dtype.kind not in "biuf":
            raise TypeError(f"{self.spec} elements must be numeric matrices, got {values!r}")
        g = arr.astype(np.float64, copy=False)
        if g.ndim < 2 or g.shape[-2:] != (self.n, self.n):
            raise ValueError(
                f"{self.spec} elements must be {self.n}x{self.n} matrices of shape "
                f"(..., {self.n}, {self.n}), got shape {g.shape!r}"
            )
        if not np.all(np.isfinite(g)):
            raise ValueError(f"{self.spec} elements must be finite")
        if g.size:
            err = np.abs(np.swapaxes(g, -1, -2) @ g - np.eye(self.n)).max()
            if err > ORTHOGONALITY_TOL:
                raise ValueError(
                    f"{self.spec} elements must be orthogonal matrices; |gᵀg − I| reaches "
                    f"{err:.3g} (tolerance {ORTHOGONALITY_TOL})"
                )
            if not self.reflections and np.linalg.det(g).min() < 0:
                raise ValueError(
                    f"{self.spec} elements must be rotations (determinant +1); got a "
                    "reflection (determinant −1)"
                )
        return g

    def compose(self, a: Any, b: Any) -> np.ndarray:
        """``a∘b`` = the matrix product ``a @ b`` (broadcast), shape (..., n, n)."""
        return self.check_elements(a) @ self.check_elements(b)

    def inverse(self, a: Any) -> np.ndarray:
        """The inverse, the transpose ``aᵀ`` (broadcast), shape (..., n, n)."""
        return np.swapaxes(self.check_elements(a), -1, -2).copy()

    def sign(self, values: Any) -> np.ndarray:
        """The determinant ``±1`` of element values, shape ``values.shape[:-2]``."""
        return np.where(np.linalg.det(self.check_elements(values)) < 0, -1.0, 1.0)

    # -- irreps ---------------------------------------------------------------------------
    @abc.abstractmethod
    def _names_of_degree(self, degree: int) -> tuple[str, ...]:
        """Irrep names of one degree, in order."""

    @abc.abstractmethod
    def _irrep_shape(self, name: str) -> tuple[int, int]:
        """``(dim, degree)`` of the irrep ``name``; ValueError naming valid forms if unknown."""

    @abc.abstractmethod
    def _irrep_matrices(self, name: str, g: np.ndarray) -> np.ndarray:
        """Matrices of irrep ``name`` at validated element values."""

    @abc.abstractmethod
    def _irrep_character(self, name: str, g: np.ndarray) -> np.ndarray:
        """Characters of irrep ``name`` at validated element values."""

    def irreps(self, max_degree: int | None = None) -> tuple[MatrixIrrep, ...]:
        """Real irreps of degree ``0, 1, ..., max_degree``, the trivial irrep first.

        Raises
        ------
        ValueError
            If ``max_degree`` is omitted: a continuous group has infinitely many irreps.
        """
        if max_degree is None:
            raise ValueError(
                f"{self.spec} has infinitely many irreps; pass max_degree (the largest degree)"
            )
        m = check_int(max_degree, "max_degree", minimum=0)
        return tuple(
            MatrixIrrep(self, name) for d in range(m + 1) for name in self._names_of_degree(d)
        )

    def irrep(self, name: str) -> MatrixIrrep:
        """The irrep called ``name``.

        Raises
        ------
        ValueError
            If ``name`` is not an irrep name of this group (the message gives the forms).
        TypeError
            If ``name`` is not a str.
        """
        if not isinstance(name, str):
            raise TypeError(f"irrep name must be a str, got {name!r}")
        return MatrixIrrep(self, name)

    def n_harmonics(self, max_degree: int) -> int:
        """Number of matrix-entry functions ``Σ d²`` of the irreps up to ``max_degree``."""
        return sum(r.dim**2 for r in self.irreps(max_degree))


def parse_degree(name: str, prefix: str, suffixes: tuple[str, ...], minimum: int) -> Any:
    """``(degree, suffix)`` if ``name`` is ``prefix + digits + suffix``, else ``None``."""
    if not name.startswith(prefix):
        return None
    rest = name[len(prefix) :]
    for suffix in suffixes:
        if rest.endswith(suffix):
            digits = rest[: len(rest) - len(suffix)] if suffix else rest
            if digits.isdigit() and not (len(digits) > 1 and digits[0] == "0"):
                if int(digits) >= minimum:
                    return int(digits), suffix
    return None
