"""Permutations of set elements and graph nodes."""

from __future__ import annotations

import ast
import dataclasses
import itertools
import numbers
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from latentgeo._validate import check_int
from latentgeo.actions._base import Action
from latentgeo.actions._spec import register

if TYPE_CHECKING:
    from latentgeo.groups import FiniteGroup

__all__ = ["SetPermutation"]

_KINDS = {"set": (-2,), "graph": (-2, -1), "sequence": (-1,)}


def _as_permutation(p: Any, n: int) -> tuple[int, ...]:
    if isinstance(p, str):
        try:
            p = ast.literal_eval(p)
        except (ValueError, SyntaxError):
            raise ValueError(f"cannot read a permutation from {p!r}") from None
    try:
        perm = tuple(int(v) for v in p)
    except TypeError:
        raise ValueError(f"a permutation must be a sequence of ints, got {p!r}") from None
    if sorted(perm) != list(range(n)):
        raise ValueError(f"{p!r} is not a permutation of range({n})")
    return perm


def permute_axes(x: torch.Tensor, perm: np.ndarray, axes: tuple[int, ...]) -> torch.Tensor:
    """Move item ``i`` to place ``perm[i]`` along each of ``axes`` (negative): ``y[perm[i]] =
    x[i]``, i.e. ``y[j] = x[perm⁻¹[j]]``; shared by every action that permutes items."""
    inv = torch.as_tensor(np.argsort(perm), device=x.device)
    for a in axes:
        x = x.index_select(x.ndim + a, inv)
    return x


def _group_permutations(group: FiniteGroup, n: int) -> np.ndarray:
    """Permutation (as an int array of shape (order, n)) of every element of ``group``,
    consistent with its Cayley table under ``(a∘b)(i) = a(b(i))``."""
    perms = getattr(group, "permutations", None)
    if perms is None:
        perms = group.elements
    P = np.array([_as_permutation(p, n) for p in perms], dtype=np.int64)
    table = np.asarray(group.cayley_table)
    # Tuples can be read as "i maps to p[i]" or as its inverse; take the one the table obeys.
    for cand in (P, np.argsort(P, axis=1)):
        # composed[a, b, i] = cand[a][cand[b][i]], the permutation of a∘b
        composed = cand[np.arange(len(cand))[:, None, None], cand[None, :, :]]
        if np.array_equal(composed, cand[table]):
            return cand
    raise ValueError(f"the elements of {group!r} are not permutations matching its Cayley table")


@register
@dataclasses.dataclass(frozen=True)
class SetPermutation(Action):
    """Permutations of the elements of sets or the nodes of graphs (exact).

    Element ``σ`` (a permutation, ``σ[i]`` the new place of item ``i``) moves item ``i`` to
    position ``σ[i]`` along every acted-on axis: ``y[σ[i]] = x[i]`` for sets (batch, n,
    features), ``A'[σ[i], σ[j]] = A[i, j]`` (``P A Pᵀ``) for adjacency matrices (batch, n, n).
    Thus ``act(σ, act(τ, x)) == act(σ∘τ, x)`` with ``(σ∘τ)[i] = σ[τ[i]]``.

    Parameters
    ----------
    n : int
        Number of set elements / nodes (``n <= 5`` for the full symmetric group).
    kind : {"set", "graph", "sequence"}
        Which axes are permuted: ``"set"`` the axis -2 of (..., n, features); ``"graph"`` the
        last two axes of (..., n, n); ``"sequence"`` the last axis of (..., n).
    axes : tuple of int, optional
        Negative axes to permute, instead of ``kind``.
    permutations : sequence of permutations, optional
        A permutation group (closed under composition, identity first) to use instead of
        the whole ``Symmetric(n)``, e.g. ``[(0, 1, 2), (1, 2, 0), (2, 0, 1)]`` for ``C_3``.

    Examples
    --------
    >>> act = SetPermutation(3, kind="graph")
    >>> act.orbit(torch.eye(3)[None]).shape
    torch.Size([6, 1, 3, 3])
    """

    n: int
    kind: str = "set"
    axes: Any = None
    permutations: Any = None

    def __post_init__(self) -> None:
        n = check_int(self.n, "n", minimum=1)
        object.__setattr__(self, "n", n)
        if self.kind not in _KINDS:
            raise ValueError(f"kind must be one of {sorted(_KINDS)}, got {self.kind!r}")
        if self.axes is None:
            object.__setattr__(self, "axes", _KINDS[self.kind])
        else:
            axes = (self.axes,) if isinstance(self.axes, numbers.Integral) else tuple(self.axes)
            if not axes or not all(isinstance(a, numbers.Integral) and a < 0 for a in axes):
                raise ValueError(
                    f"axes must be negative ints (counted from the end, so a batch axis may "
                    f"lead), got {self.axes!r}"
                )
            if len(set(axes)) != len(axes):
                raise ValueError(f"axes must be distinct, got {self.axes!r}")
            object.__setattr__(self, "axes", tuple(int(a) for a in axes))
        if self.permutations is None:
            if n > 5:
                raise ValueError(
                    f"the full symmetric group S_{n} is too large to act by orbits (n <= 5); "
                    "pass permutations= for a subgroup"
                )
        else:
            if isinstance(self.permutations, (str, bytes)) or not isinstance(
                self.permutations, (Sequence, np.ndarray)
            ):
                raise TypeError(
                    f"permutations must be a sequence of permutations, got {self.permutations!r}"
                )
            perms = tuple(_as_permutation(p, n) for p in self.permutations)
            if not perms or perms[0] != tuple(range(n)):
                raise ValueError(f"the first permutation must be the identity, got {perms[:1]!r}")
            if len(set(perms)) != len(perms):
                raise ValueError("permutations must be distinct")
            known = set(perms)
            for a, b in itertools.product(perms, perms):
                ab = tuple(a[i] for i in b)
                if ab not in known:
                    raise ValueError(
                        f"permutations are not closed under composition: {a}∘{b} = {ab} is missing"
                    )
            object.__setattr__(self, "permutations", perms)

    @property
    def group(self) -> Any:
        return self._cached("_group", self._make_group)

    def _make_group(self) -> Any:
        from latentgeo import groups

        if self.permutations is None:
            return groups.Symmetric(self.n)
        perms = self.permutations
        index = {p: i for i, p in enumerate(perms)}
        table = np.array(
            [[index[tuple(a[i] for i in b)] for b in perms] for a in perms], dtype=np.int64
        )
        return groups.FiniteGroup.from_cayley_table(table, names=[str(p) for p in perms])

    @property
    def permutation_array(self) -> np.ndarray:
        """int64 array of shape (order, n): row ``g`` is the permutation of element ``g``."""
        if self.permutations is not None:
            return np.array(self.permutations, dtype=np.int64)
        return _group_permutations(self.group, self.n)

    def _validate(self, x: torch.Tensor) -> None:
        if x.ndim < max(-a for a in self.axes):
            raise ValueError(
                f"SetPermutation(kind={self.kind!r}, axes={self.axes}) needs at least "
                f"{max(-a for a in self.axes)} axes; got shape {tuple(x.shape)}"
            )
        for a in self.axes:
            if x.shape[a] != self.n:
                raise ValueError(
                    f"SetPermutation(n={self.n}) permutes axis {a} of size {self.n}; "
                    f"got shape {tuple(x.shape)}"
                )

    def _act(self, k: int, x: torch.Tensor) -> torch.Tensor:
        return permute_axes(x, self._perms[k], self.axes)

    @property
    def _perms(self) -> np.ndarray:
        return self._cached("_perms_cache", lambda: self.permutation_array)

    def to_spec(self) -> dict[str, Any]:
        return {
            "type": "SetPermutation",
            "n": self.n,
            "axes": list(self.axes),
            "kind": self.kind,
            "permutations": None
            if self.permutations is None
            else [list(p) for p in self.permutations],
        }
