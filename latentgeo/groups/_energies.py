"""The result type of the group-Fourier core: energies of orbit signals per probe sample.

Shared by the finite-group path (:mod:`latentgeo.groups._fourier`) and the continuous one
(:mod:`latentgeo.groups._harmonic`); intervals resample its rows with
:func:`latentgeo._bootstrap.ratio_interval`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import torch

__all__ = ["FallbackWarning", "OrbitEnergies", "check_orbit"]


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
    """

    names: tuple[str, ...]
    energies: torch.Tensor
    total: torch.Tensor

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
        """Percentile bootstrap interval of every share over resampled probe samples.

        ``counts`` (``latentgeo._bootstrap.bootstrap_counts``) shares one set of resamples
        between several intervals; otherwise they are drawn from ``rng``.

        Returns
        -------
        float64 array of shape (n_parts, 2)
            NaN when ``n_bootstrap == 0`` or the energies are not finite.
        """
        from latentgeo._bootstrap import ratio_interval

        if not self.finite:
            return np.full((len(self.names), 2), np.nan)
        return ratio_interval(
            self.energies, self.total, int(n_bootstrap), confidence, rng, counts=counts
        )


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
