"""Per-(layer, step) computation of :func:`probes.run`: the mechanism of probe kinds.

A *probe kind* is one small function registered under a name.  It receives the
:class:`Block` of one (layer, step) — latents centred by their grand mean, the group, the
run's settings — and returns its result variables, each an array whose dims (after
``layer`` and ``step``) the registration declares.  The runner, the executors and the
result merging know nothing about any particular kind: adding one is one registered
function (see ``docs/interfaces.md``; the built-in kinds are in :mod:`probes._builtin_kinds`)::

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
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from latentgeo._registry import Registry

if TYPE_CHECKING:
    from latentgeo.groups import Group
    from probes._settings import RunSettings

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


def _check_new_kind(name: str, kind: ProbeKind) -> None:
    """A new kind's name is its own, its variables are new, the kinds it requires exist."""
    if name != kind.name:
        raise ValueError(f"probe kind {kind.name!r} cannot be registered as {name!r}")
    taken = {v for other in PROBE_KINDS.values() for v in other.variables} | {"nonfinite"}
    clash = sorted(set(kind.variables) & taken)
    if clash:
        raise ValueError(f"probe kind {name!r}: variables {clash!r} are already registered")
    unknown = [r for r in kind.requires if r not in PROBE_KINDS]
    if unknown:
        raise ValueError(
            f"probe kind {name!r} requires unregistered kinds {unknown!r}; "
            f"registered: {PROBE_KINDS.names()!r}"
        )


#: Probe kinds :func:`probes.run` knows, in the order they are computed (registration
#: order).  Installed packages may declare kinds in the ``latentgeo.probes`` entry-point group
#: (the entry point names a :class:`ProbeKind`, or an object of a module that registers the
#: kind with :func:`register_probe` when imported); they are loaded when first asked for.
PROBE_KINDS: Registry[ProbeKind] = Registry(
    "probe kind",
    "latentgeo.probes",
    ProbeKind,
    instances=True,
    base_name="probes.ProbeKind",
    check=_check_new_kind,
)
#: Labelled dims: ``labels(group, elements) -> list of labels`` (fixed size per run).  A
#: dim is registered by the module of the kind that uses it, so it needs no entry points.
DIMS: Registry[Callable[[Any, Sequence[str]], list[Any]]] = Registry("labelled dim", None)
#: Extra coordinates of a labelled dim, added when the dim is used:
#: ``coords(group, elements) -> {name: (dims, values)}``.
DIM_COORDS: Registry[Callable[[Any, Sequence[str]], dict[str, Any]]] = Registry(
    "dim coordinate", None
)


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
        kind = ProbeKind(
            name, {k: tuple(v) for k, v in variables.items()}, build, requires, finite_only
        )
        PROBE_KINDS.register(kind, name=name)
        return build

    return decorator


def register_dim(
    name: str, coords: Callable[[Any, Sequence[str]], dict[str, Any]] | None = None
) -> Callable:
    """Register ``labels(group, elements) -> list`` as the coordinate of the dim ``name``.

    ``coords(group, elements) -> {coordinate name: (dims, values)}``, optional, adds
    coordinates that describe the labels (e.g. which elements each subgroup holds).

    Raises
    ------
    ValueError
        For a dim already registered.
    """

    def decorator(labels: Callable[[Any, Sequence[str]], list[Any]]) -> Callable:
        if name in DIMS:
            raise ValueError(f"dim {name!r} is already registered")
        DIMS.register(labels, name=name)
        if coords is not None:
            DIM_COORDS.register(coords, name=name)
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
        raise ValueError(f"unknown probes {unknown!r}; valid probes are {PROBE_KINDS.names()!r}")
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
    group : Group
    settings : dict
        From :func:`probes._settings.make_settings`.
    device : torch.device or str or None
    data_eps : float or None
        Machine epsilon of the stored latents (float32 for most stores), which sets the
        tolerance of their numerical span (:mod:`probes._span`) when it is coarser than the
        computation dtype's.
    """

    Z: torch.Tensor
    group: Group
    settings: RunSettings
    device: Any = None
    data_eps: float | None = None
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
            lambda: LinearProbe(device=self.device, dtype=self.dtype, **self.linear_params()).fit(
                self.Z
            ),
        )

    def linear_params(self) -> dict[str, Any]:
        """The run's LinearProbe settings, with the span tolerance of the stored dtype.

        The block was converted to the computation dtype, so the probes cannot see that the
        latents were stored in float32; unless the run sets ``rank_tol``, it is the default
        rule ``max(n_train, n_units) · ε`` with the stored dtype's ``ε``.
        """
        params = dict(self.settings.linear)
        if "rank_tol" not in params and self.data_eps is not None:
            from probes._linear import LinearProbe
            from probes._validation import train_test_indices

            default = LinearProbe()
            train, _ = train_test_indices(
                self.Z.shape[1],
                params.get("test_size", default.test_size),
                params.get("random_state", default.random_state),
            )
            params["rank_tol"] = max(len(train), self.Z.shape[2]) * self.data_eps
        return params


def private_tensor(Z: Any, dtype: torch.dtype, device: Any = None) -> torch.Tensor:
    """A fresh tensor copy of ``Z`` in ``dtype`` on ``device``, converted without temporaries."""
    src = torch.as_tensor(np.asarray(Z))  # shares memory with the loaded block
    Zt = torch.empty(src.shape, dtype=dtype, device=device)
    Zt.copy_(src)
    return Zt


def probe_block(
    Zt: torch.Tensor,
    group: Group,
    settings: RunSettings,
    device: Any = None,
    data_eps: float | None = None,
) -> dict[str, np.ndarray]:
    """Every probe kind of ``settings`` on one (layer, step).

    Parameters
    ----------
    Zt : torch.Tensor of shape (n_elements, n_samples, n_units)
        Handed over: it is centred in place (see :func:`private_tensor`).
    group : Group
    settings : dict
        From :func:`probes._settings.make_settings`.
    device : torch.device or str, optional
    data_eps : float, optional
        Machine epsilon of the stored latents (see :class:`Block`).

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
    block = Block(Zt, group, settings, device, data_eps)
    failed: list[str] = []
    for name in settings.probes:
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
