"""Irrep multiplicities of fitted maps from their characters."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from probes._validation import as_orbit_tensor, check_group_order, irrep_type_dim

if TYPE_CHECKING:
    import xarray as xr

    from latentgeo.groups import FiniteGroup

__all__ = ["character_multiplicities"]


def character_multiplicities(rho: Any, group: FiniteGroup) -> xr.DataArray:
    """Soft multiplicity of every real irrep in a family of fitted maps.

    ``m_ρ = (1 / (k_ρ |G|)) Σ_g χ_ρ(g) tr rho(g)``, with ``k_ρ`` the dimension of the irrep's
    commutant (1, 2, 4 for real, complex, quaternionic type): for an exact representation
    ``⊕ m_ρ ρ`` this is the integer ``m_ρ`` (real characters satisfy
    ``⟨χ_ρ, χ_σ⟩ = k_ρ δ_ρσ``).  Fitted maps that are shrunk or noisy give non-integer
    values; nothing is rounded.

    Parameters
    ----------
    rho : array-like or Tensor of shape (n_elements, n_units, n_units)
        Maps in the group's element order.
    group : FiniteGroup
        Supplies ``irreps`` with ``character`` and ``type``.

    Returns
    -------
    xarray.DataArray of shape (n_irreps,)
        Dim ``"irrep"`` (irrep names).  ``Σ_ρ m_ρ dim_ρ`` equals ``tr rho(e)``: for maps
        fitted by the probes this is the dimension of the latents' numerical span (``rank_``),
        not ``n_units`` — the fitted maps vanish off the span, where the data do not determine
        them, so the multiplicities describe the representation on the span.

    Examples
    --------
    >>> from latentgeo.groups import Cyclic
    >>> from probes import character_multiplicities
    >>> G = Cyclic(3)
    >>> m = character_multiplicities(G.regular_representation(), G)
    >>> [round(float(v), 9) for v in m]   # trivial once, the 2-D real irrep once (dim/k = 1)
    [1.0, 1.0]
    """
    import xarray as xr

    R = as_orbit_tensor(rho, name="rho")
    check_group_order(R.shape[0], group, name="rho")
    if R.shape[1] != R.shape[2]:
        raise ValueError(f"rho must hold square matrices, got shape {tuple(R.shape)}")
    traces = R.diagonal(dim1=1, dim2=2).sum(dim=1).cpu().numpy()  # (G,)
    names, values = [], []
    for irrep in group.irreps():
        chi = np.asarray(irrep.character, dtype=np.float64)
        k = irrep_type_dim(irrep)
        names.append(irrep.name)
        values.append(float(chi @ traces) / (k * group.order))
    return xr.DataArray(
        np.asarray(values),
        dims=("irrep",),
        coords={"irrep": np.asarray(names, dtype=object)},
        name="multiplicity",
    )
