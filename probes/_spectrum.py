"""Fit-free probes: invariance and the orbit (group-Fourier) power spectrum."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from probes._validation import as_orbit_tensor, check_group_order

if TYPE_CHECKING:
    import xarray as xr

__all__ = ["invariance", "orbit_spectrum"]


def _centred(Z: torch.Tensor) -> torch.Tensor:
    # Centre by the grand mean over elements and samples: the mean latent is not structure.
    return Z - Z.mean(dim=(0, 1), keepdim=True)


def invariance(Z: Any, *, device: Any = None, dtype: torch.dtype = torch.float64) -> float:
    """Fraction of the centred variance of the latents that is invariant under the group.

    The invariant part of a sample's orbit signal ``g ↦ z(g·x)`` is its orbit mean; the
    fraction is ``Σ_{units} |G| Σ_i ‖m_i − μ‖² / Σ_{units} Σ_{g,i} ‖z(g·x_i) − μ‖²`` with ``m_i``
    the orbit mean and ``μ`` the grand mean, i.e. per-unit fractions aggregated with weights
    proportional to each unit's variance.  It equals the trivial irrep's share of
    :func:`orbit_spectrum`.

    Parameters
    ----------
    Z : array-like or Tensor of shape (n_elements, n_samples, n_units)
        Orbit latents over all group elements (or a uniform grid of a continuous group).
    device : torch.device or str, optional
    dtype : torch.dtype

    Returns
    -------
    float in [0, 1]
        1 for an invariant layer; 0 when every orbit has the grand mean as its mean.  A layer
        with no variance at all returns 1 (nothing varies, so nothing breaks invariance).

    Examples
    --------
    >>> import numpy as np
    >>> from probes import invariance
    >>> z = np.random.default_rng(0).normal(size=(100, 4))
    >>> invariance(np.stack([z, z, z]))
    1.0
    >>> round(invariance(np.stack([z, -z])), 12)
    0.0
    """
    return invariance_of_centred(_centred(as_orbit_tensor(Z, dtype=dtype, device=device)))


def invariance_of_centred(Zc: torch.Tensor) -> float:
    """:func:`invariance` of latents already centred by their grand mean (no copy made)."""
    # vector_norm reduces without a second (n_elements, n_samples, n_units) temporary.
    total = torch.linalg.vector_norm(Zc) ** 2
    if total <= 0:
        return 1.0
    inv = Zc.shape[0] * torch.linalg.vector_norm(Zc.mean(dim=0)) ** 2
    return float((inv / total).clamp(0.0, 1.0))


def orbit_spectrum(
    Z: Any, group: Any, *, device: Any = None, dtype: torch.dtype = torch.float64
) -> xr.DataArray:
    """Share of the centred variance of the orbit signal in each real irrep's isotypic part.

    For each sample and unit, the orbit signal ``f(g) = z(g·x) − μ`` is a function on the group;
    the isotypic projectors of the regular representation split it into orthogonal parts, one
    per real irrep (for a cyclic group this is the discrete Fourier transform over the orbit,
    with frequencies ``k`` and ``n − k`` pooled into one real irrep).  The spectrum is the
    energy of each part summed over samples and units, divided by the total.

    Parameters
    ----------
    Z : array-like or Tensor of shape (n_elements, n_samples, n_units)
        Orbit latents, element axis in the group's element order.
    group : FiniteGroup
        Provides ``irreps()`` (names, characters), ``conjugacy_classes`` and
        ``cayley_table``; the energies come from characters and class sums of the orbit's
        Gram matrix (:func:`latentgeo.groups.isotypic_energies`), so no ``|G| x |G|``
        projector is formed.  For ``SO2`` the element
        axis is taken as a uniform grid of angles ``2πk/n`` and the spectrum is over integer
        frequencies ``0, 1, ..., n // 2``, named as the group's irreps (``"A"``, ``"E1"``, ...).
    device : torch.device or str, optional
    dtype : torch.dtype

    Returns
    -------
    xarray.DataArray of shape (n_irreps,)
        Dim ``"irrep"`` with the irrep names as coordinates, summing to 1; the trivial irrep's
        share equals :func:`invariance`.

    Examples
    --------
    >>> import numpy as np
    >>> from latentgeo.groups import Cyclic
    >>> from probes import orbit_spectrum
    >>> z = np.random.default_rng(0).normal(size=(50, 3))
    >>> spec = orbit_spectrum(np.stack([z, -z]), Cyclic(2))
    >>> float(spec.sum())
    1.0
    """
    import xarray as xr

    Zt = as_orbit_tensor(Z, dtype=dtype, device=device)
    if not is_circle_group(group):
        check_group_order(Zt.shape[0], group)
    names, fractions = spectrum_of_centred(_centred(Zt), group)
    return xr.DataArray(
        fractions.cpu().numpy(),
        dims=("irrep",),
        coords={"irrep": np.asarray(names, dtype=object)},
        name="spectrum",
    )


def is_circle_group(group: Any) -> bool:
    """True for a continuous group (the protocol's ``is_finite`` is False).

    Its orbit axis is taken as a uniform grid of angles ``2πk/n`` of a one-parameter group.
    """
    return not group.is_finite


def spectrum_of_centred(Zc: torch.Tensor, group: Any) -> tuple[list[str], torch.Tensor]:
    """Irrep names and spectrum of latents already centred by their grand mean."""
    if is_circle_group(group):
        return _circle_spectrum(Zc, group)
    check_group_order(Zc.shape[0], group)
    return _finite_spectrum(Zc, group)


def _finite_spectrum(Zc: torch.Tensor, group: Any) -> tuple[list[str], torch.Tensor]:
    from latentgeo.groups._isotypic import isotypic_energies

    flat = Zc.reshape(Zc.shape[0], -1)  # (G, n·d): every (sample, unit) is one orbit signal
    # ‖P f‖² = fᵀ P f for an orthogonal projector, so only the Gram matrix over the element
    # axis is needed (|G|² n d once); the energies then come from characters and class sums
    # of the Gram matrix (|G|² in all), never from |G| x |G| projectors per irrep.
    gram = flat @ flat.T  # (G, G)
    names, energy = isotypic_energies(group, gram)
    total = torch.trace(gram)
    if total <= 0:
        # No variance: everything is (trivially) invariant.
        out = torch.zeros(len(names), dtype=Zc.dtype, device=Zc.device)
        out[0] = 1.0
        return names, out
    return names, (energy / total).clamp_min(0.0)


def _circle_spectrum(Zc: torch.Tensor, group: Any) -> tuple[list[str], torch.Tensor]:
    n = Zc.shape[0]
    F = torch.fft.rfft(Zc, dim=0)  # (n // 2 + 1, samples, units)
    power = (F.abs() ** 2).sum(dim=(1, 2))
    # Parseval for the real FFT: interior frequencies stand for k and n − k.
    weight = torch.full_like(power, 2.0)
    weight[0] = 1.0
    if n % 2 == 0:
        weight[-1] = 1.0
    power = power * weight
    total = power.sum()
    names = list(group.irrep_names(power.numel() - 1))
    if total <= 0:
        out = torch.zeros_like(power)
        out[0] = 1.0
        return names, out
    return names, power / total
