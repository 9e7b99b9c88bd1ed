"""What each irrep does for the loss: restricted and excluded losses of a layer's orbit parts.

A layer's outputs on the orbit ``g·x`` are, for each sample and unit, a function on the group.
Its isotypic parts (finite groups: the character projectors of the regular representation,
:func:`latentgeo.groups.project_isotypic`; continuous groups: the harmonic least-squares
components of each degree, in the design :func:`latentgeo.groups.harmonic_basis`) sum to
it.  Replacing the layer's output by some of its parts and continuing the forward (through
the protected model-call path, a forward hook replacing the output) measures what those
parts carry:

- the **restricted loss** of a set ``K`` keeps the trivial part and the irreps in ``K``;
- the **excluded loss** removes the irreps in ``K`` and keeps everything else.

Nanda et al. (2023, "Progress measures for grokking via mechanistic interpretability", ICLR)
use both over the key Fourier frequencies of modular addition; Chughtai et al. (2023, "A toy
model of universality", ICML) over the irreps of other finite groups.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch

from latentgeo.groups import (
    check_elements,
    harmonic_basis,
    harmonic_names,
    project_isotypic,
    resolve_max_degree,
)
from probes._intervene import LayerForward, check_inputs, model_layers
from probes._orbit_reps import whole_finite_orbit

__all__ = ["irrep_ablation", "isotypic_components"]


def isotypic_components(
    H: torch.Tensor, group: Any, elements: Any = None, max_degree: int | None = None
) -> tuple[list[str], torch.Tensor]:
    """The isotypic parts of orbit signals, along the element axis.

    Parameters
    ----------
    H : Tensor of shape (n_elements, ...)
        Orbit signals, element axis first (in the group's element order for a finite group;
        at ``elements`` for a continuous one).
    group : group
        A finite group (its whole orbit) or a compact continuous group of the protocol.
    elements : array of shape (n_elements, ...), optional
        Continuous groups: the element values (``action.element_values``).
    max_degree : int, optional
        Continuous groups: the largest degree (default as :func:`probes.orbit_spectrum`).

    Returns
    -------
    names : list of str
        Irrep names in ``group.irreps()`` order (trivial first); continuous groups end with
        ``"residual"``, the part the harmonic fit leaves.
    parts : Tensor of shape (len(names), *H.shape)
        ``parts.sum(0) == H``.  Finite groups: orthogonal projections (Serre, §2.6).
        Continuous groups: ``B_ρ (B⁺ H)_ρ`` with ``B`` the Haar-orthonormal design of
        :func:`latentgeo.groups.harmonic_basis` -- each map is idempotent, and the maps are
        mutually annihilating (``B⁺ B = I`` for a design of full column rank).
    """
    names, part = _component_fn(H, group, elements, max_degree)
    return names, torch.stack([part(i) for i in range(len(names))])


def _component_fn(
    H: torch.Tensor, group: Any, elements: Any, max_degree: int | None
) -> tuple[list[str], Callable[[int], torch.Tensor]]:
    """Names and a function ``i -> part i`` (computed on demand: one part in memory at a
    time, whatever the number of irreps)."""
    if group.is_finite:
        if H.shape[0] != group.order:
            raise ValueError(
                f"a finite group's orbit needs all {group.order} elements along axis 0, got "
                f"{H.shape[0]}"
            )
        irreps = group.irreps()
        return [r.name for r in irreps], lambda i: project_isotypic(group, irreps[i], H)
    values = check_elements(group, elements, H.shape[0])
    degree = resolve_max_degree(group, values, max_degree)
    names = harmonic_names(group, degree)
    B_np, owner = harmonic_basis(group, values, degree)
    B = torch.as_tensor(B_np, dtype=H.dtype, device=H.device)
    flat = H.reshape(H.shape[0], -1)
    C = torch.linalg.pinv(B) @ flat

    def part(i: int) -> torch.Tensor:
        if i == len(names) - 1:
            return (flat - B @ C).reshape(H.shape)
        cols = torch.as_tensor(np.flatnonzero(owner == i), device=H.device)
        return (B[:, cols] @ C[cols]).reshape(H.shape)

    return names, part


def _targets(targets: Any, n_el: int, n: int) -> torch.Tensor:
    if not isinstance(targets, torch.Tensor):
        raise TypeError(f"targets must be a torch.Tensor, got {type(targets).__name__!r}")
    if targets.shape[:2] == (n_el, n) and targets.ndim >= 2:
        return targets.reshape(n_el * n, *targets.shape[2:])
    if targets.shape[:1] == (n,):
        return (
            targets.unsqueeze(0).expand(n_el, *targets.shape).reshape(n_el * n, *targets.shape[1:])
        )
    raise ValueError(
        f"targets must have shape (n_samples={n}, ...) -- the same target for every element "
        f"(an invariant task) -- or (n_elements={n_el}, n_samples={n}, ...); got "
        f"{tuple(targets.shape)}"
    )


def irrep_ablation(
    model: torch.nn.Module,
    layer: str,
    action: Any,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], Any],
    *,
    sets: Mapping[str, Sequence[str]] | None = None,
    max_degree: int | None = None,
    select: Any = None,
) -> Any:
    """Restricted and excluded losses of a layer, per irrep and per chosen set of irreps.

    Parameters
    ----------
    model : torch.nn.Module
        Called only through latentgeo's protected model-call path.
    layer : str
        The submodule whose output is projected.
    action : Action
        A whole finite group's orbit, or a sampled compact continuous group
        (``element_values`` the sampled elements).
    inputs : Tensor of shape (n_samples, ...)
    targets : Tensor of shape (n_samples, ...) or (n_elements, n_samples, ...)
        Targets of the untransformed inputs (an invariant task: the same for every element)
        or of every orbit element.
    loss_fn : callable ``(output, target) -> scalar``
        E.g. ``torch.nn.functional.cross_entropy``; called once on the whole orbit batch.
    sets : mapping of str to sequence of irrep names, optional
        Named sets ``K`` (e.g. ``{"key": ["E1", "E5"]}``) measured besides each irrep alone.
    max_degree : int, optional
        Continuous groups: the largest harmonic degree.
    select : output selector, optional
        Which tensor of the model's output goes into ``loss_fn``.

    Returns
    -------
    xarray.Dataset
        Dims ``irrep`` (every irrep but the trivial one; continuous groups also
        ``"residual"``) and ``set``.  Variables ``restricted_loss`` and ``excluded_loss``
        (irrep; and ``set_restricted_loss``, ``set_excluded_loss`` over ``set``), ``energy``
        (irrep: share of the layer's orbit variance, trivial part's spread over samples
        excluded), and scalars ``loss`` (the model's own), ``trivial_loss`` (only the
        trivial part kept).

    Raises
    ------
    TypeError
        For a model that is not a module, non-tensor inputs or targets.
    ValueError
        For an element subset of a finite group (its orbit has no isotypic projectors), an
        unknown layer or irrep name in ``sets``, mis-shaped targets.
    """
    import xarray as xr

    x = check_inputs(inputs)
    group = action.group
    if group.is_finite and not whole_finite_orbit(action):
        raise ValueError(
            f"irrep_ablation needs the whole orbit of a finite group; {action!r} acts by a "
            "subset of its elements"
        )
    names, modules = model_layers(model, [layer] if isinstance(layer, str) else layer)
    if len(names) != 1:
        raise ValueError(f"layer must name one submodule, got {layer!r} -> {names}")
    name = names[0]
    fwd = LayerForward(model, modules, select)
    orbit = action.orbit(x)
    n_el, n = orbit.shape[0], orbit.shape[1]
    flat = orbit.reshape(n_el * n, *orbit.shape[2:])
    tgt = _targets(targets, n_el, n).to(x.device)

    with torch.no_grad():
        y, hidden = fwd(flat, read=[name])
        base = float(loss_fn(y, tgt))
        H = hidden[name].reshape(n_el, n, *hidden[name].shape[1:])
        irrep_names, part = _component_fn(H, group, action.element_values, max_degree)
        index = {r: i for i, r in enumerate(irrep_names)}
        keys = irrep_names[1:]
        sets = dict(sets or {})
        for set_name, members in sets.items():
            unknown = [m for m in members if m not in index or m == irrep_names[0]]
            if unknown:
                raise ValueError(
                    f"set {set_name!r} names {unknown!r}, which are not non-trivial irreps of "
                    f"{group!r}; known: {keys}"
                )

        def loss_with(kept: torch.Tensor) -> float:
            replaced = kept.reshape(n_el * n, *kept.shape[2:])
            out, _ = fwd(flat, replace={name: lambda _h: replaced})
            return float(loss_fn(out, tgt))

        def sum_of(members: Sequence[str]) -> torch.Tensor:
            acc = torch.zeros_like(H)
            for m in members:
                acc += part(index[m])
            return acc

        trivial_part = part(0)
        trivial = loss_with(trivial_part)
        r_loss, e_loss, energy = [], [], []
        for k in keys:  # one part in memory at a time
            pk = part(index[k])
            energy.append(float((pk * pk).sum()))
            r_loss.append(loss_with(trivial_part + pk))
            e_loss.append(loss_with(H - pk))
            del pk
        s_r, s_e = [], []
        for members in sets.values():
            ps = sum_of(members)
            s_r.append(loss_with(trivial_part + ps))
            s_e.append(loss_with(H - ps))
        inv_spread = trivial_part - trivial_part.mean(dim=1, keepdim=True)
        total = sum(energy) + float((inv_spread**2).sum())
        share = np.asarray(energy) / total if total > 0 else np.zeros(len(energy))

    return xr.Dataset(
        {
            "restricted_loss": ("irrep", np.asarray(r_loss)),
            "excluded_loss": ("irrep", np.asarray(e_loss)),
            "energy": ("irrep", share),
            "set_restricted_loss": ("set", np.asarray(s_r, dtype=np.float64)),
            "set_excluded_loss": ("set", np.asarray(s_e, dtype=np.float64)),
            "loss": base,
            "trivial_loss": trivial,
        },
        coords={
            "irrep": np.asarray(keys, dtype=object),
            "set": np.asarray(list(sets), dtype=object),
        },
        attrs={"layer": name, "group": group.spec, "n_samples": int(n)},
    )
