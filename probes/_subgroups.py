"""Which part of the symmetry a layer respects: invariance and equivariance per subgroup.

From one recorded orbit over a finite group ``G`` (``Z[g] = z(g·x)``) every subgroup ``H`` can
be measured without recording again:

- *invariance under H*: the right cosets ``H g`` split the orbit into the ``H``-orbits of the
  inputs ``g·x``; the invariant share is the energy of the coset means over the total centred
  energy (the trivial-irrep share of ``H`` acting on the recorded orbit).  Since a larger
  subgroup's cosets are unions of a smaller one's, ``H ⊆ K`` implies
  ``invariance(H) >= invariance(K)``.
- *equivariance over H*: the held-out R² of the linear probe pooled over ``H``'s non-identity
  elements (one ridge fit for all of ``G``, shared by every subgroup).

Intervals are delta-method Student intervals of ratios of per-sample sums: over the probe
samples for invariance (:func:`latentgeo._bootstrap.delta_ratio_interval`), over the
held-out samples for the pooled R² (:func:`probes._scoring.r2_interval`, an interval for
the population R² of the fitted maps, not of the best linear maps).  Both are calibrated on
planted latents in ``docs/calibration.md``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from latentgeo._bootstrap import delta_ratio_interval
from latentgeo._validate import check_int, check_real
from probes._linear import LinearProbe
from probes._scoring import r2_interval, variance_weighted_r2
from probes._validation import as_orbit_tensor, check_group_order

if TYPE_CHECKING:
    import xarray as xr

    from latentgeo.groups import FiniteGroup

__all__ = ["maximal", "respected_subgroups", "subgroup_scan"]


def _invariance_with_ci(
    Zc: torch.Tensor, cosets: np.ndarray, confidence: float | None
) -> tuple[float, float, float]:
    """Invariant share under the subgroup whose right cosets are ``cosets`` (m, |H|).

    Every (coset, sample) pair is one ``H``-orbit (of the input ``g_c·x``): the core's
    orbit-mean energies of those orbits (:func:`latentgeo.groups.subset_energies`), summed per
    probe sample.  The share is a ratio of per-sample sums; its interval is the delta-method
    Student interval (:func:`latentgeo._bootstrap.delta_ratio_interval`, calibrated in
    ``docs/calibration.md``), NaN ends when ``confidence`` is None.
    """
    from latentgeo.groups import OrbitEnergies, subset_energies

    idx = torch.as_tensor(np.array(cosets), device=Zc.device)
    m, h = idx.shape
    n, d = Zc.shape[1], Zc.shape[2]
    orbits = Zc[idx].permute(1, 0, 2, 3).reshape(h, m * n, d)  # H-orbits of every g_c·x
    e = subset_energies(orbits, dtype=Zc.dtype)
    per_sample = OrbitEnergies(
        e.names, e.energies.reshape(m, n, 2).sum(dim=0), e.total.reshape(m, n).sum(dim=0)
    )
    if float(per_sample.total.sum()) <= 0:
        return 1.0, 1.0, 1.0  # no variance: nothing breaks invariance
    value = per_sample.invariance()
    if confidence is None:
        return value, float("nan"), float("nan")
    _, lo, hi = delta_ratio_interval(per_sample.energies[:, 0], per_sample.total, confidence)
    return value, float(lo), float(hi)


def _maximal_by_membership(membership: np.ndarray, flags: np.ndarray) -> np.ndarray:
    m = np.asarray(membership, dtype=bool)
    sizes = m.sum(axis=1)
    inside = (~m[:, None, :] | m[None, :, :]).all(axis=2) & (sizes[:, None] < sizes[None, :])
    return flags & ~(inside & flags[None, :]).any(axis=1)


def respected_subgroups(
    results: xr.Dataset,
    layer: str | None = None,
    step: int | None = None,
    *,
    metric: str = "invariance",
    threshold: float = 0.9,
) -> list[str]:
    """The largest subgroups a layer respects: invariant (or equivariant) above ``threshold``.

    A subgroup qualifies when the lower end of its bootstrap interval (the estimate where
    there is none) is at least ``threshold``; the answer lists the qualifying subgroups that
    lie in no strictly larger qualifying one.

    Parameters
    ----------
    results : xarray.Dataset
        :func:`subgroup_scan` output, or :func:`probes.run` results with the ``subgroups``
        probe (then ``layer`` is required; ``step`` defaults to the last checkpoint).
    layer : str, optional
    step : int, optional
    metric : {"invariance", "r2"}
    threshold : float in (0, 1)

    Returns
    -------
    list of str
        Subgroup names, smallest order first.

    Raises
    ------
    ValueError
        If ``results`` hold no subgroup scan, or for an unknown metric or layer.
    """
    if metric not in ("invariance", "r2"):
        raise ValueError(f"metric must be 'invariance' or 'r2', got {metric!r}")
    threshold = check_real(
        threshold, "threshold", minimum=0, maximum=1, open_minimum=True, open_maximum=True
    )
    if "membership" in results and metric in results:
        var, member = metric, results["membership"]
    elif f"subgroup_{metric}" in results:
        var, member = f"subgroup_{metric}", results["subgroup_membership"]
    else:
        raise ValueError(
            "results hold no subgroup scan; use probes.subgroup_scan or "
            "probes.run(..., probes=('subgroups', ...))"
        )
    sel: dict[str, Any] = {}
    if "layer" in results[var].dims:
        if layer is None:
            raise ValueError(f"pass layer=, one of {[str(v) for v in results.layer.values]!r}")
        sel["layer"] = layer
    if "step" in results[var].dims:
        sel["step"] = results.step.values[-1] if step is None else step
    value = np.asarray(results[var].sel(sel).values, dtype=np.float64)
    low_var = results.get(f"{var}_low")
    low = value if low_var is None else np.asarray(low_var.sel(sel).values, dtype=np.float64)
    bound = np.where(np.isfinite(low), low, value)
    flags = np.nan_to_num(bound, nan=-np.inf) >= threshold
    keep = _maximal_by_membership(member.values, flags)
    return [str(s) for s in results.subgroup.values[keep]]


def maximal(subgroups: Any, flags: np.ndarray) -> np.ndarray:
    """Which flagged subgroups lie in no strictly larger flagged subgroup.

    Parameters
    ----------
    subgroups : sequence of Subgroup
    flags : bool array of shape (n_subgroups,)

    Returns
    -------
    bool array of shape (n_subgroups,)
    """
    flags = np.asarray(flags, dtype=bool)
    out = flags.copy()
    for i, h in enumerate(subgroups):
        if not flags[i]:
            continue
        for j, k in enumerate(subgroups):
            if j != i and flags[j] and k.order > h.order and h.issubgroup(k):
                out[i] = False
                break
    return out


def scan_arrays(
    Zc: torch.Tensor,
    group: FiniteGroup,
    subgroups: Any,
    probe: Any,
    n_bootstrap: int,
    confidence: float,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """Invariance and pooled held-out R² (with intervals) of every subgroup.

    Parameters
    ----------
    Zc : Tensor of shape (order, n_samples, n_units)
        Orbit latents centred by their grand mean.
    group : FiniteGroup
    subgroups : sequence of Subgroup
    probe : LinearProbe
        Fitted on ``Zc`` (its test split and maps are reused: no second fit).
    n_bootstrap, confidence, rng
        Intervals at ``confidence`` when ``n_bootstrap > 0``: delta-method Student intervals
        over probe samples (invariance, :func:`latentgeo._bootstrap.delta_ratio_interval`)
        and held-out samples (R², :func:`probes._scoring.r2_interval`); ``rng`` is unused
        (kept for callers).

    Returns
    -------
    invariance, r2 : arrays of shape (n_subgroups, 3)
        Estimate, lower and upper end (NaN ends when ``n_bootstrap == 0``).
    """
    level = confidence if n_bootstrap else None
    te = torch.as_tensor(probe.test_index_, device=Zc.device)
    W = torch.as_tensor(probe.rho_, dtype=Zc.dtype, device=Zc.device).transpose(1, 2)
    bias = torch.as_tensor(probe.bias_, dtype=Zc.dtype, device=Zc.device)
    X = Zc[group.identity, te]
    k = len(subgroups)
    inv = np.empty((k, 3))
    r2 = np.empty((k, 3))
    for i, h in enumerate(subgroups):
        inv[i] = _invariance_with_ci(Zc, h.right_cosets, level)
        others = [g for g in h.elements if g != group.identity]
        if not others:
            r2[i] = 1.0  # the trivial subgroup: the identity map is exact
            continue
        idx = torch.as_tensor(others, device=Zc.device)
        # Pool the non-identity elements as one target: their units side by side.
        Y = Zc[idx][:, te].permute(1, 0, 2).reshape(1, te.numel(), -1)
        Y_hat = torch.einsum("nd,gde->gne", X, W[idx]) + bias[idx][:, None, :]
        Y_hat = Y_hat.permute(1, 0, 2).reshape(1, te.numel(), -1)
        value = float(variance_weighted_r2(Y, Y_hat)[0])
        if n_bootstrap:
            ci = r2_interval(Y, Y_hat, confidence)[0].cpu().numpy()
        else:
            ci = np.full(2, np.nan)
        r2[i] = (value, ci[0], ci[1])
    return inv, r2


def subgroup_scan(
    Z: Any,
    group: FiniteGroup,
    *,
    subgroups: Any = None,
    threshold: float = 0.9,
    n_bootstrap: int = 200,
    confidence: float = 0.95,
    test_size: float | int = 0.25,
    random_state: int | None = 0,
    device: Any = None,
    dtype: torch.dtype = torch.float64,
) -> xr.Dataset:
    """Invariance and held-out equivariance of orbit latents under every subgroup of ``group``.

    Parameters
    ----------
    Z : array-like or Tensor of shape (order, n_samples, n_units)
        Orbit latents over all of ``group``'s elements, in its element order.
    group : FiniteGroup
        A finite group (the protocol's ``is_finite``) with ``subgroups()``.
    subgroups : sequence of Subgroup, optional
        The subgroups to measure; default every subgroup (``group.subgroups(False)``): a
        layer can be invariant under a subgroup and not under its conjugates.
    threshold : float in (0, 1)
        A subgroup counts as respected when the lower end of the bootstrap interval of its
        invariance (or R²) is at least this.
    n_bootstrap : int
        Any positive value switches the intervals on (both are analytic, see above; the
        count itself is not used); 0 disables them, and then the point estimates are
        compared with ``threshold``.
    confidence : float in (0, 1)
        Coverage of the intervals.
    test_size, random_state, device, dtype
        As for :class:`probes.LinearProbe` (the one ridge fit shared by all subgroups).

    Returns
    -------
    xarray.Dataset
        Dim ``subgroup`` (coordinate: each subgroup's unique name, e.g. ``"C4"``,
        ``"C2<s>"``), and ``element`` (the group's element names).  Variables:
        ``invariance``, ``invariance_low``, ``invariance_high``, ``r2``, ``r2_low``,
        ``r2_high`` (subgroup); ``order``, ``spec`` (``""`` where none), ``conjugacy_class``
        (subgroup); ``membership`` (subgroup, element) and ``subgroup_elements`` (element
        names joined by ``"; "``); ``invariant``, ``equivariant`` (interval above
        ``threshold``) and ``maximal_invariant``, ``maximal_equivariant`` (the largest such
        subgroups: in no strictly larger one that also qualifies).

    Raises
    ------
    TypeError
        If ``group`` is not finite.
    ValueError
        If ``Z``'s element axis does not match the group, or a parameter is out of range.

    Examples
    --------
    >>> import numpy as np
    >>> from latentgeo.groups import Cyclic
    >>> z = np.random.default_rng(0).normal(size=(64, 3))
    >>> scan = subgroup_scan(np.stack([z, -z, z, -z]), Cyclic(4), n_bootstrap=0)
    >>> [str(s) for s in scan.subgroup.values[scan.maximal_invariant.values]]
    ['C2']
    """
    import xarray as xr

    check_group_order(int(np.shape(Z)[0]), group)
    threshold = check_real(
        threshold, "threshold", minimum=0, maximum=1, open_minimum=True, open_maximum=True
    )
    confidence = check_real(
        confidence, "confidence", minimum=0, maximum=1, open_minimum=True, open_maximum=True
    )
    n_bootstrap = check_int(n_bootstrap, "n_bootstrap", minimum=0)
    subs = tuple(group.subgroups(False) if subgroups is None else subgroups)
    for h in subs:
        if getattr(h, "group", None) != group:
            raise ValueError(f"subgroup {h!r} is not a subgroup of {group!r}")
    Zt = as_orbit_tensor(Z, dtype=dtype, device=device)
    Zc = Zt - Zt.mean(dim=(0, 1), keepdim=True)
    probe = LinearProbe(
        test_size=test_size,
        random_state=random_state,
        n_null=0,
        n_bootstrap=0,
        device=device,
        dtype=dtype,
    ).fit(Zc)
    rng = np.random.default_rng(random_state)
    inv, r2 = scan_arrays(Zc, group, subs, probe, n_bootstrap, confidence, rng)

    lower = (lambda a: a[:, 1]) if n_bootstrap else (lambda a: a[:, 0])
    invariant = lower(inv) >= threshold
    equivariant = lower(r2) >= threshold
    names = group.elements
    membership = np.stack([h.mask for h in subs])
    ds = xr.Dataset(
        {
            "invariance": ("subgroup", inv[:, 0]),
            "invariance_low": ("subgroup", inv[:, 1]),
            "invariance_high": ("subgroup", inv[:, 2]),
            "r2": ("subgroup", r2[:, 0]),
            "r2_low": ("subgroup", r2[:, 1]),
            "r2_high": ("subgroup", r2[:, 2]),
            "order": ("subgroup", np.array([h.order for h in subs], dtype=np.int64)),
            "spec": ("subgroup", np.array([h.spec or "" for h in subs], dtype=object)),
            "conjugacy_class": (
                "subgroup",
                np.array([h.conjugacy_class for h in subs], dtype=np.int64),
            ),
            "subgroup_elements": (
                "subgroup",
                np.array(["; ".join(names[g] for g in h.elements) for h in subs], dtype=object),
            ),
            "membership": (("subgroup", "element"), membership),
            "invariant": ("subgroup", invariant),
            "equivariant": ("subgroup", equivariant),
            "maximal_invariant": ("subgroup", maximal(subs, invariant)),
            "maximal_equivariant": ("subgroup", maximal(subs, equivariant)),
        },
        coords={
            "subgroup": np.array([h.name for h in subs], dtype=object),
            "element": np.array(names, dtype=object),
        },
        attrs={"group": group.spec, "threshold": threshold, "confidence": confidence},
    )
    return ds
