"""Real irreducible representations of finite groups as value objects."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from latentgeo._validate import check_int

__all__ = ["IRREP_TYPES", "Irrep", "commutant_dimension"]

#: Frobenius–Schur types of the complex irreducible underlying a real irrep, with the
#: dimension ``k`` of the real commutant (R, C or H) that each type gives.
IRREP_TYPES: dict[str, int] = {"real": 1, "complex": 2, "quaternionic": 4}
_TYPE_OF_K = {k: t for t, k in IRREP_TYPES.items()}


def _readonly(a: np.ndarray) -> np.ndarray:
    a = np.array(a, dtype=np.float64, copy=True)
    a.flags.writeable = False
    return a


def _element_indices(elements: Any, order: int) -> Any:
    idx = np.asarray(elements)
    if idx.dtype == object or not np.issubdtype(idx.dtype, np.integer):
        raise TypeError(f"irreps of finite groups take integer element indices, got {elements!r}")
    if idx.size and (idx.min() < 0 or idx.max() >= order):
        raise ValueError(f"element indices must lie in range(0, {order}), got {elements!r}")
    return idx


def commutant_dimension(character: np.ndarray) -> int:
    """Dimension of the real commutant of a real irrep, read off its character.

    For a real irreducible representation ``rho`` with real character ``chi``,
    ``(1/|G|) sum_g chi(g)^2 = <chi, chi>`` is the dimension of its commutant: 1 when the
    underlying complex irrep is real, 2 when ``rho`` is the realification of a complex
    irrep of complex type, and 4 for quaternionic type.

    Parameters
    ----------
    character : array of shape (order,)
        Real character values.

    Returns
    -------
    int
        The rounded value of ``mean(chi**2)``.

    Raises
    ------
    ValueError
        If the value is not within ``1e-6`` of 1, 2 or 4 (the character is not the
        character of a real irreducible representation).
    """
    chi = np.asarray(character, dtype=np.float64)
    norm = float(np.mean(chi * chi))
    k = round(norm)
    if k not in _TYPE_OF_K or abs(norm - k) > 1e-6:
        raise ValueError(
            f"character has squared norm {norm!r}; a real irreducible representation has "
            "squared norm 1, 2 or 4"
        )
    return k


@dataclass(frozen=True, eq=False)
class Irrep:
    """A real irreducible representation of a finite group.

    Parameters
    ----------
    name : str
        Name, unique within its group (for example ``"A1"``, ``"E2"``, ``"[2,1]"``).
    dim : int
        Real dimension ``d``.
    matrices : array of shape (order, d, d)
        ``matrices[g]`` is the (orthogonal) matrix of element ``g``, indexed like the
        group's elements; stored as a read-only float64 copy.
    character : array of shape (order,)
        Traces of ``matrices``; stored as a read-only float64 copy.
    type : {"real", "complex", "quaternionic"}
        Frobenius–Schur type of the complex irreducible underlying the real irrep: a real
        irrep of ``"complex"`` type is the realification of a complex irrep ``chi`` that is
        not equivalent to its conjugate (``character = chi + conj(chi)``); one of
        ``"quaternionic"`` type is the realification of a quaternionic complex irrep
        (``character = 2 chi``).

    Notes
    -----
    Irreps are immutable and hashable; two irreps are equal when their names, types and
    matrices are equal.  Use :meth:`from_matrices` to build one from its matrices alone.

    Examples
    --------
    >>> import numpy as np
    >>> sign = Irrep.from_matrices("B", np.array([[[1.0]], [[-1.0]]]))
    >>> sign.type, sign.character.tolist()
    ('real', [1.0, -1.0])
    """

    name: str
    dim: int
    matrices: np.ndarray = field(repr=False)
    character: np.ndarray = field(repr=False)
    type: str

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise TypeError(f"irrep name must be a non-empty str, got {self.name!r}")
        check_int(self.dim, "irrep dim", minimum=1)
        if self.type not in IRREP_TYPES:
            raise ValueError(f"irrep type must be one of {tuple(IRREP_TYPES)}, got {self.type!r}")
        mats = _readonly(self.matrices)
        if mats.ndim != 3 or mats.shape[1:] != (self.dim, self.dim):
            raise ValueError(
                f"irrep {self.name!r}: matrices must have shape (order, {self.dim}, "
                f"{self.dim}), got {mats.shape!r}"
            )
        chi = _readonly(self.character)
        if chi.shape != (mats.shape[0],):
            raise ValueError(
                f"irrep {self.name!r}: character must have shape ({mats.shape[0]},), "
                f"got {chi.shape!r}"
            )
        object.__setattr__(self, "dim", int(self.dim))
        object.__setattr__(self, "matrices", mats)
        object.__setattr__(self, "character", chi)

    @classmethod
    def from_matrices(cls, name: str, matrices: Any, type: str | None = None) -> Irrep:
        """Build an irrep from its matrices; character and (if not given) type follow.

        Parameters
        ----------
        name : str
            Irrep name.
        matrices : array_like of shape (order, d, d)
            Representation matrices.
        type : {"real", "complex", "quaternionic"}, optional
            Frobenius–Schur type; read off the character norm when omitted.

        Returns
        -------
        Irrep
        """
        mats = np.asarray(matrices, dtype=np.float64)
        if mats.ndim != 3 or mats.shape[1] != mats.shape[2]:
            raise ValueError(
                f"irrep {name!r}: matrices must have shape (order, d, d), got {mats.shape!r}"
            )
        chi = np.trace(mats, axis1=1, axis2=2)
        if type is None:
            type = _TYPE_OF_K[commutant_dimension(chi)]
        return cls(name, mats.shape[1], mats, chi, type)

    @property
    def degree(self) -> None:
        """``None``: irreps of finite groups have no degree (continuous groups' irreps do)."""
        return None

    def __call__(self, elements: Any) -> np.ndarray:
        """Matrices at element indices, shape ``elements.shape + (dim, dim)``, float64.

        Raises
        ------
        ValueError
            If an index lies outside ``range(order)``.
        """
        idx = _element_indices(elements, self.order)
        return self.matrices[idx]

    def character_at(self, elements: Any) -> np.ndarray:
        """Characters at element indices, shape ``elements.shape``, float64."""
        return self.character[_element_indices(elements, self.order)]

    @property
    def order(self) -> int:
        """Order of the group the irrep represents."""
        return int(self.matrices.shape[0])

    @property
    def commutant_dim(self) -> int:
        """Real dimension ``k`` of the commutant: 1, 2 or 4 for real/complex/quaternionic."""
        return IRREP_TYPES[self.type]

    @property
    def multiplicity_in_regular(self) -> int:
        """Number of copies of this irrep in the real regular representation, ``dim / k``."""
        return self.dim // self.commutant_dim

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Irrep):
            return NotImplemented
        return (
            self.name == other.name
            and self.type == other.type
            and self.dim == other.dim
            and np.array_equal(self.matrices, other.matrices)
        )

    def __hash__(self) -> int:
        return hash((self.name, self.type, self.dim, self.matrices.tobytes()))

    def __repr__(self) -> str:
        return f"Irrep(name={self.name!r}, dim={self.dim}, type={self.type!r}, order={self.order})"
