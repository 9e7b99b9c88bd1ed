"""Which irreps each run learns, and how alike two runs' equivariant parts are.

:func:`compare_spectra` lines up the irrep spectra of several runs (seeds, models) over
training with bootstrap intervals over the probe set, marks the irreps each run carries at
each step and the step each one emerged.  :func:`compare_isotypic` matches two runs' layers
irrep by irrep: principal angles between their isotypic subspaces and linear CKA restricted
to each isotypic component.  Both read the orbits the run stores already hold.

Chughtai, Chan & Nanda (2023), "A toy model of universality", found that networks trained on
the same group task often settle on different irreps; these are the measurements behind
that kind of statement.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

if TYPE_CHECKING:
    import xarray as xr

    from latentgeo.store import Run

__all__ = ["compare_isotypic", "compare_spectra", "spectrum_with_ci"]


def _as_run(item: Any) -> Run:
    from latentgeo.store import Run, open_run

    if isinstance(item, Run):
        return item
    if isinstance(item, str | os.PathLike):
        return open_run(item)
    raise TypeError(f"expected a latentgeo Run or a store path, got {type(item).__name__}")


def _finite_group(run: Run, group: Any) -> Any:
    g = run.group if group is None else group
    if g is None:
        raise ValueError(f"run {str(run.path)!r} records no group; pass group=")
    if not g.is_finite:
        raise ValueError(
            f"{g.spec} is continuous: compare spectra of continuous groups through "
            "probes.run(..., probes=('spectrum',)) results"
        )
    return g


def spectrum_with_ci(
    Z: Any,
    group: Any,
    *,
    n_bootstrap: int = 200,
    confidence: float = 0.95,
    random_state: int | None = 0,
    dtype: torch.dtype = torch.float64,
    device: Any = None,
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Irrep spectrum of orbit latents with a percentile bootstrap over probe samples.

    Each sample's orbit signal is split into isotypic components (per-sample energies from the
    group-Fourier core, :func:`latentgeo.groups.finite_energies`); the spectrum is their sum
    over samples over the total, as :func:`probes.orbit_spectrum` computes (and equal to it),
    and each bootstrap resample reweights the samples
    (:func:`latentgeo._bootstrap.ratio_interval`).

    Parameters
    ----------
    Z : array of shape (order, n_samples, n_units)
    group : FiniteGroup
    n_bootstrap : int
    confidence : float in (0, 1)
    random_state : int, optional
    dtype, device : computation dtype and device

    Returns
    -------
    names : list of str
        Irrep names.
    share : array of shape (n_irreps,)
    interval : array of shape (n_irreps, 2)
        NaN when ``n_bootstrap == 0``.
    """
    from latentgeo._validate import as_orbit_tensor, check_group_order
    from latentgeo.groups import finite_energies

    Zt = as_orbit_tensor(Z, dtype=dtype, device=device)
    check_group_order(Zt.shape[0], group)
    # Per-sample energies in each isotypic component, from the group-Fourier core.
    energies = finite_energies(Zt, group, dtype=dtype)
    share = energies.shares().cpu().numpy()
    interval = energies.intervals(n_bootstrap, confidence, np.random.default_rng(random_state))
    return list(energies.names), share, interval


def compare_spectra(
    runs: Sequence[Any] | Mapping[str, Any],
    layer: str,
    *,
    names: Sequence[str] | None = None,
    threshold: float = 0.1,
    group: Any = None,
    n_bootstrap: int = 200,
    confidence: float = 0.95,
    random_state: int | None = 0,
) -> xr.Dataset:
    """The irrep spectra of several runs over training, and which irreps each run learned.

    Parameters
    ----------
    runs : sequence or mapping of Run or store path
        Runs recorded under the same finite group (a mapping gives the names).
    layer : str
        Layer to compare (every run must have it).
    names : sequence of str, optional
        Run names (default: store folder names).
    threshold : float in (0, 1)
        An irrep is *carried* at a step when the lower end of its share's bootstrap interval
        is at least this (the share itself when ``n_bootstrap == 0``).
    group : FiniteGroup, optional
        Override the runs' recorded group.
    n_bootstrap, confidence, random_state
        Percentile bootstrap over the probe samples.

    Returns
    -------
    xarray.Dataset
        Dims ``run``, ``step`` (union of the runs' steps, NaN where a run has none),
        ``irrep``.  ``share``, ``share_low``, ``share_high`` and ``carried`` (bool) of dims
        (run, step, irrep); ``emergence (run, irrep)``: the step from which the irrep is
        carried to the end (NaN: not carried at the end) — :func:`trajectories.onset` of
        ``share_low``; ``learned (run, irrep)``: carried at the run's last step.

    Raises
    ------
    ValueError
        For runs with different groups, a missing layer, or a continuous group.
    """
    import xarray as xr

    from trajectories._compare import _name_of
    from trajectories._onset import onset

    if isinstance(runs, Mapping):
        if names is not None:
            raise ValueError("pass names either as mapping keys or as names=, not both")
        names = [str(k) for k in runs]
        items = [_as_run(v) for v in runs.values()]
    else:
        items = [_as_run(v) for v in runs]
        names = [_name_of(r, i) for i, r in enumerate(items)] if names is None else list(names)
    if not items:
        raise ValueError("runs is empty; pass at least one run")
    if len(names) != len(items) or len(set(names)) != len(names):
        raise ValueError(f"names must be {len(items)} unique strings, got {names!r}")
    if not 0.0 < float(threshold) < 1.0:
        raise ValueError(f"threshold must lie in (0, 1), got {threshold!r}")
    groups = [_finite_group(r, group) for r in items]
    if any(g != groups[0] for g in groups):
        raise ValueError(f"the runs have different groups {[g.spec for g in groups]!r}")
    G = groups[0]
    for name, r in zip(names, items, strict=True):
        if layer not in r.layers:
            raise ValueError(f"run {name!r} has no layer {layer!r}; it has {r.layers!r}")
    steps = np.unique(np.concatenate([np.asarray(r.steps, dtype=np.int64) for r in items]))
    irreps = list(G.irrep_names())
    shape = (len(items), steps.size, len(irreps))
    share, low, high = np.full(shape, np.nan), np.full(shape, np.nan), np.full(shape, np.nan)
    for i, r in enumerate(items):
        lat = r.latents(layer)
        for j, step in enumerate(np.asarray(r.steps)):
            s = int(np.searchsorted(steps, step))
            _, sh, ci = spectrum_with_ci(
                lat.isel(step=j).values,
                G,
                n_bootstrap=n_bootstrap,
                confidence=confidence,
                random_state=random_state,
            )
            share[i, s], low[i, s], high[i, s] = sh, ci[:, 0], ci[:, 1]
    bound = low if n_bootstrap else share
    carried = np.nan_to_num(bound, nan=-np.inf) >= threshold
    ds = xr.Dataset(
        {
            "share": (("run", "step", "irrep"), share),
            "share_low": (("run", "step", "irrep"), low),
            "share_high": (("run", "step", "irrep"), high),
            "carried": (("run", "step", "irrep"), carried),
        },
        coords={"run": names, "step": steps, "irrep": irreps},
        attrs={"group": G.spec, "layer": layer, "threshold": float(threshold)},
    )
    emergence = np.full((len(items), len(irreps)), np.nan)
    learned = np.zeros((len(items), len(irreps)), dtype=bool)
    for i, r in enumerate(items):
        own = np.isin(steps, np.asarray(r.steps))
        for k in range(len(irreps)):
            series = np.where(carried[i, own, k], 1.0, 0.0)
            t = onset(series, 0.5, steps=steps[own])
            emergence[i, k] = np.nan if t is None else float(t)
            learned[i, k] = bool(carried[i, own, k][-1])
    ds["emergence"] = (("run", "irrep"), emergence)
    ds["learned"] = (("run", "irrep"), learned)
    return ds


def _rank_for(X: torch.Tensor, explained: float) -> int:
    """Fewest principal directions holding ``explained`` of the (centred) variance."""
    s = torch.linalg.svdvals(X - X.mean(dim=0, keepdim=True))
    energy = s**2
    total = energy.sum()
    if total <= 0:
        return 0
    cum = torch.cumsum(energy, 0) / total
    return int(torch.searchsorted(cum, torch.tensor(explained, dtype=cum.dtype)).item()) + 1


def compare_isotypic(
    run_a: Any,
    run_b: Any,
    layer_a: str,
    layer_b: str | None = None,
    *,
    step: int | None = None,
    step_b: int | None = None,
    k: int | None = None,
    explained: float = 0.9,
    group: Any = None,
) -> xr.Dataset:
    """Group-aware similarity of two runs' layers, one irrep at a time.

    For each real irrep the orbit latents of both layers are projected onto their isotypic
    components (``latentgeo.geometry.isotypic_component``: the part of each sample's orbit
    signal that transforms like the irrep); the two components are compared by

    - the principal angles between their top-``k`` principal subspaces (in each layer's own
      unit space, so the same number of units is not needed — the angles compare the
      subspaces' shapes through the shared orbit rows; see Notes), and
    - linear CKA (Kornblith et al. 2019) between the components, with rows = (element,
      sample) pairs that both runs share.

    Parameters
    ----------
    run_a, run_b : Run or store path
        Recorded under the same finite group on the same probe set.
    layer_a, layer_b : str
        Layers to compare (``layer_b`` defaults to ``layer_a``).
    step, step_b : int, optional
        Training steps (default: each run's last checkpoint; ``step_b`` defaults to ``step``).
    k : int, optional
        Subspace dimension per irrep; default the fewest directions holding ``explained``
        of each component's variance (the larger of the two runs'), capped by both widths.
    explained : float in (0, 1)
    group : FiniteGroup, optional

    Returns
    -------
    xarray.Dataset
        Dim ``irrep`` (and ``angle``): ``cka (irrep)``, ``share_a``/``share_b (irrep)`` (each
        run's spectrum), ``k (irrep)``, ``principal_angles (irrep, angle)`` in radians (NaN
        padded), ``mean_cos (irrep)`` (mean cosine of the angles).  NaN for an irrep that
        either layer does not carry.

    Raises
    ------
    ValueError
        For runs with different groups, elements or probe sets, or unknown layers/steps.

    Notes
    -----
    Principal angles need the two bases in one space.  Each layer's isotypic component is a
    matrix of shape ``(|G|·n, d)``; its top-``k`` *row-space* directions live in different unit
    spaces, so the angles are taken between the top-``k`` *column spaces* (the subspaces of
    ``R^(|G|·n)`` spanned by the component's principal scores): two layers whose components are
    related by any invertible linear map of units have angle 0.  CKA measures the same
    alignment weighted by variance.
    """
    import xarray as xr

    from latentgeo.geometry import isotypic_component, linear_cka, principal_angles

    ra, rb = _as_run(run_a), _as_run(run_b)
    layer_b = layer_a if layer_b is None else layer_b
    ga, gb = _finite_group(ra, group), _finite_group(rb, group)
    if ga != gb:
        raise ValueError(f"the runs have different groups ({ga.spec!r}, {gb.spec!r})")
    if tuple(ra.elements) != tuple(rb.elements):
        raise ValueError("the runs were recorded over different group elements")
    sha = [r.attrs.get("probe", {}).get("sha256") for r in (ra, rb)]
    if sha[0] is not None and sha[1] is not None and sha[0] != sha[1]:
        raise ValueError(
            "the runs were recorded on different probe sets (their sha256 differ); "
            "similarity of latents needs the same inputs"
        )
    if not 0.0 < float(explained) < 1.0:
        raise ValueError(f"explained must lie in (0, 1), got {explained!r}")

    def block(r: Run, layer: str, at: int | None) -> torch.Tensor:
        if layer not in r.layers:
            raise ValueError(f"no layer {layer!r} in {str(r.path)!r}; layers are {r.layers!r}")
        steps = [int(s) for s in r.steps]
        if at is None:
            i = len(steps) - 1
        elif int(at) in steps:
            i = steps.index(int(at))
        else:
            raise ValueError(f"step {at!r} is not a checkpoint of {str(r.path)!r}: {steps!r}")
        Z = torch.as_tensor(np.asarray(r.latents(layer).isel(step=i).values, dtype=np.float64))
        return Z - Z.mean(dim=(0, 1), keepdim=True)

    Za = block(ra, layer_a, step)
    Zb = block(rb, layer_b, step if step_b is None else step_b)
    if Za.shape[:2] != Zb.shape[:2]:
        raise ValueError(
            f"the layers' orbits differ in shape {tuple(Za.shape[:2])} vs {tuple(Zb.shape[:2])}"
        )
    names = list(ga.irrep_names())
    R = len(names)
    width = min(Za.shape[-1], Zb.shape[-1])
    cka = np.full(R, np.nan)
    kk = np.zeros(R, dtype=np.int64)
    angles = np.full((R, width), np.nan)
    share = np.zeros((2, R))
    ta, tb = float((Za**2).sum()), float((Zb**2).sum())
    # Each run's spectrum from the group-Fourier core (NaN for a layer with no variance).
    from latentgeo.groups import finite_energies

    for j, (Zj, tj) in enumerate(((Za, ta), (Zb, tb))):
        share[j] = finite_energies(Zj, ga).shares().cpu().numpy() if tj > 0 else np.nan
    for r, name in enumerate(names):
        Xa = isotypic_component(Za, ga, name).reshape(-1, Za.shape[-1])
        Xb = isotypic_component(Zb, ga, name).reshape(-1, Zb.shape[-1])
        if float((Xa**2).sum()) <= 1e-12 * max(ta, 1e-300) or float((Xb**2).sum()) <= 1e-12 * max(
            tb, 1e-300
        ):
            continue  # one layer does not carry this irrep: nothing to align
        kr = k if k is not None else max(_rank_for(Xa, explained), _rank_for(Xb, explained))
        kr = min(int(kr), width)
        kk[r] = kr
        # Column spaces: left singular vectors (principal scores) of each component.
        Ua = torch.linalg.svd(Xa - Xa.mean(0), full_matrices=False)[0][:, :kr]
        Ub = torch.linalg.svd(Xb - Xb.mean(0), full_matrices=False)[0][:, :kr]
        theta = principal_angles(Ua, Ub).cpu().numpy()
        angles[r, :kr] = theta
        cka[r] = float(linear_cka(Xa, Xb))
    mean_cos = np.array(
        [np.nan if kk[r] == 0 else float(np.mean(np.cos(angles[r, : kk[r]]))) for r in range(R)]
    )
    return xr.Dataset(
        {
            "cka": ("irrep", cka),
            "share_a": ("irrep", share[0]),
            "share_b": ("irrep", share[1]),
            "k": ("irrep", kk),
            "principal_angles": (("irrep", "angle"), angles),
            "mean_cos": ("irrep", mean_cos),
        },
        coords={"irrep": names, "angle": np.arange(width)},
        attrs={"group": ga.spec, "layer_a": layer_a, "layer_b": layer_b},
    )
