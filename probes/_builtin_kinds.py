"""The built-in probe kinds and labelled dims of :func:`probes.run`, each registered where it
is defined (the mechanism is :mod:`probes._kinds`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from probes._kinds import Block, register_dim, register_probe

if TYPE_CHECKING:
    from latentgeo.groups import FiniteGroup, Group, OrbitEnergies, Subgroup

__all__: list[str] = []


# -- labelled dims ------------------------------------------------------------------------


@register_dim("element")
def _element_labels(group: Group, elements: Sequence[str]) -> list[Any]:
    return list(elements)


@register_dim("irrep")
def _irrep_labels(group: Group, elements: Sequence[str]) -> list[Any]:
    # Continuous runs and subgroup spectra get their labels from the runner (the harmonic
    # fit's degree, the subgroup's irreps); this is the whole finite group's.
    return [irrep.name for irrep in group.irreps()]


# -- the probe kinds ----------------------------------------------------------------------


def _finite(block: Block) -> FiniteGroup:
    """The block's group, for the kinds that need its Cayley table (``finite_only``)."""
    from latentgeo.groups import FiniteGroup

    if not isinstance(block.group, FiniteGroup):
        raise TypeError(f"this probe kind needs a finite group's Cayley table, got {block.group!r}")
    return block.group


def _energies(block: Block) -> OrbitEnergies:
    """Per-sample isotypic energies of the block from the group-Fourier core (shared by
    ``spectrum`` and ``invariance``): the harmonic fit (continuous groups), the named
    subgroup's orbit (``settings.subgroup``), or the whole finite group's orbit."""
    from latentgeo.groups import finite_energies, harmonic_energies
    from probes._subsets import subgroup_of

    def make() -> OrbitEnergies:
        s, Z = block.settings, block.Z
        if not block.group.is_finite:
            if s.harmonic_degree is None:  # probes.run resolves it before any task
                raise RuntimeError(f"settings of a continuous run without a degree: {s!r}")
            return harmonic_energies(
                Z, block.group, s.element_values, s.harmonic_degree, dtype=block.dtype
            )
        if s.subgroup is not None:  # the subgroup's latents, re-centred by their own mean
            Zs = Z[torch.as_tensor(s.subgroup["positions"], device=Z.device)]
            return finite_energies(Zs, subgroup_of(s.subgroup), dtype=block.dtype)
        return finite_energies(Z, _finite(block), dtype=block.dtype)

    return block.shared("energies", make)


def _intervals(block: Block, energies: OrbitEnergies) -> np.ndarray:
    """Intervals of the shares (the run's linear settings): bootstrap over probe samples,
    plus the spread over sampled elements on a continuous group (``OrbitEnergies.intervals``;
    NaN with a FallbackWarning when too few elements were sampled for it)."""
    lin = block.settings.linear
    rng = np.random.default_rng(lin.get("random_state", 0))
    return energies.intervals(
        int(lin.get("n_bootstrap", 200)), float(lin.get("confidence", 0.95)), rng
    )


@register_probe("invariance", {"invariance": (), "invariance_low": (), "invariance_high": ()})
def _invariance(block: Block) -> dict[str, Any]:
    from latentgeo.groups import subset_energies

    group, s = block.group, block.settings
    whole = group.is_finite and block.Z.shape[0] == group.order and s.subgroup is None
    if not group.is_finite or (whole and "spectrum" in s.probes):
        energies = _energies(block)  # the Haar-trivial share / the trivial irrep's share
    else:  # the orbit mean over the recorded elements (whole group or a subset of it)
        energies = block.shared("subset", lambda: subset_energies(block.Z, dtype=block.dtype))
    ci = _intervals(block, energies)
    return {
        "invariance": energies.invariance(),
        "invariance_low": ci[0, 0],
        "invariance_high": ci[0, 1],
    }


@register_probe(
    "spectrum",
    {"spectrum": ("irrep",), "spectrum_low": ("irrep",), "spectrum_high": ("irrep",)},
)
def _spectrum(block: Block) -> dict[str, Any]:
    # On the whole group, the subgroup the settings name (a subset run), or the harmonic fit.
    energies = _energies(block)
    ci = _intervals(block, energies)
    return {
        "spectrum": energies.shares().cpu().numpy(),
        "spectrum_low": ci[:, 0],
        "spectrum_high": ci[:, 1],
    }


@register_probe(
    "linear",
    {
        "r2": ("element",),
        "null_r2": ("element",),
        "r2_low": ("element",),
        "r2_high": ("element",),
        "alpha": ("element",),
        "rank": (),
    },
)
def _linear(block: Block) -> dict[str, Any]:
    lin = block.linear()
    return {
        "rank": lin.rank_,  # the dimension of the span the maps were fitted on
        "r2": lin.r2_,
        "null_r2": lin.null_r2_,
        "r2_low": lin.r2_ci_[:, 0],
        "r2_high": lin.r2_ci_[:, 1],
        "alpha": lin.alpha_,
    }


@register_probe(
    "homomorphism",
    {"homomorphism_error": (), "homomorphism_error_max": ()},
    requires=("linear",),
    finite_only=True,
)
def _homomorphism(block: Block) -> dict[str, Any]:
    from probes._homomorphism import homomorphism_error

    err = homomorphism_error(block.linear().rho_, _finite(block), dtype=block.dtype)
    return {"homomorphism_error": err.mean, "homomorphism_error_max": err.max}


@register_probe("characters", {"multiplicity": ("irrep",)}, requires=("linear",), finite_only=True)
def _characters(block: Block) -> dict[str, Any]:
    from probes._characters import character_multiplicities

    return {"multiplicity": character_multiplicities(block.linear().rho_, _finite(block)).values}


@register_probe(
    "consistent",
    {
        "consistent_r2": ("element",),
        "consistent_r2_low": ("element",),
        "consistent_r2_high": ("element",),
    },
    finite_only=True,
)
def _consistent(block: Block) -> dict[str, Any]:
    from probes._homomorphism import GroupConsistentProbe

    # The run's LinearProbe settings that GroupConsistentProbe shares (its parameters,
    # n_bootstrap and confidence included: the interval is the linear kind's r2_low/r2_high).
    keys = set(GroupConsistentProbe._get_param_names())
    kwargs = {k: v for k, v in block.linear_params().items() if k in keys}
    gc = GroupConsistentProbe(block.group, device=block.device, dtype=block.dtype, **kwargs)
    gc.fit(block.Z)
    return {
        "consistent_r2": gc.r2_,
        "consistent_r2_low": gc.r2_ci_[:, 0],
        "consistent_r2_high": gc.r2_ci_[:, 1],
    }


@register_probe("rho", {"rho": ("element", "unit_out", "unit_in")}, requires=("linear",))
def _rho(block: Block) -> dict[str, Any]:
    return {"rho": block.linear().rho_}


# -- subgroups of a finite group ----------------------------------------------------------


def _subgroups_of(group: Group) -> tuple[Subgroup, ...]:
    from latentgeo.groups import FiniteGroup

    return tuple(group.subgroups(False)) if isinstance(group, FiniteGroup) else ()


def _subgroup_coords(group: Group, elements: Sequence[str]) -> dict[str, Any]:
    subs = _subgroups_of(group)
    membership = np.stack([h.mask for h in subs]) if subs else np.zeros((0, len(elements)), bool)
    return {
        "subgroup_membership": (("subgroup", "element"), membership),
        "subgroup_order": (("subgroup",), np.array([h.order for h in subs], dtype=np.int64)),
    }


@register_dim("subgroup", coords=_subgroup_coords)
def _subgroup_labels(group: Group, elements: Sequence[str]) -> list[Any]:
    return [h.name for h in _subgroups_of(group)]


@register_probe(
    "subgroups",
    {
        "subgroup_invariance": ("subgroup",),
        "subgroup_invariance_low": ("subgroup",),
        "subgroup_invariance_high": ("subgroup",),
        "subgroup_r2": ("subgroup",),
        "subgroup_r2_low": ("subgroup",),
        "subgroup_r2_high": ("subgroup",),
    },
    requires=("linear",),
    finite_only=True,
)
def _subgroups(block: Block) -> dict[str, Any]:
    from probes._subgroups import scan_arrays

    lin = block.settings.linear
    inv, r2 = scan_arrays(
        block.Z,
        _finite(block),
        _subgroups_of(block.group),
        block.linear(),
        int(lin.get("n_bootstrap", 200)),
        float(lin.get("confidence", 0.95)),
        np.random.default_rng(lin.get("random_state", 0)),
    )
    out = {}
    for name, arr in (("subgroup_invariance", inv), ("subgroup_r2", r2)):
        out[name], out[f"{name}_low"], out[f"{name}_high"] = arr[:, 0], arr[:, 1], arr[:, 2]
    return out
