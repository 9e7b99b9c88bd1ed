"""Per-(layer, step) computation of :func:`probes.run`: a registry of probe kinds.

A *probe kind* is one small function registered under a name.  It receives the
:class:`Block` of one (layer, step) — latents centred by their grand mean, the group, the
run's settings — and returns its result variables, each an array whose dims (after
``layer`` and ``step``) the registration declares.  The runner, the executors and the
result merging know nothing about any particular kind: adding one is one registered
function (see ``docs/interfaces.md``)::

    @register_probe("norms", variables={"norm": ("element",)})
    def _norms(block):
        return {"norm": block.Z.norm(dim=(1, 2)).cpu().numpy()}

Dims with labels (``element``, ``irrep``, or any added with :func:`register_dim`) have a
fixed size per run; any other dim (``unit_out``, ``unit_in``) is sized by the widest
result and padded with NaN.  Work shared between kinds (the ridge fit that ``homomorphism``,
``characters`` and ``rho`` all read) is memoised on the block with :meth:`Block.shared`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

__all__ = [
    "DEGENERATE_ERRORS",
    "DIMS",
    "DIM_COORDS",
    "PROBE_KINDS",
    "Block",
    "ProbeKind",
    "expand_kinds",
    "private_tensor",
    "probe_block",
    "register_dim",
    "register_probe",
]


@dataclass(frozen=True)
class ProbeKind:
    """A registered probe kind.

    Attributes
    ----------
    name : str
        What users pass in ``probes.run(..., probes=(name, ...))``.
    variables : dict of str to tuple of str
        Result variables and their dims after ``("layer", "step")``.
    build : callable
        ``build(block) -> {variable: array}`` for one (layer, step).
    requires : tuple of str
        Kinds whose variables come along (their work is shared through the block).
    finite_only : bool
        Refused (``ValueError``) on a continuous group.
    """

    name: str
    variables: Mapping[str, tuple[str, ...]]
    build: Callable[[Block], Mapping[str, Any]]
    requires: tuple[str, ...] = ()
    finite_only: bool = False


#: What a probe kind raises on a degenerate block (dead/constant latents, a layer of one
#: unit, a singular fit): its variables are NaN for that block and the others are computed.
#: Anything else is a bug and propagates.
DEGENERATE_ERRORS: tuple[type[BaseException], ...] = (
    ValueError,
    ArithmeticError,
    np.linalg.LinAlgError,
    torch.linalg.LinAlgError,
)

#: Probe kinds :func:`probes.run` knows, in the order they are computed.
PROBE_KINDS: dict[str, ProbeKind] = {}
#: Labelled dims: ``labels(group, elements) -> list of labels`` (fixed size per run).
DIMS: dict[str, Callable[[Any, Sequence[str]], list[Any]]] = {}
#: Extra coordinates of a labelled dim, added when the dim is used:
#: ``coords(group, elements) -> {name: (dims, values)}``.
DIM_COORDS: dict[str, Callable[[Any, Sequence[str]], dict[str, Any]]] = {}


def register_probe(
    name: str,
    variables: Mapping[str, tuple[str, ...]],
    *,
    requires: Iterable[str] = (),
    finite_only: bool = False,
) -> Callable[[Callable[[Block], Mapping[str, Any]]], Callable[[Block], Mapping[str, Any]]]:
    """Register ``build(block) -> {variable: array}`` as the probe kind ``name``.

    Parameters
    ----------
    name : str
        The kind's name; must be new.
    variables : mapping of str to tuple of str
        Every variable ``build`` returns and its dims after ``("layer", "step")``.  Names
        must not clash with another kind's.
    requires : iterable of str
        Registered kinds that come along with this one.
    finite_only : bool
        The kind needs a finite group.

    Raises
    ------
    ValueError
        For a name or variable already registered, or an unknown required kind.
    """
    requires = tuple(requires)

    def decorator(build: Callable[[Block], Mapping[str, Any]]) -> Callable:
        if name in PROBE_KINDS:
            raise ValueError(f"probe kind {name!r} is already registered")
        taken = {v for kind in PROBE_KINDS.values() for v in kind.variables} | {"nonfinite"}
        clash = sorted(set(variables) & taken)
        if clash:
            raise ValueError(f"probe kind {name!r}: variables {clash!r} are already registered")
        unknown = [r for r in requires if r not in PROBE_KINDS]
        if unknown:
            raise ValueError(
                f"probe kind {name!r} requires unregistered kinds {unknown!r}; "
                f"registered: {sorted(PROBE_KINDS)!r}"
            )
        PROBE_KINDS[name] = ProbeKind(
            name, {k: tuple(v) for k, v in variables.items()}, build, requires, finite_only
        )
        return build

    return decorator


def register_dim(
    name: str, coords: Callable[[Any, Sequence[str]], dict[str, Any]] | None = None
) -> Callable:
    """Register ``labels(group, elements) -> list`` as the coordinate of the dim ``name``.

    ``coords(group, elements) -> {coordinate name: (dims, values)}``, optional, adds
    coordinates that describe the labels (e.g. which elements each subgroup holds).
    """

    def decorator(labels: Callable[[Any, Sequence[str]], list[Any]]) -> Callable:
        if name in DIMS:
            raise ValueError(f"dim {name!r} is already registered")
        DIMS[name] = labels
        if coords is not None:
            DIM_COORDS[name] = coords
        return labels

    return decorator


def expand_kinds(kinds: str | Sequence[str]) -> list[str]:
    """The requested kinds and every kind they require, in registration order.

    Raises
    ------
    ValueError
        For an unknown kind, listing the registered ones.
    """
    if isinstance(kinds, str):
        kinds = (kinds,)
    kinds = list(kinds)
    unknown = [k for k in kinds if k not in PROBE_KINDS]
    if unknown:
        raise ValueError(f"unknown probes {unknown!r}; valid probes are {sorted(PROBE_KINDS)!r}")
    wanted: set[str] = set()
    stack = list(kinds)
    while stack:
        k = stack.pop()
        if k not in wanted:
            wanted.add(k)
            stack.extend(PROBE_KINDS[k].requires)
    return [k for k in PROBE_KINDS if k in wanted]


@dataclass
class Block:
    """One (layer, step) handed to every probe kind.

    Attributes
    ----------
    Z : torch.Tensor of shape (n_elements, n_samples, n_units)
        Latents centred by their grand mean (read-only for the kinds).
    group : FiniteGroup or SO2
    settings : dict
        From :func:`probes._settings.make_settings`.
    device : torch.device or str or None
    """

    Z: torch.Tensor
    group: Any
    settings: dict[str, Any]
    device: Any = None
    _memo: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def dtype(self) -> torch.dtype:
        """The computation dtype (``Z.dtype``)."""
        return self.Z.dtype

    def shared(self, name: str, make: Callable[[], Any]) -> Any:
        """``make()`` computed once per block under ``name`` (work several kinds read)."""
        if name not in self._memo:
            self._memo[name] = make()
        return self._memo[name]

    def linear(self) -> Any:
        """The fitted :class:`~probes.LinearProbe` of this block (shared)."""
        from probes._linear import LinearProbe

        return self.shared(
            "linear",
            lambda: LinearProbe(
                device=self.device, dtype=self.dtype, **self.settings["linear"]
            ).fit(self.Z),
        )


def private_tensor(Z: Any, dtype: torch.dtype, device: Any = None) -> torch.Tensor:
    """A fresh tensor copy of ``Z`` in ``dtype`` on ``device``, converted without temporaries."""
    src = torch.as_tensor(np.asarray(Z))  # shares memory with the loaded block
    Zt = torch.empty(src.shape, dtype=dtype, device=device)
    Zt.copy_(src)
    return Zt


def probe_block(
    Zt: torch.Tensor, group: Any, settings: dict[str, Any], device: Any = None
) -> dict[str, np.ndarray]:
    """Every probe kind of ``settings`` on one (layer, step).

    Parameters
    ----------
    Zt : torch.Tensor of shape (n_elements, n_samples, n_units)
        Handed over: it is centred in place (see :func:`private_tensor`).
    group : FiniteGroup or SO2
    settings : dict
        From :func:`probes._settings.make_settings`.
    device : torch.device or str, optional

    Returns
    -------
    dict of str to ndarray
        ``nonfinite`` (count of non-finite latents) and, when it is 0, every variable of the
        requested kinds (without the layer and step axes); ``failed`` (a 0-d string array)
        names the kinds a degenerate block left NaN and why (see :data:`DEGENERATE_ERRORS`).
    """
    # A diverged checkpoint (NaN/Inf latents) must not stop the analysis of the others: its
    # results stay NaN and the count of non-finite values is reported instead.  (A finite
    # sum proves every value finite without an element-wise mask.)
    bad = 0 if bool(torch.isfinite(Zt.sum())) else int((~torch.isfinite(Zt)).sum())
    out: dict[str, np.ndarray] = {"nonfinite": np.asarray(bad)}
    if bad:
        return out
    # Centred in place by the grand mean: the fit-free probes centre anyway and the ridge
    # fits are affine, so no result changes, and no second copy is made.
    Zt -= Zt.mean(dim=(0, 1))
    block = Block(Zt, group, settings, device)
    failed: list[str] = []
    for name in settings["probes"]:
        kind = PROBE_KINDS[name]
        try:
            result = kind.build(block)
        except DEGENERATE_ERRORS as err:
            # A degenerate block (dead or constant latents, one unit, a singular fit) leaves
            # this kind's variables NaN for this block only; the caller warns once per block.
            failed.append(f"{name}: {type(err).__name__}: {err}")
            continue
        missing = sorted(set(kind.variables) - set(result))
        if missing:
            raise RuntimeError(f"probe kind {name!r} returned no {missing!r}")
        out.update({k: np.asarray(result[k]) for k in kind.variables})
    if failed:
        out["failed"] = np.asarray("; ".join(failed))
    return out


# -- labelled dims ------------------------------------------------------------------------


@register_dim("element")
def _element_labels(group: Any, elements: Sequence[str]) -> list[Any]:
    return list(elements)


@register_dim("irrep")
def _irrep_labels(group: Any, elements: Sequence[str]) -> list[Any]:
    # Continuous runs and subgroup spectra get their labels from the runner (the harmonic
    # fit's degree, the subgroup's irreps); this is the whole finite group's.
    return [irrep.name for irrep in group.irreps()]


# -- the probe kinds ----------------------------------------------------------------------


def _harmonic(block: Block) -> np.ndarray:
    """Shares of a continuous group's harmonic fit (shared by spectrum and invariance)."""
    from probes._harmonic import harmonic_spectrum

    def fit() -> np.ndarray:
        s = block.settings
        shares = harmonic_spectrum(block.Z, block.group, s["element_values"], s["harmonic_degree"])
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
    from probes._subsets import subgroup_spectrum

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
    },
)
def _linear(block: Block) -> dict[str, Any]:
    lin = block.linear()
    return {
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

    err = homomorphism_error(block.linear().rho_, block.group, dtype=block.dtype)
    return {"homomorphism_error": err.mean, "homomorphism_error_max": err.max}


@register_probe("characters", {"multiplicity": ("irrep",)}, requires=("linear",), finite_only=True)
def _characters(block: Block) -> dict[str, Any]:
    from probes._characters import character_multiplicities

    return {"multiplicity": character_multiplicities(block.linear().rho_, block.group).values}


@register_probe("consistent", {"consistent_r2": ("element",)}, finite_only=True)
def _consistent(block: Block) -> dict[str, Any]:
    from probes._homomorphism import GroupConsistentProbe

    # The run's LinearProbe settings that GroupConsistentProbe shares (its parameters).
    keys = set(GroupConsistentProbe._get_param_names()) - {"n_bootstrap"}
    kwargs = {k: v for k, v in block.settings["linear"].items() if k in keys}
    gc = GroupConsistentProbe(
        block.group, device=block.device, dtype=block.dtype, n_bootstrap=0, **kwargs
    )
    return {"consistent_r2": gc.fit(block.Z).r2_}


@register_probe("rho", {"rho": ("element", "unit_out", "unit_in")}, requires=("linear",))
def _rho(block: Block) -> dict[str, Any]:
    return {"rho": block.linear().rho_}


# -- subgroups of a finite group ----------------------------------------------------------


def _subgroups_of(group: Any) -> tuple[Any, ...]:
    return tuple(group.subgroups(False)) if group.is_finite else ()


def _subgroup_coords(group: Any, elements: Sequence[str]) -> dict[str, Any]:
    subs = _subgroups_of(group)
    membership = np.stack([h.mask for h in subs]) if subs else np.zeros((0, len(elements)), bool)
    return {
        "subgroup_membership": (("subgroup", "element"), membership),
        "subgroup_order": (("subgroup",), np.array([h.order for h in subs], dtype=np.int64)),
    }


@register_dim("subgroup", coords=_subgroup_coords)
def _subgroup_labels(group: Any, elements: Sequence[str]) -> list[Any]:
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

    lin = block.settings["linear"]
    inv, r2 = scan_arrays(
        block.Z,
        block.group,
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
