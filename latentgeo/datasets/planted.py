"""Synthetic orbit latents with a planted representation, for testing probes against truth.

``z(g·x) = Q (⊕ irreps with multiplicities) Qᵀ z(x) + noise``: the latents of the
untransformed inputs are Gaussian with a chosen variance per irrep copy, every element acts by
an exactly known orthogonal representation ``rho(g)`` in a random orthonormal basis ``Q``, and
independent Gaussian noise (the non-equivariant part) is added to the latents of every
non-identity element.  The returned truth holds everything a probe should recover.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from latentgeo._validate import check_int

if TYPE_CHECKING:
    from latentgeo.groups import FiniteGroup

__all__ = ["PlantedLatents", "planted_latents"]


@dataclass(frozen=True)
class PlantedLatents:
    """Orbit latents and the representation planted in them.

    Attributes
    ----------
    Z : ndarray of shape (order, n_samples, n_units)
        Orbit latents, ``Z[0]`` the untransformed inputs (identity first, element order of
        the group).
    rho : ndarray of shape (order, n_units, n_units)
        The exact planted representation: ``Z[g] = rho[g] @ Z[0] + noise`` (row-wise).
    basis : ndarray of shape (n_units, n_units)
        The orthogonal ``Q``; block ``b`` occupies columns ``block_slices[b]``.
    blocks : tuple of str
        Irrep name of each block (copy), in the order of ``basis``'s columns.
    multiplicities : xarray.DataArray over ``irrep``
        Copies of each irrep (all irreps of the group, zeros included).
    fractions : xarray.DataArray over ``irrep``
        Share of the (noise-free) latent variance in each irrep's copies; sums to 1.
    spectrum : xarray.DataArray over ``irrep``
        Expected :func:`probes.orbit_spectrum` of ``Z`` including the noise (equal to
        ``fractions`` when ``noise == 0``).
    r2 : ndarray of shape (order,)
        Population held-out R² of the best linear map per element: 1 at the identity,
        ``1 − noise`` elsewhere.
    noise : float
        Fraction of the variance of every non-identity element's latents that is noise.
    group : FiniteGroup
    """

    Z: np.ndarray = field(repr=False)
    rho: np.ndarray = field(repr=False)
    basis: np.ndarray = field(repr=False)
    blocks: tuple[str, ...]
    multiplicities: Any = field(repr=False)
    fractions: Any = field(repr=False)
    spectrum: Any = field(repr=False)
    r2: np.ndarray = field(repr=False)
    noise: float
    group: FiniteGroup

    @property
    def block_slices(self) -> tuple[slice, ...]:
        """Column slice of ``basis`` for every block."""
        dims = {irrep.name: irrep.dim for irrep in self.group.irreps()}
        out, start = [], 0
        for name in self.blocks:
            out.append(slice(start, start + dims[name]))
            start += dims[name]
        return tuple(out)


def _as_counts(group: FiniteGroup, multiplicities: Any) -> dict[str, int]:
    names = [irrep.name for irrep in group.irreps()]
    if isinstance(multiplicities, Mapping):
        unknown = [k for k in multiplicities if k not in names]
        if unknown:
            raise ValueError(
                f"unknown irreps {unknown!r} in multiplicities; {group!r} has irreps {names!r}"
            )
        raw = {name: multiplicities.get(name, 0) for name in names}
    elif isinstance(multiplicities, Sequence) and not isinstance(multiplicities, str):
        if len(multiplicities) != len(names):
            raise ValueError(
                f"multiplicities has {len(multiplicities)} entries but {group!r} has "
                f"{len(names)} irreps {names!r}"
            )
        raw = dict(zip(names, multiplicities))
    else:
        raise TypeError(
            f"multiplicities must be a mapping irrep name -> int or a sequence aligned with "
            f"group.irreps(), got {multiplicities!r}"
        )
    counts = {}
    for name, m in raw.items():
        counts[name] = check_int(m, f"multiplicity of {name!r}", minimum=0)
    if sum(counts.values()) == 0:
        raise ValueError("multiplicities plant no irrep at all; give at least one copy")
    return counts


def _as_fractions(group: FiniteGroup, counts: dict[str, int], fractions: Any) -> dict[str, float]:
    dims = {irrep.name: irrep.dim for irrep in group.irreps()}
    if fractions is None:
        # Equal variance per unit: each irrep's share is its number of units.
        total = sum(counts[n] * dims[n] for n in counts)
        return {n: counts[n] * dims[n] / total for n in counts}
    if not isinstance(fractions, Mapping):
        raise TypeError(f"fractions must be a mapping irrep name -> share, got {fractions!r}")
    unknown = [k for k in fractions if k not in dims]
    if unknown:
        raise ValueError(f"unknown irreps {unknown!r} in fractions; valid are {list(dims)!r}")
    out = {n: float(fractions.get(n, 0.0)) for n in counts}
    for n, f in out.items():
        if not np.isfinite(f) or f < 0:
            raise ValueError(f"fraction of {n!r} must be finite and >= 0, got {f!r}")
        if (f > 0) != (counts[n] > 0):
            raise ValueError(
                f"irrep {n!r} has multiplicity {counts[n]} but fraction {f!r}; an irrep has "
                "variance exactly when it is planted"
            )
    whole = float(sum(out.values()))
    return {n: f / whole for n, f in out.items()}


def planted_latents(
    group: FiniteGroup,
    multiplicities: Mapping[str, int] | Sequence[int],
    n_samples: int,
    noise: float = 0.0,
    seed: int = 0,
    *,
    fractions: Mapping[str, float] | None = None,
    rotate: bool = True,
    exact_moments: bool = True,
) -> PlantedLatents:
    """Orbit latents ``z(g·x) = Q (⊕ irreps) Qᵀ z(x) + noise`` with known truth.

    Parameters
    ----------
    group : FiniteGroup
        Its real irreps (orthogonal matrices) build the representation.
    multiplicities : mapping irrep name -> int, or sequence aligned with ``group.irreps()``
        Number of copies of each irrep; ``n_units = Σ m_ρ dim_ρ``.
    n_samples : int
        Number of probe inputs.
    noise : float in [0, 1)
        Fraction of the variance of each non-identity element's latents that is independent
        Gaussian noise.  The identity's latents are noise-free: ``z(e·x) = z(x)`` exactly.
    seed : int
        Seed of a private ``numpy.random.Generator``.
    fractions : mapping irrep name -> float, optional
        Share of the latent variance carried by each planted irrep (normalised to sum to 1;
        split equally over its copies and their units).  Default: proportional to its
        number of units.
    rotate : bool
        Mix the units with a random orthogonal ``Q`` (Haar); otherwise ``Q = I``.
    exact_moments : bool
        Whiten the sampled latents so their empirical covariance is exactly the planted one
        (needs ``n_samples > n_units``): the noise-free spectrum then equals ``fractions`` to
        round-off instead of up to sampling error.

    Returns
    -------
    PlantedLatents

    Examples
    --------
    >>> from latentgeo.groups import Dihedral
    >>> from latentgeo.datasets.planted import planted_latents
    >>> p = planted_latents(Dihedral(4), {"A1": 2, "E1": 3}, n_samples=100)
    >>> p.Z.shape, p.rho.shape
    ((8, 100, 8), (8, 8, 8))
    """
    import xarray as xr

    counts = _as_counts(group, multiplicities)
    shares = _as_fractions(group, counts, fractions)
    n_samples = check_int(n_samples, "n_samples", minimum=2)
    if not isinstance(noise, (int, float, np.floating)) or not 0.0 <= float(noise) < 1.0:
        raise ValueError(f"noise must be a float in [0, 1), got {noise!r}")
    noise = float(noise)
    rng = np.random.default_rng(seed)
    irreps = {irrep.name: irrep for irrep in group.irreps()}
    blocks = tuple(name for name in irreps for _ in range(counts[name]))
    d = sum(irreps[name].dim for name in blocks)
    G = group.order

    # Block-diagonal representation in the planted basis.
    R = np.zeros((G, d, d))
    scale = np.zeros(d)  # per-unit standard deviation of z(x) in the planted basis
    start = 0
    for name in blocks:
        k = irreps[name].dim
        R[:, start : start + k, start : start + k] = irreps[name].matrices
        scale[start : start + k] = np.sqrt(shares[name] / (counts[name] * k))
        start += k
    Q = _haar_orthogonal(d, rng) if rotate else np.eye(d)
    rho = Q @ R @ Q.T

    V = rng.standard_normal((n_samples, d))
    V -= V.mean(axis=0)
    if exact_moments:
        if n_samples <= d:
            raise ValueError(
                f"exact_moments needs n_samples > n_units, got {n_samples!r} <= {d}; pass "
                "exact_moments=False"
            )
        # Empirical covariance exactly I: V ← V C^{-1/2} (symmetric inverse square root).
        w, E = np.linalg.eigh(V.T @ V / n_samples)
        V = V @ (E / np.sqrt(w)) @ E.T
    z = (V * scale) @ Q.T  # (n, d): signal variance sums to 1 over units
    Z = np.einsum("gij,nj->gni", rho, z)
    tau2 = noise / (1.0 - noise) / d  # per-unit noise variance: noise share of Var(Z[g])
    if noise > 0:
        Z[1:] += np.sqrt(tau2) * rng.standard_normal((G - 1, n_samples, d))

    names = list(irreps)
    coords = {"irrep": np.asarray(names, dtype=object)}
    frac = np.array([shares.get(n, 0.0) for n in names])
    # Expected spectrum: the signal of irrep ρ lives in ρ's isotypic component; the noise is
    # white on the non-identity elements, so its energy in a component with projector P is
    # τ² (tr P − P_ee) = τ² tr P (1 − 1/|G|) per (sample, unit).
    # tr P = dim (dim / k): the isotypic component holds dim/k copies of the irrep.
    trace = np.array([irreps[n].dim ** 2 / irreps[n].commutant_dim for n in names])
    signal_energy = G * frac  # per sample: Σ_g ‖rho(g) z‖² = |G| ‖z‖², total variance 1
    noise_energy = tau2 * d * trace * (1.0 - 1.0 / G)
    expected = (signal_energy + noise_energy) / (signal_energy + noise_energy).sum()
    r2 = np.full(G, 1.0 - noise)
    r2[group.identity] = 1.0
    return PlantedLatents(
        Z=Z,
        rho=rho,
        basis=Q,
        blocks=blocks,
        multiplicities=xr.DataArray(
            np.array([counts[n] for n in names]), dims=("irrep",), coords=coords
        ),
        fractions=xr.DataArray(frac, dims=("irrep",), coords=coords),
        spectrum=xr.DataArray(expected, dims=("irrep",), coords=coords),
        r2=r2,
        noise=noise,
        group=group,
    )


def _haar_orthogonal(d: int, rng: np.random.Generator) -> np.ndarray:
    # QR of a Gaussian matrix with the sign fix of Mezzadri (2007) gives the Haar measure.
    q, r = np.linalg.qr(rng.standard_normal((d, d)))
    return q * np.sign(np.diag(r))
