"""The symmetric group on ``n`` points for ``n`` too large to enumerate: permutations as values."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from latentgeo._validate import check_int

from ._protocol import Group, as_generator
from ._registry import GROUPS

__all__ = ["Permutations"]


@GROUPS.register
class Permutations(Group):
    """All permutations of ``{0, ..., n-1}``, held as values, not enumerated.

    For ``n`` beyond what :class:`Symmetric` tabulates (``n!`` elements: S_50 has about
    3e64), elements are int64 arrays of shape ``(..., n)`` in one-line form (``p[i]`` the
    image of ``i``), composed as maps, ``(a∘b)[i] = a[b[i]]``.  The group is finite but has no
    element list, no Cayley table and no irreps computed here: record a fixed random subset
    of it (:class:`latentgeo.actions.RandomPermutations`) and compute spectra on a finite
    subgroup that subset contains (``probes.run(..., subgroup=...)``).

    Parameters
    ----------
    n : int
        Number of points, ``>= 1``.

    Examples
    --------
    >>> G = Permutations(50)
    >>> p = G.sample(2, generator=0)
    >>> bool((G.compose(p[0], G.inverse(p[0])) == G.identity).all())
    True
    """

    __slots__ = ("n",)
    n: int

    def __init__(self, n: int) -> None:
        object.__setattr__(self, "n", check_int(n, "number of points n", minimum=1))

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"Permutations is immutable; cannot set {name!r}")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Permutations):
            return NotImplemented
        return self.n == other.n

    def __hash__(self) -> int:
        return hash(("Permutations", self.n))

    def __repr__(self) -> str:
        return f"Permutations({self.n})"

    def __reduce__(self) -> tuple:
        return (Permutations, (self.n,))

    @property
    def spec(self) -> str:
        """``"Permutations(n)"``, which :func:`latentgeo.groups.parse` reads back."""
        return repr(self)

    @property
    def is_finite(self) -> bool:
        """``True`` (``n!`` elements)."""
        return True

    @property
    def order(self) -> int:
        """``n!`` (a Python int; exact however large)."""
        return math.factorial(self.n)

    @property
    def identity(self) -> np.ndarray:
        """``arange(n)``."""
        return np.arange(self.n, dtype=np.int64)

    @property
    def elements(self) -> tuple[str, ...]:
        """Not available: raises TypeError (``n!`` elements are not listed)."""
        raise TypeError(
            f"{self!r} has {self.order} elements, too many to list; draw them with sample(n)"
        )

    def element_values(self) -> np.ndarray:
        """Not available: raises TypeError (``n!`` elements are not listed)."""
        raise TypeError(
            f"{self!r} has {self.order} elements, too many to list; draw them with sample(n)"
        )

    def check(self, p: Any) -> np.ndarray:
        """``p`` as an int64 array of permutations of shape (..., n).

        Raises
        ------
        ValueError
            If the last axis is not ``n`` long or a row is not a permutation of ``range(n)``.
        """
        a = np.asarray(p)
        if a.dtype.kind not in "iu" or a.ndim < 1 or a.shape[-1] != self.n:
            raise ValueError(
                f"permutations of {self.n} points must be an int array of shape (..., {self.n}), "
                f"got {a.dtype} of shape {a.shape}"
            )
        a = a.astype(np.int64, copy=False)
        if not (np.sort(a, axis=-1) == np.arange(self.n)).all():
            raise ValueError(f"not every row is a permutation of range({self.n})")
        return a

    def sample(self, n: int, generator: Any = None) -> np.ndarray:
        """``n`` uniformly random permutations (the Haar measure), int64 of shape (n, self.n)."""
        n = check_int(n, "number of elements n", minimum=0)
        rng = as_generator(generator)
        return np.argsort(rng.random((n, self.n)), axis=1).astype(np.int64)

    def compose(self, a: Any, b: Any) -> np.ndarray:
        """``a∘b`` (``b`` first): ``out[..., i] = a[..., b[..., i]]``, broadcast."""
        a, b = self.check(a), self.check(b)
        a, b = np.broadcast_arrays(a, b)
        return np.take_along_axis(a, b, axis=-1)

    def inverse(self, a: Any) -> np.ndarray:
        """The inverse permutations (``argsort`` along the last axis)."""
        return np.argsort(self.check(a), axis=-1).astype(np.int64)

    def irreps(self, max_degree: int | None = None) -> tuple[Any, ...]:
        """Not computed: raises NotImplementedError naming the way round it."""
        raise NotImplementedError(
            f"the irreps of {self!r} (order {self.order}) are not computed; compute spectra on "
            "a finite subgroup that the recorded elements contain (probes.run(subgroup=...))"
        )
