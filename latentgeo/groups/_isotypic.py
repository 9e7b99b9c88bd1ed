"""Isotypic energies and projections of functions on a finite group, from characters only.

For a real irrep ``rho`` (dimension ``D``, commutant dimension ``k``, real character ``psi``)
the isotypic projector of the left regular representation is
``P_rho = D / (k |G|) sum_x psi(x) L_x``, ``P_rho[g, h] = D / (k |G|) psi(g h^-1)``
(Serre, *Linear representations of finite groups*, §2.6, Theorem 8, for real characters).
Neither function here forms ``P_rho``:

- the energy ``sum_i ||P_rho f_i||^2 = <P_rho, Gram>`` of signals ``f_i`` with Gram matrix
  ``Gram[g, h] = sum_i f_i(g) f_i(h)`` is ``D / (k |G|) sum_c psi(c) s_c`` with the class sums
  ``s_c = sum_{x in C_c} sum_h Gram[x h, h]`` (one pass over the Gram matrix for all irreps);
- a projection ``(P_rho f)(g)`` is computed in row blocks of ``P_rho``, so memory stays
  ``O(block |G|)`` whatever the group's order.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import torch

__all__ = ["isotypic_energies", "project_isotypic"]

# Entries of a row block of the projector (memory: block * order floats).
_BLOCK_ENTRIES = 2**22


def _class_characters(group: Any) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Names, coefficients ``D / (k |G|)`` and characters by class, shape (n_irreps, n_classes)."""
    irreps = group.irreps()
    reps = np.array([c[0] for c in group.conjugacy_classes], dtype=np.int64)
    chars = np.stack([np.asarray(r.character_at(reps), dtype=np.float64) for r in irreps])
    coeff = np.array([r.dim / (r.commutant_dim * group.order) for r in irreps])
    return [r.name for r in irreps], coeff, chars


def isotypic_energies(group: Any, gram: torch.Tensor) -> tuple[list[str], torch.Tensor]:
    """Energy of signals on a finite group in each real irrep's isotypic component.

    Parameters
    ----------
    group : FiniteGroup
        Provides ``cayley_table``, ``conjugacy_classes`` and ``irreps()`` (their
        ``character_at``, ``dim`` and ``commutant_dim``).
    gram : Tensor of shape (order, order)
        ``gram[g, h] = sum_i f_i(g) f_i(h)`` over the signals ``f_i`` (element axis in the
        group's element order).

    Returns
    -------
    names : list of str
        Irrep names in ``group.irreps()`` order.
    energies : Tensor of shape (n_irreps,)
        ``sum_i ||P_rho f_i||^2``, same dtype and device as ``gram``; they sum to
        ``trace(gram)``.

    Raises
    ------
    ValueError
        If ``gram`` is not ``(order, order)``.
    """
    import torch

    n = group.order
    if tuple(gram.shape) != (n, n):
        raise ValueError(f"gram must have shape ({n}, {n}), got {tuple(gram.shape)!r}")
    names, coeff, chars = _class_characters(group)
    table = group.cayley_table
    cols = torch.arange(n, device=gram.device)
    sums = torch.zeros(len(group.conjugacy_classes), dtype=gram.dtype, device=gram.device)
    rows_per_block = max(1, _BLOCK_ENTRIES // n)
    for c, members in enumerate(group.conjugacy_classes):
        members = np.asarray(members, dtype=np.int64)
        for start in range(0, members.size, rows_per_block):
            # gram[x∘h, h] for x in the class: gather along the element axis.
            idx = torch.as_tensor(
                table[members[start : start + rows_per_block]], device=gram.device
            )
            sums[c] += gram[idx, cols[None, :]].sum()
    weights = torch.as_tensor(coeff[:, None] * chars, dtype=gram.dtype, device=gram.device)
    return names, weights @ sums


def project_isotypic(group: Any, irrep: Any, f: torch.Tensor) -> torch.Tensor:
    """``P_rho f`` along the first (element) axis, without forming ``P_rho`` whole.

    Parameters
    ----------
    group : FiniteGroup
    irrep : Irrep
        One of ``group.irreps()``.
    f : Tensor of shape (order, ...)
        Signals on the group, element axis first.

    Returns
    -------
    Tensor of the shape, dtype and device of ``f``
        ``(P_rho f)[g] = D / (k |G|) sum_h psi(g h^-1) f[h]``.
    """
    import torch

    n = group.order
    if f.shape[0] != n:
        raise ValueError(f"f must have {n} elements along axis 0, got shape {tuple(f.shape)!r}")
    psi = np.asarray(irrep.character_at(group.element_values()), dtype=np.float64)
    coeff = irrep.dim / (irrep.commutant_dim * n)
    table, inverses = group.cayley_table, group.inverses
    flat = f.reshape(n, -1)
    out = torch.empty_like(flat)
    rows = max(1, _BLOCK_ENTRIES // n)
    for start in range(0, n, rows):
        block = coeff * psi[table[start : start + rows][:, inverses]]  # psi(g h^-1)
        out[start : start + rows] = torch.as_tensor(block, dtype=f.dtype, device=f.device) @ flat
    return out.reshape(f.shape)
