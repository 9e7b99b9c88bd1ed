"""The built-in probe kinds and labelled dims of :func:`probes.run`, each registered where it
is defined (the mechanism is :mod:`probes._kinds`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from probes._kinds import Block, register_dim, register_probe

if TYPE_CHECKING:
    from latentgeo.groups import FiniteGroup, Group, Subgroup

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


def _harmonic(block: Block) -> np.ndarray:
    """Shares of a continuous group's harmonic fit (shared by spectrum and invariance)."""
    from probes._harmonic import harmonic_spectrum

    def fit() -> np.ndarray:
        s = block.settings
        shares = harmonic_spectrum(block.Z, block.group, s.element_values, s.harmonic_degree)
        return shares[1].cpu().numpy()

    return block.shared("harmonic", fit)


@register_probe("invariance", {"invariance": ()})
def _invariance(block: Block) -> dict[str, Any]:
    from probes._spectrum import invariance_of_centred

    if not block.group.is_finite:  # the Haar-trivial share of the harmonic fit
        return {"invariance": float(_harmonic(block)[0])}
    return {"invariance": invariance_of_centred(block.Z)}


@register_probe("spectrum", {"spectrum": ("irrep",)})
def _spectrum(block: Block) -> dict[str, Any]:
    from probes._spectrum import subgroup_spectrum

    if not block.group.is_finite:
        return {"spectrum": _harmonic(block)}
    # On the whole group, or on the subgroup the settings name (a subset run).
    return {"spectrum": subgroup_spectrum(block.Z, block.group, block.settings)}


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


@register_probe("consistent", {"consistent_r2": ("element",)}, finite_only=True)
def _consistent(block: Block) -> dict[str, Any]:
    from probes._homomorphism import GroupConsistentProbe

    # The run's LinearProbe settings that GroupConsistentProbe shares (its parameters).
    keys = set(GroupConsistentProbe._get_param_names()) - {"n_bootstrap"}
    kwargs = {k: v for k, v in block.linear_params().items() if k in keys}
    gc = GroupConsistentProbe(
        block.group, device=block.device, dtype=block.dtype, n_bootstrap=0, **kwargs
    )
    return {"consistent_r2": gc.fit(block.Z).r2_}


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
