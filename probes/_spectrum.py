"""Fit-free probes: invariance and the orbit (group-Fourier) power spectrum.

Both are thin callers of the group-Fourier core (:mod:`latentgeo.groups._fourier`): the
per-sample isotypic energies of the orbit, pooled over samples.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from latentgeo.groups import OrbitEnergies, orbit_energies
from probes._validation import as_orbit_tensor, check_group_order

if TYPE_CHECKING:
    import xarray as xr

    from latentgeo.groups import Group

__all__ = ["invariance", "orbit_energies_of", "orbit_spectrum"]


def invariance(
    Z: Any,
    group: Group | None = None,
    elements: Any = None,
    max_degree: int | None = None,
    *,
    device: Any = None,
    dtype: torch.dtype = torch.float64,
) -> float:
    """Fraction of the centred variance of the latents that is invariant under the group.

    The invariant part of a sample's orbit signal ``g ↦ z(g·x)`` is its orbit mean; the
    fraction is ``Σ_{units} |G| Σ_i ‖m_i − μ‖² / Σ_{units} Σ_{g,i} ‖z(g·x_i) − μ‖²`` with ``m_i``
    the orbit mean and ``μ`` the grand mean, i.e. per-unit fractions aggregated with weights
    proportional to each unit's variance.  It equals the trivial irrep's share of
    :func:`orbit_spectrum`.  For a continuous group (``group`` given, ``group.is_finite`` False)
    the orbit mean is the Haar mean of the harmonic fit, and the fraction is the trivial
    irrep's share of :func:`orbit_spectrum` (see there).

    Parameters
    ----------
    Z : array-like or Tensor of shape (n_elements, n_samples, n_units)
        Orbit latents over all group elements (a finite group) or sampled elements.
    group : group, optional
        Needed only for a continuous group (with ``elements``).
    elements : array of shape (n_elements, ...), optional
        Element values of the element axis (continuous groups: required).
    max_degree : int, optional
        Degree of the harmonic fit (continuous groups); see :func:`orbit_spectrum`.
    device : torch.device or str, optional
    dtype : torch.dtype

    Returns
    -------
    float in [0, 1]
        1 for an invariant layer; 0 when every orbit has the grand mean as its mean.  A layer
        with no variance at all returns 1 (nothing varies, so nothing breaks invariance).

    Raises
    ------
    TypeError
        For a continuous group without ``elements``.

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
    if group is not None and not group.is_finite:
        return _energies(Z, group, elements, max_degree, dtype, device).invariance()
    # Finite group or none: the orbit mean over the recorded elements (a whole finite orbit's
    # trivial irrep, without its characters).
    return _energies(Z, None, None, None, dtype, device).invariance()


def orbit_energies_of(
    Z: torch.Tensor,
    group: Group | None,
    elements: Any = None,
    max_degree: int | None = None,
    dtype: torch.dtype | None = None,
) -> OrbitEnergies:
    """The core's per-sample energies of a probe block, with the probes' own checks (finite
    groups: every element in order), accumulated in ``dtype`` (default ``Z.dtype``)."""
    if group is not None and group.is_finite:
        check_group_order(Z.shape[0], group)
    # Point estimates only (orbit_spectrum, invariance): no element Gram matrix.
    return orbit_energies(
        Z, group, elements, max_degree, dtype=dtype or Z.dtype, element_sample=False
    )


def _validated(Z: Any, dtype: torch.dtype, device: Any) -> torch.Tensor:
    """``Z`` as an orbit tensor without a converted copy (the core converts a chunk of samples
    at a time to ``dtype``); anything unusual goes through :func:`as_orbit_tensor`, which
    raises the documented errors.  Finiteness is checked by :func:`_energies` afterwards."""
    if isinstance(Z, torch.Tensor):
        t = Z.detach()
    else:
        arr = np.asarray(Z.data if hasattr(Z, "dims") else Z)
        if arr.dtype.kind not in "fiu" or not arr.flags.writeable:
            return as_orbit_tensor(Z, dtype=dtype, device=device)
        t = torch.as_tensor(arr)
    if t.is_complex() or t.dtype == torch.bool or t.ndim != 3 or 0 in t.shape:
        return as_orbit_tensor(Z, dtype=dtype, device=device)
    return t if device is None else t.to(device)


def _energies(
    Z: Any,
    group: Group | None,
    elements: Any,
    max_degree: int | None,
    dtype: torch.dtype,
    device: Any,
) -> OrbitEnergies:
    """The core's energies of validated latents; non-finite latents raise as documented."""
    energies = orbit_energies_of(_validated(Z, dtype, device), group, elements, max_degree, dtype)
    if not energies.finite:
        as_orbit_tensor(Z, dtype=dtype, device=device)  # raises ValueError naming the bad values
    return energies


def orbit_spectrum(
    Z: Any,
    group: Group,
    elements: Any = None,
    max_degree: int | None = None,
    *,
    device: Any = None,
    dtype: torch.dtype = torch.float64,
) -> xr.DataArray:
    """Share of the centred variance of the orbit signal in each real irrep's isotypic part.

    For each sample and unit, the orbit signal ``f(g) = z(g·x) − μ`` is a function on the
    group.  For a finite group the isotypic projectors of the regular representation split it
    into orthogonal parts, one per real irrep (for a cyclic group this is the discrete Fourier
    transform over the orbit, with frequencies ``k`` and ``n − k`` pooled into one real irrep).
    For a continuous group (SO(2), O(2), SO(3), O(3)) the orbit is known at sampled elements
    and the parts come from harmonic least squares in the irreps' matrix entries up to
    ``max_degree`` (:mod:`latentgeo.groups._fourier`): the orbit is centred by its Haar mean,
    each irrep's share is the Haar norm of its fitted component, the invariant share is the
    spread over samples of each orbit's Haar mean (unbiased for Haar-random elements at any
    number of them: the U-statistic, not the plain element mean), and ``"residual"`` is the
    share the fit leaves.  On a uniform grid of SO(2) this
    equals the discrete Fourier transform with the frequencies above ``max_degree`` pooled in
    ``"residual"``.  The spectrum is each part's energy summed over samples and units, over
    the total.

    Parameters
    ----------
    Z : array-like or Tensor of shape (n_elements, n_samples, n_units)
        Orbit latents, element axis in the group's element order (finite groups) or at the
        element values ``elements`` (continuous groups).
    group : group
        Any group of the protocol (``latentgeo.groups``).
    elements : array of shape (n_elements, ...), optional
        Element values along ``Z``'s element axis: required for a continuous group
        (``action.element_values``, ``run.element_values``); for a finite group ``None`` or
        ``arange(order)``.
    max_degree : int, optional
        Continuous groups: the largest irrep degree fitted.  Default: the largest (at most 4)
        with at least 2 sampled elements per basis function on each component of the group;
        a default below 4, or a larger value than the sample supports, warns
        (``latentgeo.groups.FallbackWarning``) with the numbers.
    device : torch.device or str, optional
    dtype : torch.dtype

    Returns
    -------
    xarray.DataArray of shape (n_irreps,)
        Dim ``"irrep"`` with the irrep names as coordinates (continuous groups: up to
        ``max_degree``, then ``"residual"``), summing to 1; the trivial irrep's share equals
        :func:`invariance`.

    Raises
    ------
    TypeError
        For a continuous group without ``elements``.
    ValueError
        If the element axis does not match the group (finite) or ``elements``.

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

    energies = _energies(Z, group, elements, max_degree, dtype, device)
    return xr.DataArray(
        energies.shares().cpu().numpy(),
        dims=("irrep",),
        coords={"irrep": np.asarray(energies.names, dtype=object)},
        name="spectrum",
    )
