"""Shifts of integer tokens modulo ``p``: the action behind modular arithmetic."""

from __future__ import annotations

import dataclasses
import numbers
from typing import Any

import torch

from latentgeo.actions._base import Action, as_tensor, like_input

__all__ = ["TokenShift"]


@dataclasses.dataclass(frozen=True)
class TokenShift(Action):
    """Add ``g`` modulo ``p`` to the tokens at chosen positions of integer sequences (exact).

    For inputs ``[a, b]`` of the task ``(a + b) mod p``, ``TokenShift(p, 0)`` maps
    ``[a, b] -> [(a + g) mod p, b]`` (the group ``C_p``); the label moves with it:
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
        p = self.p
        if isinstance(p, bool) or not isinstance(p, numbers.Integral) or p < 1:
            raise ValueError(f"p must be a positive int, got {p!r}")
        object.__setattr__(self, "p", int(p))
        pos = self.position
        pos = (pos,) if isinstance(pos, numbers.Integral) else tuple(pos)
        if not pos or not all(
            isinstance(q, numbers.Integral) and not isinstance(q, bool) for q in pos
        ):
            raise ValueError(f"position must be an int or a tuple of ints, got {self.position!r}")
        pos = tuple(int(q) for q in pos)
        if len(set(pos)) != len(pos):
            raise ValueError(f"positions must be distinct, got {self.position!r}")
        object.__setattr__(self, "position", pos)
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

    def shifts(self, element: int | str) -> tuple[int, ...]:
        """The shift added at each of :attr:`position` by ``element``."""
        k = self.element_index(element)
        if not self.independent:
            return (k,) * len(self.position)
        out = []
        for _ in self.position:  # mixed radix, last position fastest (DirectProduct order)
            k, r = divmod(k, self.p)
            out.append(r)
        return tuple(reversed(out))

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
        if x.dtype == torch.bool or x.is_floating_point() or x.is_complex():
            raise TypeError(f"TokenShift acts on integer token ids; got dtype {x.dtype}")
        if x.ndim < 1:
            raise ValueError(
                f"TokenShift needs sequences of shape (..., seq); got {tuple(x.shape)}"
            )
        cols = x[..., self._positions(x.shape[-1])]
        if cols.numel() and (int(cols.min()) < 0 or int(cols.max()) >= self.p):
            bad = cols[(cols < 0) | (cols >= self.p)]
            raise ValueError(
                f"tokens at positions {self.position} must lie in [0, {self.p}); "
                f"found {bad[:5].tolist()}"
            )

    def _act(self, k: int, x: torch.Tensor) -> torch.Tensor:
        out = x.clone()
        pos = self._positions(x.shape[-1])
        for q, s in zip(pos, self.shifts(k)):
            if s:
                # in int64: x + s may overflow a narrow token dtype (int8/uint8) before the mod
                out[..., q] = torch.remainder(x[..., q].long() + s, self.p).to(x.dtype)
        return out

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
        t, was_numpy = as_tensor(y, "y")
        if t.dtype == torch.bool or t.is_floating_point() or t.is_complex():
            raise TypeError(f"labels must be integers, got dtype {t.dtype}")
        total = sum(self.shifts(element))
        return like_input(torch.remainder(t + total, self.p), was_numpy)

    def to_spec(self) -> dict[str, Any]:
        return {
            "type": "TokenShift",
            "p": self.p,
            "position": list(self.position),
            "independent": self.independent,
        }
