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

__all__ = ["PlantedHarmonic", "PlantedLatents", "planted_harmonic", "planted_latents"]


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
        The *true linear R²* per element: the population R² of the best affine map
        ``z(x) ↦ z(g·x)``, ``1 − min_{A,b} E‖z(g·x) − A z(x) − b‖² / E‖z(g·x) − E z(g·x)‖²``
        (variance-weighted over units, expectations over the sampling distribution of the
        inputs and the noise).  The minimiser is ``A = rho[g]``, ``b = 0`` (the noise is
        independent of ``z(x)``), so it is 1 at the identity and ``1 − noise`` elsewhere.
        A map fitted on finitely many samples scores less; see :meth:`map_r2`.
    noise : float
        Fraction of the variance of every non-identity element's latents that is noise.
    group : FiniteGroup
    input_cov : ndarray of shape (n_units, n_units)
        Population covariance of ``z(x)`` (``Z[0]``); its trace is 1.
    noise_var : float
        Variance of the noise per unit on the non-identity elements.
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
    input_cov: np.ndarray = field(repr=False)
    noise_var: float = 0.0

    def map_r2(
        self, rho_hat: np.ndarray, bias_hat: np.ndarray, readout: np.ndarray | None = None
    ) -> np.ndarray:
        """Population R² of given affine maps ``z(g·x) ≈ rho_hat[g] z(x) + bias_hat[g]``.

        ``R²_g = 1 − [tr((ρ_g − Â_g) Σ (ρ_g − Â_g)ᵀ) + ‖b̂_g‖² + n_units τ²_g] / (tr Σ +
        n_units τ²_g)`` with ``Σ`` = :attr:`input_cov`, ``τ²_g`` the noise variance of element
        ``g`` (0 at the identity) and the population mean of the latents 0: the R² the map
        would score on infinitely many fresh samples.  This is the quantity a held-out R² of
        a fitted map estimates (conditional on the training samples it was fitted on).

        With a ``readout`` ``P`` (k, n_units) the targets are the coordinates ``P z(g·x)``
        (e.g. :class:`~probes.OrthogonalProbe`'s whitened components, scored there) and the
        maps ``Â_g`` of shape (k, n_units) predict them from ``z(x)``: ``R²_g = 1 −
        [tr((Pρ_g − Â_g) Σ (Pρ_g − Â_g)ᵀ) + ‖b̂_g‖² + τ²_g ‖P‖²_F] / (tr(Pρ_g Σ ρ_gᵀPᵀ) +
        τ²_g ‖P‖²_F)``.

        Parameters
        ----------
        rho_hat : array of shape (n_elements, n_units, n_units) or (n_elements, k, n_units)
            One map per element of the group (``LinearProbe.rho_``); (k, n_units) with a
            ``readout``.
        bias_hat : array of shape (n_elements, n_units) or (n_elements, k)
        readout : array of shape (k, n_units), optional
            Default: the identity (the latents themselves are the targets).

        Returns
        -------
        ndarray of shape (n_elements,)

        Raises
        ------
        ValueError
            Shapes that do not fit the planted representation and each other.
        """
        err, tot = self._map_errors(rho_hat, bias_hat, readout)
        return 1.0 - err / tot

    def pooled_map_r2(
        self, elements: Sequence[int], rho_hat: np.ndarray, bias_hat: np.ndarray
    ) -> float:
        """Population R² of the maps of ``elements`` pooled as one target (units side by side).

        The truth for the pooled R² of :func:`probes.subgroup_scan` (its non-identity
        elements of a subgroup): ``1 − Σ_g err_g / Σ_g tot_g`` over ``elements``.
        """
        err, tot = self._map_errors(rho_hat, bias_hat)
        idx = list(elements)
        return float(1.0 - err[idx].sum() / tot[idx].sum())

    def _map_errors(
        self, rho_hat: np.ndarray, bias_hat: np.ndarray, readout: np.ndarray | None = None
    ) -> tuple:
        rho_hat = np.asarray(rho_hat, dtype=np.float64)
        bias_hat = np.asarray(bias_hat, dtype=np.float64)
        G, d = self.rho.shape[:2]
        P = np.eye(d) if readout is None else np.asarray(readout, dtype=np.float64)
        if P.ndim != 2 or P.shape[1] != d:
            raise ValueError(f"readout must have shape (k, {d}), got {P.shape}")
        k = P.shape[0]
        if rho_hat.shape != (G, k, d) or bias_hat.shape != (G, k):
            raise ValueError(
                f"rho_hat and bias_hat must have shapes {(G, k, d)} and {(G, k)}, got "
                f"{rho_hat.shape} and {bias_hat.shape}"
            )
        tau2 = np.full(G, self.noise_var)
        tau2[self.group.identity] = 0.0
        target = self.rho if readout is None else P @ self.rho  # (G, k, d)
        diff = target - rho_hat
        # tr(D Σ Dᵀ) per element, without the (d, d) products per element.
        err = np.einsum("gij,jk,gik->g", diff, self.input_cov, diff)
        noise = tau2 * float((P**2).sum())
        err = err + (bias_hat**2).sum(axis=1) + noise
        if readout is None:  # rho orthogonal: tr(ρ Σ ρᵀ) = tr Σ
            return err, np.trace(self.input_cov) + noise
        return err, np.einsum("gij,jk,gik->g", target, self.input_cov, target) + noise

    def subset_invariance(self, elements: Sequence[int]) -> float:
        """Population invariant share of the orbit recorded on a set ``S`` of elements (the
        truth of ``probes.invariance`` / ``probes.run``'s ``invariance`` on a run over ``S``).

        The invariant part over ``S`` is each sample's mean over ``S``, ``M_S z + ε̄`` with
        ``M_S = (1/|S|) Σ_{g∈S} rho(g)``; with ``k`` non-identity elements in ``S`` the share is
        ``[|S| tr(M_S Σ M_Sᵀ) + k d τ² / |S|] / [|S| tr Σ + k d τ²]`` (``Σ`` =
        :attr:`input_cov`, population mean 0; ``rho(g)`` orthogonal).

        Raises
        ------
        ValueError
            If ``elements`` is empty, repeats an element or names none of the group's.
        """
        idx = np.asarray([check_int(g, "element", minimum=0) for g in elements], dtype=np.int64)
        G = self.group.order
        if len(idx) == 0 or len(set(idx.tolist())) != len(idx) or idx.max() >= G:
            raise ValueError(
                f"elements must be distinct indices in [0, {G}), got {list(elements)!r}"
            )
        S, d = len(idx), self.rho.shape[1]
        M = self.rho[idx].mean(axis=0)
        k = int(np.sum(idx != self.group.identity))
        noise = k * d * self.noise_var
        signal = S * float(np.trace(M @ self.input_cov @ M.T))
        return (signal + noise / S) / (S * float(np.trace(self.input_cov)) + noise)

    def subgroup_invariance(self, subgroup: Any) -> float:
        """Population invariant share under a subgroup ``H`` (the truth of
        :func:`probes.subgroup_scan`'s ``invariance``).

        The signal of irrep ``ρ`` is isotropic within each copy, so its ``H``-invariant part
        is the share ``dim Fix_H(ρ) / dim ρ = (1/|H|) Σ_{h∈H} χ_ρ(h) / dim ρ`` of its energy; the
        noise is white over the non-identity elements, so a coset mean keeps ``1/|H|`` of
        its energy.  ``H = G`` gives the trivial irrep's share of :attr:`spectrum`.  This is
        over the whole orbit (every coset of ``H``); :meth:`subset_invariance` of ``H``'s
        elements is over ``H``'s orbit alone, where the noise-free identity weighs more (the
        two agree without noise).
        """
        G = self.group.order
        elements = list(subgroup.elements)
        signal = 0.0
        for irrep in self.group.irreps():
            share = float(self.fractions.sel(irrep=irrep.name))
            if share:
                fixed = np.trace(irrep.matrices[elements], axis1=1, axis2=2).sum() / len(elements)
                signal += share * fixed / irrep.dim
        d = self.rho.shape[1]
        noise_energy = self.noise_var * d * (G - 1)
        return float((G * signal + noise_energy / len(elements)) / (G + noise_energy))

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
        round-off instead of up to sampling error.  ``False`` draws the samples independently
        from the population (no centring, no whitening): what calibration against the
        population truths (:attr:`PlantedLatents.r2`, :meth:`PlantedLatents.map_r2`) needs.

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
    if exact_moments:
        V -= V.mean(axis=0)
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
        input_cov=(Q * scale**2) @ Q.T,
        noise_var=tau2,
    )


def _haar_orthogonal(d: int, rng: np.random.Generator) -> np.ndarray:
    # QR of a Gaussian matrix with the sign fix of Mezzadri (2007) gives the Haar measure.
    q, r = np.linalg.qr(rng.standard_normal((d, d)))
    return q * np.sign(np.diag(r))


@dataclass(frozen=True)
class PlantedHarmonic:
    """An orbit of a continuous group at sampled elements with a planted Haar spectrum.

    Each sample's orbit signal (unit by unit) is ``f(g) = a + Σ_ρ Σ_j C_ρj ψ_ρj(g) + ε(g)``
    with ``ψ_ρj = sqrt(dim ρ) ρ_rc`` the Haar-orthonormal matrix entries of the real irreps
    (``c`` over the first ``dim ρ / k`` columns, ``k`` the commutant dimension of the type;
    Peter–Weyl / Schur orthogonality), ``a`` and the coefficients ``C`` drawn per sample, and
    ``ε`` white Gaussian noise independent at every recorded element.  The population truths
    are the Haar energies: the invariant part's variance over samples, each irrep's
    ``E‖C_ρ‖²`` and the noise's ``d τ²`` per sample.

    Attributes
    ----------
    Z : ndarray of shape (n_elements, n_samples, n_units)
    elements : ndarray of shape (n_elements, ...)
        Element values of ``Z``'s element axis (``group.sample``: Haar-random).
    group : continuous group
    energies : dict irrep name -> float
        Population Haar energy per sample (summed over units) of each planted irrep: the
        trivial one's is the variance of the orbits' Haar means over samples.
    noise_energy : float
        ``d τ²``: the noise's energy per sample and element; the energies and it sum to 1.
    """

    Z: np.ndarray = field(repr=False)
    elements: np.ndarray = field(repr=False)
    group: Any
    energies: dict[str, float]
    noise_energy: float

    @property
    def invariance(self) -> float:
        """The population invariant share (truth of ``probes.invariance``)."""
        return self.energies.get(self.group.trivial_irrep.name, 0.0)

    def spectrum(self, max_degree: int) -> Any:
        """Population spectrum as :func:`probes.orbit_spectrum` names it at ``max_degree``:
        the irreps up to it, then ``"residual"`` (noise plus planted irreps above it).

        The harmonic fit estimates it without bias (up to the ratio's ``O(1/n_samples)``) when
        every planted irrep is within ``max_degree``, or at ``max_degree = 0`` for the
        invariant share; otherwise the irreps above it leak into the fitted ones.

        Returns
        -------
        xarray.DataArray over ``irrep``
        """
        import xarray as xr

        names = list(self.group.irrep_names(check_int(max_degree, "max_degree", minimum=0)))
        shares = [self.energies.get(n, 0.0) for n in names]
        shares.append(1.0 - sum(shares))
        coords = {"irrep": np.asarray([*names, "residual"], dtype=object)}
        return xr.DataArray(np.asarray(shares), dims=("irrep",), coords=coords)


def _irreps_named(group: Any, names: Sequence[str]) -> list[Any]:
    """The continuous group's irreps called ``names`` (searched up to degree 16)."""
    for degree in range(17):
        found = {r.name: r for r in group.irreps(degree)}
        if all(n in found for n in names):
            return [found[n] for n in names]
    known = list(group.irrep_names(4))
    raise ValueError(f"unknown irreps in {list(names)!r} for {group!r}; the first are {known!r}")


def planted_harmonic(
    group: Any,
    energies: Mapping[str, float],
    n_samples: int,
    n_elements: int,
    noise: float = 0.0,
    seed: int = 0,
    *,
    n_units: int = 4,
    fixed: float = 0.5,
    elements: Any = None,
) -> PlantedHarmonic:
    """Orbit latents of a continuous group with a known invariant share and irrep spectrum.

    Parameters
    ----------
    group : continuous group (SO2, O2, SO3, O3)
    energies : mapping irrep name -> float
        Share of the signal's Haar energy in each planted irrep (normalised to sum to 1).
    n_samples, n_elements : int
        Probe samples; sampled elements (Haar-random, ``group.sample``) unless ``elements``.
    noise : float in [0, 1)
        Share of the total energy that is white noise, independent at every element.
    seed : int
        Seed of a private ``numpy.random.Generator``.
    n_units : int
    fixed : float in [0, 1]
        Share of each non-trivial irrep's energy that is the same in every sample (the mean
        orbit is then not invariant); the rest is drawn per sample.  The trivial irrep's
        common part is an offset of the latents, which carries no energy (centred away).
    elements : array, optional
        Element values to record the orbit at (``n_elements`` is then their number).

    Returns
    -------
    PlantedHarmonic

    Raises
    ------
    TypeError, ValueError
        For a finite group, an unknown irrep, a negative share or an invalid count.
    """
    if getattr(group, "is_finite", True):
        raise TypeError(f"planted_harmonic needs a continuous group, got {group!r}")
    if not isinstance(energies, Mapping) or not energies:
        raise TypeError(
            f"energies must be a non-empty mapping irrep name -> share, got {energies!r}"
        )
    share = {str(k): float(v) for k, v in energies.items()}
    if any(not np.isfinite(v) or v < 0 for v in share.values()) or sum(share.values()) <= 0:
        raise ValueError(f"energies must be finite, >= 0 and not all 0, got {energies!r}")
    n_samples = check_int(n_samples, "n_samples", minimum=2)
    d = check_int(n_units, "n_units", minimum=1)
    if not isinstance(noise, (int, float, np.floating)) or not 0.0 <= float(noise) < 1.0:
        raise ValueError(f"noise must be a float in [0, 1), got {noise!r}")
    if not isinstance(fixed, (int, float, np.floating)) or not 0.0 <= float(fixed) <= 1.0:
        raise ValueError(f"fixed must be a float in [0, 1], got {fixed!r}")
    rng = np.random.default_rng(seed)
    if elements is None:
        values = np.asarray(group.sample(check_int(n_elements, "n_elements", minimum=1), rng))
    else:
        values = np.asarray(elements, dtype=np.float64)
    n_el = len(values)
    whole = sum(share.values())
    noise = float(noise)
    total = 1.0 / (1.0 - noise)  # signal energy 1, noise d τ² = noise / (1 − noise)
    Z = np.zeros((n_el, n_samples, d))
    out = {}
    for rho in _irreps_named(group, list(share)):
        e = share[rho.name] / whole
        keep = rho.dim // {"real": 1, "complex": 2, "quaternionic": 4}[rho.type]
        psi = np.sqrt(rho.dim) * np.asarray(rho(values), dtype=np.float64)[:, :, :keep]
        psi = psi.reshape(n_el, -1)  # (n_el, m): Haar-orthonormal functions of the irrep
        m = psi.shape[1]
        trivial = rho.name == group.trivial_irrep.name
        common = 0.0 if trivial else float(fixed)
        C = rng.standard_normal((n_samples, m, d)) * np.sqrt(e * (1 - common) / (m * d))
        if common > 0:
            M = rng.standard_normal((m, d))
            C = C + M * np.sqrt(e * common / (M * M).sum())
        elif trivial:
            C = C + 3.0 * rng.standard_normal(d) / np.sqrt(d)  # an offset: no energy
        Z += np.einsum("gm,nmd->gnd", psi, C)
        out[rho.name] = e / total
    Z += np.sqrt(noise / (1.0 - noise) / d) * rng.standard_normal(Z.shape)
    return PlantedHarmonic(Z=Z, elements=values, group=group, energies=out, noise_energy=noise)
