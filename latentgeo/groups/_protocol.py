"""The one protocol that every group in latentgeo implements, finite or continuous.

Probes, trajectories, actions and the run store ask a group only what this protocol
defines; none of them asks for a class name.  A finite group and a compact continuous group
differ in what they can enumerate, not in how they are asked:

========================  ====================================  ===============================
member                    finite group                           compact continuous group
========================  ====================================  ===============================
``spec``                  ``"D4"``, ``"S5"``, ...                ``"SO2"``, ``"SO3"``, ...
``is_finite``             ``True``                               ``False``
``order``                 number of elements                     ``None``
``identity``              index ``0``                            the identity element value
``elements``              tuple of element names                 ``TypeError`` (no enumeration)
``element_values()``      ``arange(order)`` (indices)            ``TypeError``
``sample(n, generator)``  uniform (Haar) random indices          Haar-random element values
``grid(n)``               all elements (exact quadrature)        a quadrature grid if one exists
``compose``/``inverse``   on indices or names                    on element values
``irreps(max_degree)``    all real irreps (degree ignored)       real irreps up to ``max_degree``
``irrep(name)``           the irrep of that name                 the irrep of that name
========================  ====================================  ===============================

An irrep, of either kind, has ``name``, ``dim``, ``type`` (Frobenius–Schur type of the
underlying complex irrep: ``"real"``, ``"complex"``, ``"quaternionic"``), ``degree`` (an
``int`` for continuous groups, ``None`` for finite ones), is called on element values to give
its matrices (shape ``(..., dim, dim)``, float64) and gives its characters through
``character_at(elements)``.  Real irreps are used throughout because latents are real.

The design follows escnn's single ``Group`` interface for finite and continuous groups
(``elements``/``grid``/``_combine``/``_inverse``), without its singleton caches.
"""

from __future__ import annotations

import abc
from typing import Any, Protocol, runtime_checkable

import numpy as np

__all__ = ["Group", "GroupIrrep", "as_generator"]


@runtime_checkable
class GroupIrrep(Protocol):
    """What every real irrep offers, of a finite group (:class:`~latentgeo.groups.Irrep`),
    SO(2) (:class:`~latentgeo.groups.SO2Irrep`) or a compact matrix group
    (:class:`~latentgeo.groups.MatrixIrrep`): the type of :meth:`Group.irreps`."""

    @property
    def name(self) -> str:
        """The irrep's name (``"A1"``, ``"E2"``, ``"D1"``...)."""

    @property
    def dim(self) -> int:
        """Its dimension."""

    @property
    def type(self) -> str:
        """Frobenius–Schur type of the underlying complex irrep: ``"real"``, ``"complex"``
        or ``"quaternionic"``."""

    @property
    def degree(self) -> int | None:
        """The degree (frequency, angular momentum) of a continuous group's irrep; ``None``
        for a finite group's."""

    def __call__(self, elements: Any, /) -> np.ndarray:
        """The matrices at element values, shape ``(..., dim, dim)``, float64."""

    def character_at(self, elements: Any, /) -> np.ndarray:
        """The characters (traces) at element values, shape ``(...)``."""


def as_generator(generator: Any) -> np.random.Generator:
    """A ``numpy.random.Generator`` from ``None`` (fresh entropy), an int seed or a Generator.

    Raises
    ------
    TypeError
        If ``generator`` is none of these.
    """
    if generator is None or (
        isinstance(generator, int | np.integer) and not isinstance(generator, bool)
    ):
        return np.random.default_rng(generator)
    if isinstance(generator, np.random.Generator):
        return generator
    raise TypeError(
        f"generator must be None, an int seed or a numpy.random.Generator, got {generator!r}"
    )


class Group(abc.ABC):
    """Abstract base of every group: the one protocol for finite and compact groups.

    Subclasses are immutable, hashable value objects whose :attr:`spec` is parsed back by
    :func:`latentgeo.groups.parse`.  See the module docstring for the table of members and
    what each means for finite and continuous groups.
    """

    __slots__ = ()

    #: Prefix of the short spec ``<prefix><digits>`` that :func:`latentgeo.groups.parse`
    #: turns into ``cls._from_spec_number(int(digits))`` (``"C"`` for ``"C8"``); ``None``
    #: when the class has no short spec (its ``repr`` is its spec).
    spec_prefix: str | None = None

    @classmethod
    def _from_spec_number(cls, n: int | None) -> Group:
        """The group of short spec ``<spec_prefix><n>`` (``n`` None when no digits follow).

        Raises
        ------
        ValueError
            If the number is missing or not accepted.
        """
        if n is None:
            raise ValueError(f"missing order after {cls.spec_prefix!r}")
        return cls(n)  # type: ignore[call-arg]

    # -- identity of the value object ---------------------------------------------------
    @property
    @abc.abstractmethod
    def spec(self) -> str:
        """Short string that :func:`latentgeo.groups.parse` turns back into this group."""

    @property
    @abc.abstractmethod
    def is_finite(self) -> bool:
        """Whether the group has finitely many elements."""

    @property
    def order(self) -> int | None:
        """Number of elements, or ``None`` for a continuous group."""
        return None

    @property
    def _label(self) -> str:
        spec = self.spec
        return spec if len(spec) <= 40 else f"a group of order {self.order}"

    # -- elements -----------------------------------------------------------------------
    @property
    @abc.abstractmethod
    def identity(self) -> Any:
        """The identity element (index 0 for finite groups, a value for continuous ones)."""

    @property
    def elements(self) -> tuple[str, ...]:
        """Element names, in index order (finite groups only).

        Raises
        ------
        TypeError
            For a continuous group, which has no enumeration: use :meth:`sample` or
            :meth:`grid`.
        """
        raise TypeError(
            f"{self._label} is continuous and has no list of elements; draw them with "
            "sample(n) (Haar measure) or grid(n)"
        )

    def element_values(self) -> np.ndarray:
        """All elements as values that :meth:`compose` and irreps accept (finite only).

        Returns
        -------
        int64 array of shape (order,)
            ``arange(order)``: element indices.

        Raises
        ------
        TypeError
            For a continuous group.
        """
        order = self.order
        if not self.is_finite or order is None:
            raise TypeError(
                f"{self._label} is continuous and has no list of element values; draw them "
                "with sample(n) (Haar measure) or grid(n)"
            )
        return np.arange(order, dtype=np.int64)

    @abc.abstractmethod
    def sample(self, n: int, generator: Any = None) -> np.ndarray:
        """``n`` elements drawn independently from the normalised Haar measure.

        Parameters
        ----------
        n : int
            Number of elements, ``>= 0``.
        generator : numpy.random.Generator or int, optional
            Source of randomness (an int is a seed); fresh entropy when omitted.

        Returns
        -------
        ndarray
            Element values, first axis of length ``n``: int64 indices for finite groups,
            float64 values (angles, matrices) for continuous ones.
        """

    def grid(self, n: int) -> np.ndarray:
        """A quadrature grid of ``n`` elements where the group has one.

        Raises
        ------
        NotImplementedError
            If the group has no grid of that size.
        """
        raise NotImplementedError(f"{self._label} has no quadrature grid of {n!r} elements")

    @abc.abstractmethod
    def compose(self, a: Any, b: Any) -> Any:
        """``a∘b``: apply ``b`` first, then ``a`` (broadcast over arrays of elements)."""

    @abc.abstractmethod
    def inverse(self, a: Any) -> Any:
        """The inverse of ``a`` (broadcast over arrays of elements)."""

    # -- representations ----------------------------------------------------------------
    @abc.abstractmethod
    def irreps(self, max_degree: int | None = None) -> tuple[GroupIrrep, ...]:
        """Real irreducible representations, the trivial irrep first.

        Parameters
        ----------
        max_degree : int, optional
            For a continuous group, the largest degree to include (required); a finite group
            returns all its irreps and ignores it.

        Returns
        -------
        tuple of irreps
            Each with ``name``, ``dim``, ``type``, ``degree``, called on element values.
        """

    def irrep_names(self, max_degree: int | None = None) -> tuple[str, ...]:
        """Names of :meth:`irreps`, in order."""
        return tuple(r.name for r in self.irreps(max_degree))

    def irrep(self, name: str) -> GroupIrrep:
        """The irrep called ``name``.

        Raises
        ------
        ValueError
            If no irrep has that name (the message lists valid ones).
        """
        names = self.irrep_names(None)
        for rho in self.irreps(None):
            if rho.name == name:
                return rho
        raise ValueError(f"{self._label} has no irrep {name!r}; irreps are {list(names)!r}")

    @property
    def trivial_irrep(self) -> GroupIrrep:
        """The trivial irrep (``irreps()[0]``)."""
        return self.irreps(0)[0]
