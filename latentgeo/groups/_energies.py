"""The result type of the group-Fourier core: energies of orbit signals per probe sample.

Shared by the finite-group path (:mod:`latentgeo.groups._fourier`) and the continuous one
(:mod:`latentgeo.groups._harmonic`); intervals resample its rows with
:func:`latentgeo._bootstrap.ratio_interval` and, where the orbit's elements are themselves a
random sample of the group (Haar-random elements of a continuous group), add the spread
over the draw of elements from a delete-one-element jackknife
(:func:`latentgeo._bootstrap.add_jackknife_variance`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

if TYPE_CHECKING:
    import torch

__all__ = ["ElementSample", "FallbackWarning", "OrbitEnergies", "check_orbit"]


class ElementSample(Protocol):
    """The orbit's elements as a random sample: the pooled energies with each left out."""

    def leave_one_out(self) -> tuple[np.ndarray | None, str | None]:
        """``(replicates of shape (n_elements, n_parts), None)`` or ``(None, why not)``."""
        ...


class FallbackWarning(UserWarning):
    """An estimator switched to a weaker one than asked for (lower degree, part of a group)."""


@dataclass(frozen=True)
class OrbitEnergies:
    """Energies of orbit signals in each isotypic part, per probe sample.

    Attributes
    ----------
    names : tuple of str
        The parts: irrep names (trivial first); continuous groups end with ``"residual"``, an
        orbit over a subset of elements has ``("invariant", "rest")``.
    energies : Tensor of shape (n_samples, n_parts)
        Energy of each sample's centred orbit signal (summed over units) in each part; rows
        sum to ``total``.  Debiased energies (continuous groups) may be slightly negative.
    total : Tensor of shape (n_samples,)
        Each sample's total centred energy.
    element_sample : ElementSample, optional
        Where the elements are a random sample of the group whose Haar integral the shares
        estimate (continuous groups at Haar-random elements): what the leave-one-element-out
        fits need (:class:`latentgeo.groups._element_jackknife.ElementJackknife`), evaluated
        only when an interval is asked for.  None where the sum over the elements is exact or is the
        estimand itself: a finite group's whole orbit, an orbit over a given set of
        elements, a quadrature grid of a continuous group.
    """

    names: tuple[str, ...]
    energies: torch.Tensor
    total: torch.Tensor
    element_sample: ElementSample | None = None

    @property
    def jackknife(self) -> np.ndarray | None:
        """Pooled energies (summed over samples) with each sampled element left out in turn,
        shape (n_elements, n_parts); None without an element sample or a leave-one-out fit."""
        return None if self.element_sample is None else self.element_sample.leave_one_out()[0]

    @property
    def jackknife_note(self) -> str | None:
        """Why the elements are a sample but no leave-one-out fit exists (too few elements,
        or one whose removal leaves the fit singular): :meth:`intervals` is then NaN and
        warns this text."""
        return None if self.element_sample is None else self.element_sample.leave_one_out()[1]

    @property
    def finite(self) -> bool:
        """Whether every energy is finite (non-finite latents give NaN everywhere)."""
        import torch

        return bool(torch.isfinite(self.energies).all())

    def shares(self) -> torch.Tensor:
        """Pooled share of each part: ``sum_i E[i, r] / sum_i total[i]``, in [0, 1], summing
        to 1 (negative pooled energies clamped at 0 and the rest renormalised); no variance at
        all gives the trivial part 1."""
        import torch

        pooled = self.energies.sum(dim=0).clamp_min(0.0)
        denom = pooled.sum()
        if not bool(torch.isfinite(denom)):
            return torch.full_like(pooled, float("nan"))
        if denom <= 0:
            out = torch.zeros_like(pooled)
            out[0] = 1.0
            return out
        return pooled / denom

    def invariance(self) -> float:
        """The trivial part's share (the invariant share of the centred variance)."""
        return float(self.shares()[0])

    def intervals(
        self,
        n_bootstrap: int,
        confidence: float,
        rng: np.random.Generator | None,
        counts: np.ndarray | None = None,
    ) -> np.ndarray:
        """Interval of every share: over resampled probe samples, and over the sampled
        elements where they are a random sample of the group.

        The percentile bootstrap over probe samples (:func:`latentgeo._bootstrap.ratio_interval`)
        holds the orbit's elements fixed.  Where they are Haar-random (``element_sample``), the
        shares also vary with the draw of elements (the Monte-Carlo error of the Haar
        integral); that variance, from the delete-one-element jackknife of the pooled shares,
        is added to the bootstrap's (:func:`latentgeo._bootstrap.add_jackknife_variance`).
        Finite groups' whole orbits and orbits over a given set of elements get the bootstrap
        alone (their sums over elements are exact).

        ``counts`` (``latentgeo._bootstrap.bootstrap_counts``) shares one set of resamples
        between several intervals; otherwise they are drawn from ``rng``.

        Returns
        -------
        float64 array of shape (n_parts, 2)
            NaN when ``n_bootstrap == 0``, the energies are not finite, or the elements are a
            sample too small for a leave-one-out fit (``jackknife_note``).

        Warns
        -----
        FallbackWarning
            With ``jackknife_note`` (its cause and how many elements an interval needs),
            when the interval is NaN for too few sampled elements.
        """
        import warnings

        from latentgeo._bootstrap import add_jackknife_variance, ratio_interval
        from latentgeo._errors import outside_stacklevel

        k = len(self.names)
        if not self.finite:
            return np.full((k, 2), np.nan)
        if n_bootstrap > 0 and self.jackknife_note is not None:
            warnings.warn(
                f"no interval for the shares: {self.jackknife_note}",
                FallbackWarning,
                stacklevel=outside_stacklevel(),
            )
            return np.full((k, 2), np.nan)
        boot = ratio_interval(
            self.energies, self.total, int(n_bootstrap), confidence, rng, counts=counts
        )
        if n_bootstrap == 0 or self.jackknife is None:
            return boot
        shares = self.shares().detach().cpu().numpy().astype(np.float64)
        return add_jackknife_variance(shares, boot, _pooled_shares(self.jackknife), confidence)


def _pooled_shares(pooled: np.ndarray) -> np.ndarray:
    """:meth:`OrbitEnergies.shares` of pooled energies, row by row (shape (m, n_parts))."""
    pos = np.clip(pooled, 0.0, None)
    denom = pos.sum(axis=1, keepdims=True)
    out = np.divide(pos, denom, out=np.zeros_like(pos), where=denom > 0)
    out[(denom <= 0)[:, 0], 0] = 1.0
    out[~np.isfinite(denom)[:, 0]] = np.nan
    return out


def check_orbit(Z: Any) -> torch.Tensor:
    """``Z`` as a tensor of shape (n_elements, n_samples >= 1, n_units), without a copy."""
    import torch

    src = Z if isinstance(Z, torch.Tensor) else torch.as_tensor(np.asarray(Z))
    if src.ndim != 3:
        raise ValueError(
            f"orbit latents must have shape (n_elements, n_samples, n_units), got "
            f"{tuple(src.shape)!r}"
        )
    if src.shape[1] == 0:
        raise ValueError("orbit latents hold no samples (n_samples == 0)")
    return src
