"""Fit-free probes: invariance and the orbit (group-Fourier) power spectrum."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from probes._harmonic import harmonic_spectrum
from probes._subsets import resolved_subgroup
from probes._validation import as_orbit_tensor, check_group_order

if TYPE_CHECKING:
    import xarray as xr

    from probes._settings import RunSettings

__all__ = ["invariance", "orbit_spectrum", "subgroup_spectrum"]


def _centred(Z: torch.Tensor) -> torch.Tensor:
    # Centre by the grand mean over elements and samples: the mean latent is not structure.
    return Z - Z.mean(dim=(0, 1), keepdim=True)


def invariance(
    Z: Any,
    group: Any = None,
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
    Zt = as_orbit_tensor(Z, dtype=dtype, device=device)
    if group is not None and not group.is_finite:
        values = continuous_elements(group, elements, Zt.shape[0])
        # The harmonic fit centres chunk by chunk: no centred copy of Z.
        return float(harmonic_spectrum(Zt, group, values, max_degree)[1][0])
    return invariance_of_centred(_centred(Zt))


def continuous_elements(group: Any, elements: Any, n_elements: int) -> np.ndarray:
    """The element values a continuous group's probes need, checked against ``Z``.

    Raises
    ------
    TypeError
        If ``elements`` is None.
    ValueError
        If its first axis does not have ``n_elements`` entries.
    """
    if elements is None:
        raise TypeError(
            f"{group!r} is continuous: pass elements=, the element values along Z's element "
            "axis (e.g. action.element_values or run.element_values)"
        )
    values = np.asarray(elements, dtype=np.float64)
    if values.shape[:1] != (n_elements,):
        raise ValueError(
            f"elements has shape {values.shape!r} but Z has {n_elements} elements along axis 0"
        )
    return values


def invariance_of_centred(Zc: torch.Tensor) -> float:
    """:func:`invariance` of latents already centred by their grand mean (no copy made)."""
    # vector_norm reduces without a second (n_elements, n_samples, n_units) temporary.
    total = torch.linalg.vector_norm(Zc) ** 2
    if total <= 0:
        return 1.0
    inv = Zc.shape[0] * torch.linalg.vector_norm(Zc.mean(dim=0)) ** 2
    return float((inv / total).clamp(0.0, 1.0))


def orbit_spectrum(
    Z: Any,
    group: Any,
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
    ``max_degree`` (:mod:`probes._harmonic`): each irrep's share is the Haar norm of its fitted
    component, the invariant share is the spread over samples of each orbit's fitted Haar
    mean, and ``"residual"`` is the share the fit leaves.  On a uniform grid of SO(2) this
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
        a larger value warns with the numbers.
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

    Zt = as_orbit_tensor(Z, dtype=dtype, device=device)
    if group.is_finite:
        check_group_order(Zt.shape[0], group)
        if elements is not None and not np.array_equal(
            np.asarray(elements), np.arange(group.order)
        ):
            raise ValueError(
                f"elements of a finite group's orbit must be None or arange({group.order}) "
                f"(every element, in order), got {elements!r}"
            )
    # The harmonic fit (continuous groups) centres chunk by chunk: no centred copy of Z.
    Zc = _centred(Zt) if group.is_finite else Zt
    names, fractions = spectrum_of_centred(Zc, group, elements, max_degree)
    return xr.DataArray(
        fractions.cpu().numpy(),
        dims=("irrep",),
        coords={"irrep": np.asarray(names, dtype=object)},
        name="spectrum",
    )


def spectrum_of_centred(
    Zc: torch.Tensor, group: Any, elements: Any = None, max_degree: int | None = None
) -> tuple[list[str], torch.Tensor]:
    """Irrep names and spectrum of latents already centred by their grand mean.

    Continuous groups need ``elements`` (the element values) and take ``max_degree``
    (:func:`probes._harmonic.harmonic_spectrum`); their names end with ``"residual"``.
    """
    if not group.is_finite:
        values = continuous_elements(group, elements, Zc.shape[0])
        return harmonic_spectrum(Zc, group, values, max_degree)
    check_group_order(Zc.shape[0], group)
    return _finite_spectrum(Zc, group)


def _finite_spectrum(Zc: torch.Tensor, group: Any) -> tuple[list[str], torch.Tensor]:
    from latentgeo.groups import isotypic_energies

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


def subgroup_spectrum(Zt: torch.Tensor, group: Any, settings: RunSettings) -> np.ndarray:
    """The spectrum of one (layer, step): on ``settings.subgroup`` when present (the
    latents of its elements, re-centred by their own mean), else on ``group``."""
    sub = settings.subgroup
    if sub is None:
        return spectrum_of_centred(Zt, group)[1].cpu().numpy()
    Zs = Zt[torch.as_tensor(sub["positions"], device=Zt.device)]
    Zs = Zs - Zs.mean(dim=(0, 1))
    return spectrum_of_centred(Zs, resolved_subgroup(sub))[1].cpu().numpy()
