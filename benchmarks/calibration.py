"""Calibration of every interval the probes print, against analytic truth on planted latents.

Latents are planted with :func:`latentgeo.datasets.planted.planted_latents`
(``exact_moments=False``: independent draws from a known population), so every estimand has
an exact value (:class:`~latentgeo.datasets.planted.PlantedLatents`):

``r2 (fitted map)``
    ``LinearProbe.r2_`` and ``r2_ci_`` (``probes.run``'s ``r2``, ``r2_low``, ``r2_high``)
    against the population R² of the map the probe fitted
    (:meth:`~latentgeo.datasets.planted.PlantedLatents.map_r2`), every non-identity element.
``r2 vs best linear map``
    The same interval against the *true linear R²*, the population R² of the best affine map
    (:attr:`~latentgeo.datasets.planted.PlantedLatents.r2`, ``1 − noise``).  The held-out R²
    of a map fitted on ``n_train`` samples is biased low for it (the fit's own error), so
    this row reports the bias and the coverage it actually has.
``subgroup r2 (pooled)``
    :func:`probes.subgroup_scan`'s pooled R² interval against the pooled population R² of
    the fitted maps over each proper non-trivial subgroup's non-identity elements.
``subgroup invariance``
    :func:`probes.subgroup_scan`'s invariance interval against
    :meth:`~latentgeo.datasets.planted.PlantedLatents.subgroup_invariance`, every
    non-trivial subgroup (the group itself included; the trivial one's invariance is 1).
``spectrum share``
    :func:`trajectories.spectrum_with_ci` against the population spectrum
    (:attr:`~latentgeo.datasets.planted.PlantedLatents.spectrum`), every irrep.
``null (float32) in exact null CI``
    Whether one re-paired fit of ``LinearProbe(null="permutation")`` (run in float32) lies
    inside the interval (:func:`probes._scoring.r2_interval`) of the exact float64 re-paired
    null with the same permutation (the condition under which the float32 null stands in for
    the exact one); ``null (float32) - exact`` gives their difference.
``null (expected) in re-paired mean CI``
    Whether the default closed-form chance level (``null="expected"``,
    :func:`probes._ridge.expected_null_r2`) lies inside the 95% Student interval of the mean
    of ``N_NULL`` re-paired fits (the expectation over re-pairings that it computes, known up
    to their Monte-Carlo error).  (The interval of one exact re-paired fit is the wrong yard
    stick for it: that interval is for the population R² of one re-paired map, which sits
    above the held-out R² both nulls estimate by about ``1 / (n_test − 1)``.)
    ``null (expected) - re-paired mean`` gives its difference from that mean, and
    ``null (1 re-paired fit) - re-paired mean`` the same for a single re-paired fit (what
    ``null="permutation", n_null=1`` reports): the RMSE columns compare the two estimates of
    the chance level.

``invariance (Haar)``, ``harmonic share``
    Continuous groups (SO(2), SO(3), O(3)) at Haar-random sampled elements
    (:func:`latentgeo.datasets.planted.planted_harmonic`): the invariant share and every part
    of the spectrum (irreps up to the fitted degree, then ``"residual"``) of the
    group-Fourier core at the degree ``probes.run`` resolves
    (:func:`latentgeo.groups.resolve_max_degree`, :func:`latentgeo.groups.harmonic_energies`)
    with the intervals ``probes.run`` prints (``OrbitEnergies.intervals``: ``invariance_low``/
    ``invariance_high``, ``spectrum_low``/``spectrum_high``), against
    :attr:`~latentgeo.datasets.planted.PlantedHarmonic.invariance` and
    :meth:`~latentgeo.datasets.planted.PlantedHarmonic.spectrum`; the intervals include the
    spread over the draw of elements (delete-one-element jackknife), and the draws where the
    package gives none (NaN: an element alone on a component of O(3)) are counted apart.
    "few" elements leave the
    default degree at 0 (the Haar-mean U-statistic; the planted irreps are then in
    ``"residual"``), "many" fit every planted irrep.
``subset invariance``
    An orbit of a finite group recorded on a random subset of its elements (a run over some
    elements): the invariance over the recorded elements and its interval
    (:func:`latentgeo.groups.subset_energies`, ``OrbitEnergies.intervals``, as ``probes.run``'s
    ``invariance`` kind) against
    :meth:`~latentgeo.datasets.planted.PlantedLatents.subset_invariance`.
``orthogonal r2``, ``consistent r2``, ``generator r2``, ``lie algebra r2`` (fitted map)
    ``r2_`` and ``r2_ci_`` of :class:`~probes.OrthogonalProbe` and
    :class:`~probes.GroupConsistentProbe` (``probes.run``'s ``consistent_r2``,
    ``consistent_r2_low``/``_high``) on a D4 orbit, and of
    :class:`~probes.GeneratorProbe`, :class:`~probes.LieAlgebraProbe` (basis ``"so2"``) on an
    SO(2) orbit recorded at the 32 angles ``2πk/32`` (planted through ``Cyclic(32)``, whose
    irreps ``E1``, ``E2`` are SO(2)'s frequencies 1 and 2 at those angles, so ``rho`` is
    ``expm(θ L)`` exactly), against the population R² of the map each probe fitted
    (:meth:`~latentgeo.datasets.planted.PlantedLatents.map_r2`; for the orthogonal probe in
    its whitened coordinates, ``readout=``), every non-identity element.

Coverage is the share of intervals containing the truth, pooled over the draws (and over the
elements / subgroups / irreps of a draw, which share its samples: the binomial band uses the
number of draws, not of intervals).  Bias and RMSE are of the point estimate.

Run: ``python benchmarks/calibration.py`` (the full grid, 200 draws per setting; writes
``docs/calibration.md`` with ``--write``); ``--quick`` for a small smoke grid; ``--family
finite|continuous|subset|maps`` for one family's grid (``--write`` then replaces that family's
table only).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

KINDS = (
    "r2 (fitted map)",
    "r2 vs best linear map",
    "subgroup r2 (pooled)",
    "subgroup invariance",
    "spectrum share",
    "null (float32) in exact null CI",
    "null (expected) in re-paired mean CI",
    "invariance (Haar)",
    "harmonic share",
    "subset invariance",
    "orthogonal r2 (fitted map)",
    "consistent r2 (fitted map)",
    "generator r2 (fitted map)",
    "lie algebra r2 (fitted map)",
)
#: Point-estimate differences reported without an interval (bias and RMSE only).
NULL_DIFFERENCES = (
    "null (float32) - exact",
    "null (expected) - re-paired mean",
    "null (1 re-paired fit) - re-paired mean",
)
#: Re-paired refits per draw whose mean stands for the expectation over re-pairings, and the
#: Student quantile of its 95% interval (15 degrees of freedom).
N_NULL = 16
T_NULL = 2.131
FAMILIES = ("finite", "continuous", "subset", "maps")
#: Planted Haar energies of the signal per continuous group (every irrep within degree 2).
HARMONIC_ENERGIES = {
    "SO2": {"A": 0.3, "E1": 0.4, "E2": 0.3},
    "SO3": {"0": 0.3, "1": 0.4, "2": 0.3},
    "O3": {"0e": 0.3, "0o": 0.2, "1o": 0.3, "1e": 0.2},
}
#: Sampled elements: "few" leave the default degree at 0, "many" fit every planted irrep
#: (SO2: degree 4 from 18 elements; SO3: degree 2 from 70; O3: degree 1 from 20 per component).
HARMONIC_ELEMENTS = {"SO2": (4, 32), "SO3": (8, 80), "O3": (12, 96)}


@dataclass(frozen=True)
class Setting:
    """One planted setting: group, copies of every irrep, samples and noise share."""

    group: str
    copies: int
    n_samples: int
    noise: float

    def build(self) -> Any:
        from latentgeo.groups import parse

        return parse(self.group)

    @property
    def label(self) -> str:
        d = self.copies * sum(irrep.dim for irrep in self.build().irreps())
        return f"{self.group} d={d} n={self.n_samples} noise={self.noise}"

    def draw(self, seed: int, n_bootstrap: int) -> dict:
        return draw(self, seed, n_bootstrap)


@dataclass(frozen=True)
class HarmonicSetting:
    """A continuous group's orbit at ``n_elements`` Haar-random elements, 4 units."""

    group: str
    n_samples: int
    n_elements: int
    noise: float

    @property
    def label(self) -> str:
        return f"{self.group} n_el={self.n_elements} n={self.n_samples} noise={self.noise}"

    def draw(self, seed: int, n_bootstrap: int, confidence: float = 0.95) -> dict:
        """``{kind: [(estimate, low, high, truth), ...]}`` of one planted draw."""
        import warnings

        from latentgeo.datasets.planted import planted_harmonic
        from latentgeo.groups import FallbackWarning, harmonic_energies, parse, resolve_max_degree

        group = parse(self.group)
        p = planted_harmonic(
            group,
            HARMONIC_ENERGIES[self.group],
            self.n_samples,
            self.n_elements,
            self.noise,
            seed,
            n_units=4,
        )
        with warnings.catch_warnings():  # "few" elements: the documented fallback to degree 0
            warnings.simplefilter("ignore", FallbackWarning)
            degree = resolve_max_degree(group, p.elements)
        energies = harmonic_energies(p.Z, group, p.elements, degree)
        share = energies.shares().numpy()
        with warnings.catch_warnings():  # too few elements for any interval: NaN, counted
            warnings.simplefilter("ignore", FallbackWarning)
            ci = energies.intervals(n_bootstrap, confidence, np.random.default_rng(seed))
        truth = p.spectrum(degree).values
        out: dict[str, list] = defaultdict(list)
        out["invariance (Haar)"].append((share[0], ci[0, 0], ci[0, 1], p.invariance))
        for k in range(len(share)):
            out["harmonic share"].append((share[k], ci[k, 0], ci[k, 1], truth[k]))
        return out


@dataclass(frozen=True)
class SubsetSetting:
    """A finite group's orbit (one copy of every irrep) recorded on ``size`` random elements."""

    group: str
    size: int
    n_samples: int
    noise: float

    @property
    def label(self) -> str:
        return f"{self.group} #S={self.size} n={self.n_samples} noise={self.noise}"

    def draw(self, seed: int, n_bootstrap: int, confidence: float = 0.95) -> dict:
        """``{kind: [(estimate, low, high, truth)]}`` of one planted draw."""
        from latentgeo.datasets.planted import planted_latents
        from latentgeo.groups import parse, subset_energies

        group = parse(self.group)
        copies = {irrep.name: 1 for irrep in group.irreps()}
        p = planted_latents(
            group, copies, self.n_samples, self.noise, seed=seed, exact_moments=False
        )
        rng = np.random.default_rng(seed)
        S = np.sort(rng.choice(group.order, size=self.size, replace=False))
        energies = subset_energies(p.Z[S])
        ci = energies.intervals(n_bootstrap, confidence, rng)
        est = energies.invariance()
        return {"subset invariance": [(est, ci[0, 0], ci[0, 1], p.subset_invariance(S))]}


@dataclass(frozen=True)
class MapSetting:
    """The other probes' fitted maps on an exact representation: ``"D4"`` (every irrep once:
    OrthogonalProbe, GroupConsistentProbe) or ``"SO2"`` (frequencies 0, 1, 2 at the 32 angles
    of ``Cyclic(32)``: GeneratorProbe, LieAlgebraProbe)."""

    group: str
    n_samples: int
    noise: float

    @property
    def label(self) -> str:
        d = 6 if self.group == "D4" else 5
        return f"{self.group} d={d} n={self.n_samples} noise={self.noise}"

    def draw(self, seed: int, n_bootstrap: int, confidence: float = 0.95) -> dict:
        """``{kind: [(estimate, low, high, truth), ...]}`` of one planted draw."""
        from latentgeo.datasets.planted import planted_latents
        from latentgeo.groups import Cyclic, Dihedral
        from probes import GeneratorProbe, GroupConsistentProbe, LieAlgebraProbe, OrthogonalProbe

        kw = {"n_bootstrap": n_bootstrap, "confidence": confidence, "random_state": seed}
        group = Dihedral(4) if self.group == "D4" else Cyclic(32)
        copies = (
            {i.name: 1 for i in group.irreps()}
            if self.group == "D4"
            else {"A": 1, "E1": 1, "E2": 1}
        )
        p = planted_latents(
            group, copies, self.n_samples, self.noise, seed=seed, exact_moments=False
        )
        e = group.identity  # element 0, the angle 0
        fits = {}  # kind: (probe, maps, intercepts, readout) in the coordinates it scores
        if self.group == "D4":
            op = OrthogonalProbe(**kw).fit(p.Z)
            # Scored on w_g = Pᵀ(z_g − μ_g), predicted by R_g Pᵀ(z_e − μ_e): an affine map of
            # z_e onto the readout Pᵀ z_g (μ: the training means, P: the whitening).
            P = op.components_.T / np.sqrt(op.explained_variance_)
            b = op.mean_ @ P - np.einsum("gij,j->gi", op.rho_, op.mean_[e] @ P)
            fits["orthogonal r2 (fitted map)"] = (op, op.rho_ @ P.T, b, P.T)
            gc = GroupConsistentProbe(group, **kw).fit(p.Z)
            fits["consistent r2 (fitted map)"] = (gc, gc.rho_, gc.bias_, None)
        else:
            theta = np.angle(np.exp(2j * np.pi * np.arange(32) / 32))  # in (−π, π]
            gp = GeneratorProbe(**kw).fit(p.Z, theta)
            lp = LieAlgebraProbe("so2", **kw).fit(p.Z, theta[:, None])
            # Both predict Q expm(θL) Qᵀ (z_e − μ_e) + μ_g.
            for kind, probe, maps in (
                ("generator r2 (fitted map)", gp, gp.rho(theta)),
                ("lie algebra r2 (fitted map)", lp, lp.rho(theta[:, None])),
            ):
                fits[kind] = (probe, maps, probe.mean_ - maps @ probe.mean_[e], None)
        out: dict[str, list] = defaultdict(list)
        for kind, (probe, maps, bias, readout) in fits.items():
            truth = p.map_r2(maps, bias, readout)
            for g in [g for g in range(group.order) if g != e]:
                lo, hi = probe.r2_ci_[g]
                out[kind].append((float(probe.r2_[g]), lo, hi, float(truth[g])))
        return out


def grid(quick: bool = False, family: str | None = None) -> list[Any]:
    """The settings of the table: finite groups of every kind (two sizes), continuous groups
    (few and many sampled elements) and element subsets; two sample sizes, two noise levels.
    """
    if quick:
        out: list[Any] = [Setting("C4", 1, 64, 0.5), Setting("D3", 1, 64, 0.2)]
        out += [HarmonicSetting("SO2", 64, 4, 0.5), HarmonicSetting("SO3", 64, 80, 0.5)]
        out += [SubsetSetting("D4", 3, 64, 0.5)]
        out += [MapSetting("D4", 64, 0.8), MapSetting("SO2", 64, 0.8)]
    else:
        out = []
        for group in ("C8", "D4", "S4", "C2xC4"):
            for copies in (1, 3):
                for n in (64, 256):
                    for noise in (0.2, 0.8):
                        out.append(Setting(group, copies, n, noise))
        for group, counts in HARMONIC_ELEMENTS.items():
            for n_el in counts:
                for n in (64, 256):
                    for noise in (0.2, 0.8):
                        out.append(HarmonicSetting(group, n, n_el, noise))
        for group, sizes in (("D4", (3, 5)), ("S4", (4, 12))):
            for size in sizes:
                for n in (64, 256):
                    for noise in (0.2, 0.8):
                        out.append(SubsetSetting(group, size, n, noise))
        out += [MapSetting(group, n, 0.8) for group in ("D4", "SO2") for n in (64, 256)]
    if family is None:
        return out
    kind = {
        "finite": Setting,
        "continuous": HarmonicSetting,
        "subset": SubsetSetting,
        "maps": MapSetting,
    }[family]
    return [s for s in out if isinstance(s, kind)]


def draw(setting: Setting, seed: int, n_bootstrap: int = 200, confidence: float = 0.95) -> dict:
    """One planted draw: ``{kind: [(estimate, low, high, truth), ...]}``."""
    from latentgeo.datasets.planted import planted_latents
    from probes import LinearProbe, subgroup_scan
    from probes._scoring import r2_and_interval
    from trajectories import spectrum_with_ci

    group = setting.build()
    copies = {irrep.name: setting.copies for irrep in group.irreps()}
    p = planted_latents(
        group, copies, setting.n_samples, setting.noise, seed=seed, exact_moments=False
    )
    out: dict[str, list[tuple[float, float, float, float]]] = defaultdict(list)
    probe = LinearProbe(n_null=1, n_bootstrap=n_bootstrap, confidence=confidence, random_state=seed)
    probe.fit(p.Z)
    fitted = p.map_r2(probe.rho_, probe.bias_)
    for g in range(group.order):
        if g == group.identity:
            continue
        est, (lo, hi) = float(probe.r2_[g]), probe.r2_ci_[g]
        out["r2 (fitted map)"].append((est, lo, hi, float(fitted[g])))
        out["r2 vs best linear map"].append((est, lo, hi, float(p.r2[g])))

    # The re-paired (permutation) null: N_NULL float32 refits, and the exact float64 refit
    # with the first of their permutations (same generator stream).
    perm_probe = LinearProbe(
        n_null=N_NULL, null="permutation", n_bootstrap=0, random_state=seed
    ).fit(p.Z)
    exact = _exact_null(perm_probe, p.Z, seed)
    Yp, Yhat = exact
    exact_r2, ci = (t.numpy() for t in r2_and_interval(Yp, Yhat, confidence))
    for g in range(group.order):
        if g != group.identity:
            single = float(perm_probe.null_r2_samples_[0, g])
            # Inside up to float32 round-off: the exact null often sits exactly on its
            # interval's lower end (extended down to the estimate, see r2_interval).
            tol = 1e-5
            out["null (float32) in exact null CI"].append(
                (single, float(ci[g, 0]) - tol, float(ci[g, 1]) + tol, single)
            )
            out["null (float32) - exact"].append((single, np.nan, np.nan, float(exact_r2[g])))
            expected = float(probe.null_r2_[g])
            fits = perm_probe.null_r2_samples_[:, g]
            half = T_NULL * fits.std(ddof=1) / np.sqrt(N_NULL)
            out["null (expected) in re-paired mean CI"].append(
                (expected, fits.mean() - half, fits.mean() + half, expected)
            )
            # Against the mean of the N_NULL refits (the estimand the closed form computes)
            # and against one refit (what null="permutation", n_null=1 reports).
            mean = float(perm_probe.null_r2_[g])
            out["null (expected) - re-paired mean"].append((expected, np.nan, np.nan, mean))
            out["null (1 re-paired fit) - re-paired mean"].append((single, np.nan, np.nan, mean))

    scan = subgroup_scan(
        p.Z, group, n_bootstrap=n_bootstrap, confidence=confidence, random_state=seed
    )
    # The scan's ridge fit is on the grand-mean-centred latents; refit the same probe to read
    # its maps, and move its intercepts back to the uncentred coordinates.
    mean = p.Z.mean(axis=(0, 1))
    inner = LinearProbe(n_null=0, n_bootstrap=0, random_state=seed).fit(p.Z - mean)
    bias = inner.bias_ + mean - np.einsum("gij,j->gi", inner.rho_, mean)
    for i, h in enumerate(group.subgroups(False)):
        if h.order == 1:
            # The trivial subgroup: invariance 1 by definition, reported as [1, 1] exactly
            # (a truth computed as 1 − 1e-16 would count as a miss); nothing to calibrate.
            continue
        out["subgroup invariance"].append(
            (
                float(scan.invariance[i]),
                float(scan.invariance_low[i]),
                float(scan.invariance_high[i]),
                p.subgroup_invariance(h),
            )
        )
        others = [g for g in h.elements if g != group.identity]
        if others:
            out["subgroup r2 (pooled)"].append(
                (
                    float(scan.r2[i]),
                    float(scan.r2_low[i]),
                    float(scan.r2_high[i]),
                    p.pooled_map_r2(others, inner.rho_, bias),
                )
            )
    names, share, interval = spectrum_with_ci(
        p.Z, group, n_bootstrap=n_bootstrap, confidence=confidence, random_state=seed
    )
    truth = p.spectrum.sel(irrep=names).values
    for k in range(len(names)):
        out["spectrum share"].append(
            (float(share[k]), float(interval[k, 0]), float(interval[k, 1]), float(truth[k]))
        )
    return out


def _exact_null(probe: Any, Z: np.ndarray, seed: int) -> tuple:
    """Held-out targets and predictions of the exact (float64) re-paired null fit."""
    import torch

    from probes._ridge import fit_design

    Zt = torch.as_tensor(Z)
    n = Zt.shape[1]
    tr = torch.as_tensor(probe.train_index_)
    te = torch.as_tensor(probe.test_index_)
    perm = torch.as_tensor(probe.null_permutations_[0])
    design = fit_design(Zt[probe.identity, tr])
    alphas = torch.as_tensor(probe.alphas_)
    DB, b, _, _ = probe._fit_targets(design, Zt.permute(1, 0, 2)[perm[tr]].clone(), alphas)
    XV = Zt[probe.identity, te] @ design.Vt.T
    del n
    return Zt[:, perm[te]], probe._predict_projected(XV, DB, b)


def summarise(records: dict[str, list], n_draws: int, confidence: float) -> dict[str, dict]:
    """Coverage, bias, RMSE and mean width per interval kind."""
    out = {}
    for kind, rows in records.items():
        a = np.asarray(rows, dtype=np.float64)
        est, lo, hi, truth = a.T
        covered = (lo <= truth) & (truth <= hi)
        # Intervals the package declines to give (NaN plus a warning, e.g. too few sampled
        # elements of a continuous group) are counted apart; coverage is over the others.
        given = np.isfinite(lo) & np.isfinite(hi)
        out[kind] = {
            "n": len(a),
            "nan": int(len(a) - given.sum()) if given.any() else 0,
            "draws": n_draws,
            "coverage": float(covered[given].mean()) if given.any() else np.nan,
            "bias": float(np.mean(est - truth)),
            "rmse": float(np.sqrt(np.mean((est - truth) ** 2))),
            "width": float(np.mean((hi - lo)[given])) if given.any() else np.nan,
            "truth": float(np.mean(truth)),
        }
    return out


def binomial_lower(confidence: float, n_draws: int, z: float = 2.0) -> float:
    """One-sided lower band of an empirical coverage over ``n_draws`` independent draws.

    The coverage of a calibrated interval is a binomial proportion with mean ``confidence``
    and standard deviation ``sqrt(c (1 − c) / n)``; ``z = 2`` leaves a 2.3% chance of a
    calibrated interval falling below (e.g. 200 draws at 95%: 0.95 − 0.031 = 0.919).
    """
    return confidence - z * np.sqrt(confidence * (1 - confidence) / n_draws)


def calibrate(settings: list[Any], n_draws: int, n_bootstrap: int = 200) -> list[tuple]:
    """``[(setting, summary), ...]`` over ``n_draws`` seeds per setting."""
    out = []
    for setting in settings:
        records: dict[str, list] = defaultdict(list)
        for seed in range(n_draws):
            for kind, rows in setting.draw(seed, n_bootstrap).items():
                records[kind].extend(rows)
        out.append((setting, summarise(records, n_draws, 0.95)))
        print(f"done: {setting.label}", file=sys.stderr, flush=True)
    return out


def table(results: list[tuple], n_draws: int) -> str:
    """Markdown table: one row per (setting, interval kind)."""
    lines = [
        f"Bootstrap intervals at 95%, {n_draws} planted draws per setting; the binomial "
        f"lower band for {n_draws} draws is {binomial_lower(0.95, n_draws):.3f}.",
        "",
        "| setting | quantity | intervals | coverage | bias | RMSE | mean width | mean truth |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    pooled: dict[str, list] = defaultdict(list)
    for setting, summary in results:
        for kind in (*KINDS, *NULL_DIFFERENCES):
            if kind not in summary:
                continue
            s = summary[kind]
            pooled[kind].append(s)
            count = f"{s['n']} ({s['nan']} NaN)" if s.get("nan") else f"{s['n']}"
            lines.append(
                f"| {setting.label} | {kind} | {count} | {_fmt(s['coverage'])} | "
                f"{_small(s['bias'], '+')} | {_small(s['rmse'])} | {_fmt(s['width'])} | "
                f"{s['truth']:.3f} |"
            )
    lines += ["", "Pooled over the settings:", ""]
    lines += ["| quantity | intervals | coverage (pooled) | coverage range over settings |"]
    lines += ["|---|---:|---:|---|"]
    for kind, rows in pooled.items():
        n = sum(r["n"] for r in rows)
        nan = sum(r.get("nan", 0) for r in rows)
        cov = [r["coverage"] for r in rows]
        if np.isfinite(cov).all():
            mean = sum(r["coverage"] * (r["n"] - r.get("nan", 0)) for r in rows) / (n - nan)
            count = f"{n} ({nan} NaN)" if nan else f"{n}"
            lines.append(f"| {kind} | {count} | {mean:.3f} | {min(cov):.3f} – {max(cov):.3f} |")
    return "\n".join(lines)


def _small(x: float, sign: str = "") -> str:
    return f"{x:{sign}.4f}" if x == 0 or abs(x) >= 1e-4 else f"{x:{sign}.1e}"


def _fmt(x: float) -> str:
    return "—" if not np.isfinite(x) else f"{x:.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a small smoke grid")
    parser.add_argument("--draws", type=int, default=200, help="planted draws per setting")
    parser.add_argument("--write", action="store_true", help="write docs/calibration.md")
    parser.add_argument("--family", choices=FAMILIES, help="one family's grid only")
    args = parser.parse_args()
    t = time.perf_counter()
    families = FAMILIES if args.family is None else (args.family,)
    doc = ROOT / "docs" / "calibration.md"
    for family in families:
        settings = grid(args.quick, family)
        if not settings:
            continue
        results = calibrate(settings, args.draws)
        text = table(results, args.draws)
        print(text)
        print(f"\n{len(settings)} settings x {args.draws} draws, {time.perf_counter() - t:.0f} s")
        if args.write:
            write_table(doc, family, text)


def write_table(doc: Path, family: str, text: str) -> None:
    """Replace ``family``'s table in ``doc``: between ``<!-- table:family -->`` and
    ``<!-- end:family -->`` (the finite table: after ``<!-- table -->``, to the end)."""
    content = doc.read_text() if doc.exists() else ""
    if family == "finite":
        head, sep, _ = content.partition("<!-- table -->")
        if not sep:
            raise SystemExit(f"{doc} has no '<!-- table -->' marker to write the table under")
        doc.write_text(f"{head}<!-- table -->\n\n{text}\n")
        return
    start, end = f"<!-- table:{family} -->", f"<!-- end:{family} -->"
    head, sep, rest = content.partition(start)
    _, sep2, tail = rest.partition(end)
    if not (sep and sep2):
        raise SystemExit(f"{doc} has no '{start}' ... '{end}' markers for the {family} table")
    doc.write_text(f"{head}{start}\n\n{text}\n\n{end}{tail}")


if __name__ == "__main__":
    main()
