"""Group elements acting on integer tokens: group-composition tasks and modular arithmetic.

One piece of logic moves tokens (:class:`_TokenAction`): an element ``k`` replaces the token
``t`` at each acted-on position by ``lookup[k][t]``, a permutation of the vocabulary.
:class:`GroupTokens` takes the lookup from any finite group's composition (``g∘t`` or
``t∘g⁻¹``); :class:`TokenShift` is its cyclic case (``(t + g) mod p``), with the direct
product of shifts at several positions as well.
"""

from __future__ import annotations

import dataclasses
import numbers
from typing import Any

import numpy as np
import torch

from latentgeo._validate import check_int
from latentgeo.actions._base import Action, as_tensor, like_input
from latentgeo.actions._spec import register

__all__ = ["GroupTokens", "TokenShift"]

_SIDES = ("left", "right")


def _positions_tuple(position: Any) -> tuple[int, ...]:
    pos = (position,) if isinstance(position, numbers.Integral) else position
    try:
        pos = tuple(pos)
    except TypeError:
        raise ValueError(f"position must be an int or a tuple of ints, got {position!r}") from None
    if not pos or not all(isinstance(q, numbers.Integral) and not isinstance(q, bool) for q in pos):
        raise ValueError(f"position must be an int or a tuple of ints, got {position!r}")
    pos = tuple(int(q) for q in pos)
    if len(set(pos)) != len(pos):
        raise ValueError(f"positions must be distinct, got {position!r}")
    return pos


def _integer_labels(y: Any) -> tuple[torch.Tensor, bool]:
    t, was_numpy = as_tensor(y, "y")
    if t.dtype == torch.bool or t.is_floating_point() or t.is_complex():
        raise TypeError(f"labels must be integers, got dtype {t.dtype}")
    return t, was_numpy


class _TokenAction(Action):
    """Shared token-moving logic: element ``k`` maps token ``t`` at position ``q`` to
    ``lookup[q][k, t]``.

    Subclasses (frozen dataclasses with a ``position`` tuple) give :meth:`_lookups`: one
    int64 array of shape (order, vocabulary) per acted-on position, each row a permutation
    of the vocabulary.
    """

    position: tuple[int, ...]

    def _lookups(self) -> tuple[np.ndarray, ...]:
        raise NotImplementedError

    @property
    def vocabulary(self) -> int:
        """Number of token values the acted-on positions may hold (``[0, vocabulary)``)."""
        return int(self._lookup_tensors(torch.device("cpu"))[0].shape[1])

    def _lookup_tensors(self, device: torch.device) -> tuple[torch.Tensor, ...]:
        # One host copy, cached; a device copy per device it is used on.
        cache = self._cached("_lookup_cache", dict)
        key = str(device)
        if key not in cache:
            host = cache.get("cpu")
            if host is None:
                # int32 halves the memory of a large group's table (S_7: 5040 x 5040)
                host = tuple(
                    torch.from_numpy(np.ascontiguousarray(a, dtype=np.int32))
                    for a in self._lookups()
                )
                cache["cpu"] = host
            cache[key] = tuple(t.to(device) for t in host)
        return cache[key]

    def _positions(self, seq_len: int) -> list[int]:
        out = []
        for q in self.position:
            if not -seq_len <= q < seq_len:
                raise ValueError(
                    f"position {q!r} is out of range for sequences of length {seq_len}"
                )
            out.append(q % seq_len)
        return out

    def _validate(self, x: torch.Tensor) -> None:
        name = type(self).__name__
        if x.dtype == torch.bool or x.is_floating_point() or x.is_complex():
            raise TypeError(f"{name} acts on integer token ids; got dtype {x.dtype}")
        if x.ndim < 1:
            raise ValueError(f"{name} needs sequences of shape (..., seq); got {tuple(x.shape)}")
        cols = x[..., self._positions(x.shape[-1])]
        v = self.vocabulary
        if cols.numel() and (int(cols.min()) < 0 or int(cols.max()) >= v):
            bad = cols[(cols < 0) | (cols >= v)]
            raise ValueError(
                f"tokens at positions {self.position} must lie in [0, {v}) (the elements of "
                f"{self.group.spec if hasattr(self.group, 'spec') else self.group}); "
                f"found {bad[:5].tolist()}"
            )

    def _act(self, k: int, x: torch.Tensor) -> torch.Tensor:
        out = x.clone()
        tables = self._lookup_tensors(x.device)
        for q, table in zip(self._positions(x.shape[-1]), tables):
            # in int64: the lookup indexes by token value; cast back to the token dtype
            out[..., q] = table[k][x[..., q].long()].to(x.dtype)
        return out

    def _orbit(self, t: torch.Tensor) -> torch.Tensor:
        # All elements at once: out[g, ..., q] = lookup[g, x[..., q]].
        out = t.unsqueeze(0).repeat((self.order,) + (1,) * t.ndim)
        tables = self._lookup_tensors(t.device)
        for q, table in zip(self._positions(t.shape[-1]), tables):
            out[..., q] = table[:, t[..., q].long()].to(t.dtype)
        return out


@register
@dataclasses.dataclass(frozen=True)
class GroupTokens(_TokenAction):
    """Elements of a finite group acting on the tokens that index group elements (exact).

    Token ``t`` at ``position`` stands for element ``t`` of ``group`` (its index, in the
    group's element order).  Element ``g`` maps it to ``g∘t`` (``side="left"``) or to
    ``t∘g⁻¹`` (``side="right"``); both are left actions,
    ``act(g, act(h, x)) == act(g∘h, x)``.  For the group-composition task ``x∘y = z`` with
    inputs ``[x, y]`` (Chughtai et al. 2023, "A toy model of universality"), the left action
    on position 0 moves the label to ``g∘z`` and the right action on the last position to
    ``z∘g⁻¹`` (:meth:`shift_label`).  :class:`TokenShift` is the cyclic case:
    ``GroupTokens(Cyclic(p), q)`` acts as ``TokenShift(p, q)``.

    Parameters
    ----------
    group : finite Group or str
        Any finite ``latentgeo.groups`` group (or its spec, e.g. ``"S4"``); it is asked only
        through the group protocol (``compose``, ``inverse``, ``order``).
    position : int or tuple of int
        Position(s) along the last axis (negative counts from the end); with several, the
        same element acts on each.
    side : {"left", "right"}
        Multiply on the left (``g∘t``) or on the right by the inverse (``t∘g⁻¹``).

    Raises
    ------
    ValueError
        For a continuous group, an unknown side, or positions that are not distinct ints.

    Examples
    --------
    >>> from latentgeo.groups import Symmetric
    >>> act = GroupTokens(Symmetric(3), position=0)
    >>> x = torch.tensor([[1, 2]])
    >>> act.orbit(x).shape
    torch.Size([6, 1, 2])
    """

    # A default only so that the field overrides Action's abstract ``group``; None is refused.
    group: Any = None
    position: Any = 0
    side: str = "left"

    def __post_init__(self) -> None:
        group = self.group
        if isinstance(group, str):
            from latentgeo import groups

            group = groups.parse(group)
        if not getattr(group, "is_finite", False) or not isinstance(
            getattr(group, "order", None), numbers.Integral
        ):
            raise ValueError(
                f"GroupTokens needs a finite group whose elements tokens can index, got {group!r}"
            )
        try:
            group.element_values()  # tokens index the elements: they must be enumerable
        except TypeError as err:
            raise ValueError(f"GroupTokens cannot index the elements of {group!r}: {err}") from None
        object.__setattr__(self, "group", group)
        object.__setattr__(self, "position", _positions_tuple(self.position))
        if self.side not in _SIDES:
            raise ValueError(f"side must be one of {_SIDES}, got {self.side!r}")

    def _lookups(self) -> tuple[np.ndarray, ...]:
        G = self.group
        idx = np.arange(int(G.order), dtype=np.int64)
        if self.side == "left":
            table = np.asarray(G.compose(idx[:, None], idx[None, :]), dtype=np.int64)  # g∘t
        else:
            inv = np.asarray(G.inverse(idx), dtype=np.int64)
            table = np.asarray(G.compose(idx[None, :], inv[:, None]), dtype=np.int64)  # t∘g⁻¹
        return (table,) * len(self.position)

    def shift_label(self, element: int | str, y: Any) -> Any:
        """The label of the acted-on input for the composition task ``x∘y = z``.

        With the left action on the first token, ``g·[x, y] = [g∘x, y]`` has label
        ``g∘z``; with the right action on the last token, ``[x, y∘g⁻¹]`` has label
        ``z∘g⁻¹``.

        Parameters
        ----------
        element : int or str
            Index or name of ``g``.
        y : integer tensor or array of shape (n,)
            Labels ``z`` (element indices) of the inputs before the action.

        Returns
        -------
        same kind as ``y``
            ``g∘z`` (side "left") or ``z∘g⁻¹`` (side "right").

        Raises
        ------
        ValueError
            If the action moves several positions, or (for a non-abelian group) acts on the
            left of a token other than the first or on the right of the first token: the
            label of the composition is then not a function of ``z``; or labels out of range.
        TypeError
            For non-integer labels.
        """
        if len(self.position) != 1:
            raise ValueError(
                f"shift_label needs a single acted-on position, got positions {self.position}"
            )
        q = self.position[0]
        abelian = bool(getattr(self.group, "is_abelian", False))
        if not abelian and ((self.side == "left" and q != 0) or (self.side == "right" and q == 0)):
            raise ValueError(
                f"the {self.side} action on position {q} of a non-abelian group does not move "
                "the label of x∘y: use side='left' on position 0 or side='right' on the last "
                "position"
            )
        k = self.element_index(element)
        t, was_numpy = _integer_labels(y)
        table = self._lookup_tensors(t.device)[0]
        if t.numel() and (int(t.min()) < 0 or int(t.max()) >= table.shape[1]):
            raise ValueError(
                f"labels must be element indices in [0, {table.shape[1]}); got values in "
                f"[{int(t.min())}, {int(t.max())}]"
            )
        return like_input(table[k][t.long()].to(t.dtype), was_numpy)

    def to_spec(self) -> dict[str, Any]:
        return {
            "type": "GroupTokens",
            "group": self.group.spec,
            "position": list(self.position),
            "side": self.side,
        }


@register
@dataclasses.dataclass(frozen=True)
class TokenShift(_TokenAction):
    """Add ``g`` modulo ``p`` to the tokens at chosen positions of integer sequences (exact).

    The cyclic case of :class:`GroupTokens` (``GroupTokens(Cyclic(p), position)`` acts the
    same way).  For inputs ``[a, b]`` of the task ``(a + b) mod p``, ``TokenShift(p, 0)``
    maps ``[a, b] -> [(a + g) mod p, b]`` (the group ``C_p``); the label moves with it:
    :meth:`shift_label` gives ``(y + g) mod p``.  With ``position=(0, 1)`` both tokens move by
    the same ``g`` (label ``(y + 2g) mod p``); with ``independent=True`` each listed position
    gets its own shift, the group being ``C_p × C_p (× ...)`` with element index
    ``i * p + j`` for shifts ``(i, j)`` (``DirectProduct`` order) and label ``y + i + j``.

    Parameters
    ----------
    p : int
        The modulus; tokens at the shifted positions must lie in ``[0, p)``.
    position : int or tuple of int
        Position(s) along the last axis (negative counts from the end).
    independent : bool
        Shift each position by its own element (direct product group).

    Examples
    --------
    >>> act = TokenShift(5, position=0)
    >>> act(2, torch.tensor([[4, 1]]))
    tensor([[1, 1]])
    """

    p: int
    position: Any = 0
    independent: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "p", check_int(self.p, "p", minimum=1))
        object.__setattr__(self, "position", _positions_tuple(self.position))
        object.__setattr__(self, "independent", bool(self.independent))

    @property
    def group(self) -> Any:
        return self._cached("_group", self._make_group)

    def _make_group(self) -> Any:
        from latentgeo.groups import Cyclic, DirectProduct, FiniteGroup

        if not self.independent or len(self.position) == 1:
            return Cyclic(self.p)
        g: FiniteGroup = Cyclic(self.p)
        for _ in self.position[1:]:
            g = DirectProduct(g, Cyclic(self.p))
        return g

    def _shift_table(self) -> np.ndarray:
        # (order, n_positions): the shift each element adds at each position.
        k = np.arange(self.order, dtype=np.int64)
        if not self.independent:
            return np.repeat(k[:, None], len(self.position), axis=1)
        digits = []
        for _ in self.position:  # mixed radix, last position fastest (DirectProduct order)
            k, r = np.divmod(k, self.p)
            digits.append(r)
        return np.stack(digits[::-1], axis=1)

    def _lookups(self) -> tuple[np.ndarray, ...]:
        shifts = self._shift_table()
        t = np.arange(self.p, dtype=np.int64)
        return tuple((shifts[:, i, None] + t[None, :]) % self.p for i in range(shifts.shape[1]))

    def shifts(self, element: int | str) -> tuple[int, ...]:
        """The shift added at each of :attr:`position` by ``element``."""
        k = self.element_index(element)
        return tuple(int(s) for s in self._shift_table()[k])

    def shift_label(self, element: int | str, y: Any) -> Any:
        """The label of the shifted input for the task ``(sum of tokens) mod p``.

        Parameters
        ----------
        element : int or str
        y : integer tensor or array of shape (n,)
            Labels ``(a + b) mod p`` of the unshifted inputs.

        Returns
        -------
        same kind as ``y``: ``(y + sum of shifts) mod p``.
        """
        t, was_numpy = _integer_labels(y)
        total = sum(self.shifts(element))
        return like_input(torch.remainder(t + total, self.p), was_numpy)

    def to_spec(self) -> dict[str, Any]:
        return {
            "type": "TokenShift",
            "p": self.p,
            "position": list(self.position),
            "independent": self.independent,
        }
