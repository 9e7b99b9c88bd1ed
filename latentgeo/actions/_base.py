"""The abstract :class:`Action` and what every action shares.

An action maps ``(element, x) -> x'`` for a whole batch ``x``.  Concrete actions only
implement :meth:`Action._act` on a torch tensor for one element index; everything else
(element names, numpy in/numpy out, orbits, random elements, the homomorphism check, specs)
lives here so that every action behaves the same way.
"""

from __future__ import annotations

import abc
import dataclasses
import numbers
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from latentgeo._errors import LatentgeoError
from latentgeo._validate import check_int, default_tolerance

if TYPE_CHECKING:
    from latentgeo.groups import Group

__all__ = ["Action", "ActionCheck", "ActionCheckError"]


class ActionCheckError(LatentgeoError, AssertionError):
    """Raised by :meth:`Action.check` when an action breaks the homomorphism law."""


@dataclasses.dataclass(frozen=True)
class ActionCheck:
    """Outcome of :meth:`Action.check`.

    Attributes
    ----------
    max_error : float
        Largest absolute error over the identity check and every checked pair,
        ``max |act(g, act(h, x)) - act(g∘h, x)|`` (inside ``mask`` where one was used).
    identity_error : float
        ``max |act(e, x) - x|``.
    homomorphism_error : float
        Largest error over the checked pairs ``(g, h)``.
    relative_error : float
        ``max_error / max |x|`` (``max_error`` itself when ``x`` is all zeros).
    worst_pair : tuple of str or None
        Names ``(g, h)`` of the pair with the largest error, None for a trivial group.
    n_pairs : int
        Number of pairs ``(g, h)`` checked (all ``order**2`` pairs for small groups).
    tolerance : float
        The tolerance ``atol + rtol * max |x|`` that ``max_error`` was compared with.
    passed : bool
        ``max_error <= tolerance``.
    exact : bool
        Whether the action claims to be exact (``action.exact``).
    """

    max_error: float
    identity_error: float
    homomorphism_error: float
    relative_error: float
    worst_pair: tuple[str, str] | None
    n_pairs: int
    tolerance: float
    passed: bool
    exact: bool

    def __getitem__(self, key: str) -> Any:
        # Dict-style access (``check["max_error"]``) for users who treat it as a record.
        if key not in self.as_dict():
            raise KeyError(f"{key!r} is not a field of ActionCheck; fields: {list(self.as_dict())}")
        return getattr(self, key)

    def as_dict(self) -> dict[str, Any]:
        """The result as a plain (JSON-serialisable) dict."""
        d = dataclasses.asdict(self)
        d["worst_pair"] = None if self.worst_pair is None else list(self.worst_pair)
        return d


def as_tensor(x: Any, name: str = "x") -> tuple[torch.Tensor, bool]:
    """Return ``(tensor, was_numpy)``; numpy arrays are wrapped without copying when possible."""
    if isinstance(x, torch.Tensor):
        return x, False
    if isinstance(x, np.ndarray):
        if x.dtype == object or x.dtype.kind not in "biufc":
            raise TypeError(f"{name} must hold numbers, got a numpy array of dtype {x.dtype!r}")
        # torch.from_numpy refuses negative strides (e.g. after np.flip): copy those.
        return torch.from_numpy(np.ascontiguousarray(x)), True
    raise TypeError(f"{name} must be a torch.Tensor or a numpy.ndarray, got {type(x).__name__!r}")


def like_input(t: torch.Tensor, was_numpy: bool) -> Any:
    """Return ``t`` as the kind of array the caller passed in."""
    return t.detach().cpu().numpy() if was_numpy else t


def check_settings(
    action: Action,
    t: torch.Tensor,
    max_pairs: Any,
    atol: float | None,
    rtol: float | None,
    mask: Any,
    strict: bool | None,
) -> tuple[float, float, bool, torch.Tensor | None]:
    """Validated settings of an action check: ``(atol, rtol, strict, mask)``.

    Tolerances default from ``t``'s dtype (:func:`latentgeo._validate.default_tolerance`, the
    one policy: exact for integer inputs), ``strict`` from
    ``action.exact``; ``mask`` becomes a bool tensor broadcastable to ``t.shape[1:]``.

    Raises
    ------
    TypeError
        If ``max_pairs`` is not an int.
    ValueError
        If ``max_pairs`` is not positive or ``mask`` does not broadcast.
    """
    check_int(max_pairs, "max_pairs", minimum=1)
    d_rtol, d_atol = default_tolerance(t.dtype)
    atol = d_atol if atol is None else float(atol)
    rtol = d_rtol if rtol is None else float(rtol)
    strict = action.exact if strict is None else bool(strict)
    if mask is not None:
        mask, _ = as_tensor(mask, "mask")
        mask = mask.to(device=t.device, dtype=torch.bool)
        try:
            torch.broadcast_shapes(mask.shape, t.shape[1:])
        except RuntimeError:
            raise ValueError(
                f"mask of shape {tuple(mask.shape)} does not broadcast to the sample "
                f"shape {tuple(t.shape[1:])}"
            ) from None
    return atol, rtol, strict, mask


def check_result(
    action: Action,
    t: torch.Tensor,
    identity_error: float,
    hom_error: float,
    worst: tuple[int, int] | None,
    n_pairs: int,
    atol: float,
    rtol: float,
    strict: bool,
) -> ActionCheck:
    """The :class:`ActionCheck` of measured errors (``worst`` a pair of element positions);
    raises :class:`ActionCheckError` when ``strict`` and over the tolerance."""
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


class Action(abc.ABC):
    """How a finite group acts on a batch of inputs.

    Subclasses are immutable value objects (frozen dataclasses): equal parameters give equal,
    equally hashed actions, and ``repr`` shows the parameters.  They implement
    :meth:`_act` for one element index on a torch tensor, :meth:`_validate` for the input
    shape/dtype, and :meth:`to_spec`.

    Conventions (see ``docs/interfaces.md``): ``act(g, act(h, x)) == act(G.compose(g, h), x)``,
    ``act(identity, x) == x``; an element is an index into ``group.elements`` or its name.
    """

    #: Whether the action is exact (moves entries only) or approximate (interpolates).
    exact: bool = True

    # -- to implement -----------------------------------------------------------------------
    @property
    @abc.abstractmethod
    def group(self) -> Group:
        """The group that acts (a ``latentgeo.groups`` group: finite for whole orbits, a
        compact matrix group for sampled elements)."""

    @abc.abstractmethod
    def _act(self, k: int, x: torch.Tensor) -> torch.Tensor:
        """Act with element index ``k`` on an already validated tensor ``x``."""

    @abc.abstractmethod
    def _validate(self, x: torch.Tensor) -> None:
        """Raise ValueError/TypeError if ``x`` cannot be acted on."""

    @abc.abstractmethod
    def to_spec(self) -> dict[str, Any]:
        """A JSON-serialisable dict that :func:`latentgeo.actions.from_spec` turns back into
        an equal action."""

    # -- shared behaviour --------------------------------------------------------------------
    def _cached(self, name: str, make: Any) -> Any:
        # Per-instance cache of derived values (the group, permutation tables): a frozen
        # dataclass still has a __dict__; these entries are not fields, so eq/hash ignore them.
        value = self.__dict__.get(name)
        if value is None:
            value = make()
            object.__setattr__(self, name, value)
        return value

    @property
    def order(self) -> int:
        """Number of orbit elements (the length of :meth:`orbit`'s first axis).

        The group's order when the orbit runs over the whole finite group (the default).
        """
        return len(self.element_values)

    @property
    def elements(self) -> tuple[str, ...]:
        """Element names along the orbit axis, in element order.

        For an orbit over the whole finite group, the group's element names.
        """
        return tuple(str(e) for e in self.group.elements)

    @property
    def element_values(self) -> np.ndarray:
        """The group elements along the orbit axis, as values the group's irreps accept.

        For an orbit over the whole finite group: ``arange(order)`` (element indices).
        Actions that act through a subset of a finite group's elements give those indices
        (identity first); actions of a continuous group give the sampled element values
        (float64, element 0 the identity).  Stored in the run store (``Run.element_values``).

        Returns
        -------
        ndarray of shape (n_elements, ...)
        """
        return self.group.element_values()

    def element_index(self, element: int | str | tuple[int, ...]) -> int:
        """The index of ``element`` (an index, a name, or for permutation groups a
        permutation tuple), with a clear error if unknown."""
        if isinstance(element, (bool, np.bool_)):
            raise TypeError(f"element must be an int index or a name, got {element!r}")
        if isinstance(element, numbers.Integral):
            k = int(element)
            if not 0 <= k < self.order:
                raise ValueError(
                    f"element index {element!r} is out of range for {self.group!r} "
                    f"(order {self.order}): expected 0 <= index < {self.order}"
                )
            return k
        if isinstance(element, str):
            names = self.elements
            if element in names:
                return names.index(element)
            shown = list(names[:24]) + (["..."] if len(names) > 24 else [])
            raise ValueError(
                f"unknown element name {element!r} of {self.group!r}; valid names: {shown}"
            )
        if isinstance(element, tuple):
            # A permutation in one-line form (SetPermutation): Symmetric groups index them,
            # subgroups given by permutations are named by their tuple.
            index = getattr(self.group, "index", None)  # finite groups only
            if index is not None:
                try:
                    return int(index(element))
                except (ValueError, TypeError):
                    pass
            try:
                return self.element_index(str(tuple(int(v) for v in element)))
            except (ValueError, TypeError):
                raise ValueError(f"{element!r} is not an element of {self.group!r}") from None
        if (
            isinstance(element, torch.Tensor)
            and element.numel() == 1
            and not element.is_floating_point()
        ):
            return self.element_index(int(element.item()))
        raise TypeError(f"element must be an int index or a name, got {element!r}")

    def __call__(self, element: int | str, x: Any) -> Any:
        """Act with ``element`` on the batch ``x`` (torch tensor or numpy array; same kind
        comes back)."""
        k = self.element_index(element)
        t, was_numpy = as_tensor(x)
        self._validate(t)
        return like_input(self._act(k, t), was_numpy)

    def orbit(self, x: Any) -> Any:
        """Every element applied to ``x``.

        Parameters
        ----------
        x : tensor or array of shape (n, ...)
            The batch.

        Returns
        -------
        tensor or array of shape (order, n, ...)
            ``out[g] = act(g, x)`` in element order (``out[0]`` is ``x`` itself).
        """
        t, was_numpy = as_tensor(x)
        self._validate(t)
        return like_input(self._orbit(t), was_numpy)

    def _orbit(self, t: torch.Tensor) -> torch.Tensor:
        return torch.stack([self._act(k, t) for k in range(self.order)])

    def sample(
        self, x: Any, *, generator: torch.Generator | None = None, seed: int | None = None
    ) -> tuple[Any, Any]:
        """Act on every sample with its own uniformly random element (data augmentation).

        Parameters
        ----------
        x : tensor or array of shape (n, ...)
            The batch; the first axis indexes samples.
        generator, seed : optional
            Source of randomness: a ``torch.Generator`` or a seed for a fresh one.  With
            neither, torch's global generator is used (as ``torch.randint`` would).

        Returns
        -------
        x_out : same kind as ``x``, shape (n, ...)
        elements : int64 tensor (or array) of shape (n,)
            The element index applied to each sample.
        """
        t, was_numpy = as_tensor(x)
        self._validate(t)
        if t.ndim < 1:
            raise ValueError(f"x must have a leading batch axis, got shape {tuple(t.shape)}")
        if generator is not None and seed is not None:
            raise ValueError("pass either generator= or seed=, not both")
        if seed is not None:
            generator = torch.Generator().manual_seed(int(seed))
        dev = generator.device if generator is not None else torch.device("cpu")
        ks = torch.randint(self.order, (t.shape[0],), generator=generator, device=dev)
        ks = ks.to(t.device)
        out = t.clone()
        for k in torch.unique(ks).tolist():
            idx = (ks == k).nonzero(as_tuple=True)[0]
            out[idx] = self._act(int(k), t[idx])
        return like_input(out, was_numpy), like_input(ks, was_numpy)

    def check(
        self,
        x: Any,
        *,
        max_pairs: int = 1024,
        seed: int = 0,
        atol: float | None = None,
        rtol: float | None = None,
        mask: Any = None,
        strict: bool | None = None,
    ) -> ActionCheck:
        """Verify on real data that this is a group action.

        Checks ``act(e, x) == x`` and ``act(g, act(h, x)) == act(g∘h, x)`` for all pairs
        ``(g, h)`` (a seeded random subset of ``max_pairs`` pairs when ``order**2`` is
        larger), and reports the largest absolute error.

        Parameters
        ----------
        x : tensor or array of shape (n, ...)
            Real inputs to act on.
        max_pairs : int
            Most pairs to check; all pairs are checked when ``order**2 <= max_pairs``.
        seed : int
            Seed for the random subset of pairs.
        atol, rtol : float, optional
            Tolerance ``atol + rtol * max|x|``; default from ``x``'s dtype (zero for integer
            data, ``40 * eps * max|x|`` for floats).
        mask : bool tensor or array broadcastable to ``x.shape[1:]``, optional
            Compare only where ``mask`` is true (e.g. a disc for interpolated rotations).
        strict : bool, optional
            Raise :class:`ActionCheckError` when the tolerance is exceeded.  Defaults to
            ``self.exact``: exact actions raise, approximate ones only flag ``passed=False``.

        Returns
        -------
        ActionCheck
        """
        t, _ = as_tensor(x)
        self._validate(t)
        atol, rtol, strict, mask = check_settings(self, t, max_pairs, atol, rtol, mask, strict)

        def err(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
            # Error per leading index of a stacked comparison (shape (m, n, ...) -> (m,)).
            d = (a.to(torch.float64) - b.to(torch.float64)).abs()
            if mask is not None:
                d = d * mask
            return d.flatten(1).amax(dim=1) if d.ndim > 1 else d

        orbit = self._orbit(t)  # (order, n, ...)
        identity = int(self.group.identity)
        identity_error = float(err(orbit[identity][None], t[None])[0]) if t.numel() else 0.0

        order = self.order
        from latentgeo.groups import FiniteGroup

        group = self.group
        if not isinstance(group, FiniteGroup):
            raise TypeError(
                f"{type(self).__name__}.check compares the whole orbit of a finite group; "
                f"{group!r} is not one (continuous actions check sampled elements)"
            )
        table = np.asarray(group.cayley_table)
        if order * order <= max_pairs:
            pairs = np.array([(g, h) for g in range(order) for h in range(order)], dtype=np.int64)
        else:
            rng = np.random.default_rng(seed)
            flat = rng.choice(order * order, size=max_pairs, replace=False)
            pairs = np.stack([flat // order, flat % order], axis=1)
        hom_error, worst = 0.0, None
        for g in np.unique(pairs[:, 0]):
            hs = pairs[pairs[:, 0] == g, 1]
            hs_t = torch.as_tensor(hs, device=t.device)
            gh_t = torch.as_tensor(table[g, hs], device=t.device)
            # act(g, .) on the stacked orbit slices at once: actions act on trailing axes.
            lhs = self._act(int(g), orbit[hs_t])
            e = err(lhs, orbit[gh_t]) if t.numel() else torch.zeros(len(hs))
            i = int(torch.argmax(e))
            if worst is None or float(e[i]) > hom_error:
                hom_error, worst = float(e[i]), (int(g), int(hs[i]))
        return check_result(
            self, t, identity_error, hom_error, worst, len(pairs), atol, rtol, strict
        )
