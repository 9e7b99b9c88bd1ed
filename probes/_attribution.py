"""Which layer breaks a symmetry: each layer's share of the end-to-end equivariance error.

Two estimators, one result shape (:func:`equivariance_attribution`):

- **Intervention** (finite groups, sampled continuous groups): the layer's output on the orbit
  is replaced by its orbit average under the layer's representation (:mod:`probes._orbit_reps`),
  which makes the network up to that layer exactly equivariant on the orbit, and the forward
  continues.  ``E_ℓ``, the end-to-end error left, is the error made *after* layer ``ℓ``.
  Layers are ordered as the forward calls them; with ``E_0`` the model's own error,
  ``contribution_k = E_{k-1} − E_k`` is the error added between layer ``k−1`` and layer ``k``,
  and ``rest = E_K`` the error made after the last layer: contributions and rest sum to the
  total exactly (a telescoping sum).  ``error_drop_ℓ = E_0 − E_ℓ`` is how much the error falls when
  layer ``ℓ`` is made equivariant.
- **Lie derivative** (one-parameter families): the layer-wise decomposition of Gruver et al.
  (2023, "The Lie derivative for measuring learned equivariance", ICLR; the per-layer
  analysis of their Fig. 4), in
  :mod:`probes._attribution_lie`.

The error of an orbit of outputs ``Y[g]`` under the output representation is its distance to
its orbit average, over the model's own output variance:
``E = Σ_g Σ_i ‖Y[g, i] − Ỹ[g, i]‖² / Σ_g Σ_i ‖Y[g, i] − Ȳ‖²`` (``Ȳ`` the grand mean), so the
untouched model's ``E`` is its non-equivariant share of variance (one minus the invariance of
:func:`probes.invariance` for invariant outputs).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from latentgeo._errors import outside_stacklevel
from probes._intervene import LayerForward, check_inputs, forward_order, model_layers
from probes._orbit_reps import orbit_rep

__all__ = ["equivariance_attribution"]


def _orbit_error(Y: torch.Tensor, rep: Any, denom: torch.Tensor) -> torch.Tensor:
    """Per-element error ``Σ_i ‖Y[g,i] − Ỹ[g,i]‖² / denom``, shape (n_elements,)."""
    diff = (Y - rep.average(Y)).reshape(Y.shape[0], -1)
    return (diff * diff).sum(dim=1) / denom


def equivariance_attribution(
    model: torch.nn.Module,
    action: Any,
    inputs: Any,
    layers: Any,
    *,
    out_action: Any = None,
    layer_reps: Any = "auto",
    out_generator: Any = None,
    layer_generators: Any = "auto",
    select: Any = None,
    names: Any = None,
) -> Any:
    """Each layer's contribution to the end-to-end equivariance (or invariance) error.

    Parameters
    ----------
    model : torch.nn.Module
        Called only through latentgeo's protected model-call path (eval through its own
        ``train()``, modes, random state and batch-norm statistics restored).
    action : Action, OneParameterFamily, sequence of families, or ``"so3"``
        An :class:`latentgeo.actions.Action` (finite group, element subset or sampled
        continuous group) selects the intervention estimator; a differentiable one-parameter
        family ``(x, t) -> x'`` (:mod:`latentgeo.actions` families), a sequence of them, or
        ``"so3"`` (the three rotation generators of point clouds) the Lie-derivative one
        (see :func:`probes._attribution_lie.lie_attribution`).
    inputs : Tensor of shape (n_samples, ...)
        The batch (float64 for float64 precision).
    layers : str or sequence of str
        Submodule names or glob patterns; ordered by the forward.
    out_action : None, ``"input"``, ``"fitted"`` or Action
        Intervention: the output's representation; None for invariance, ``"input"`` when the
        output lives on the input's grid (segmentation maps).
    layer_reps : ``"auto"``, ``"input"``, ``"channels"``, ``"fitted"``, Action, or mapping
        of layer to one
        Intervention: each layer's representation.  ``"auto"``: the input's action applied to
        the layer's tensor where it accepts it, the orbit is a whole finite group and the
        action exact (conv feature maps under rot90/flips/cyclic shifts), else the ridge maps
        :class:`probes.LinearProbe` fits on the layer's orbit latents.  ``"channels"``: the
        input's action on the feature map's grid composed with fitted channel maps
        ``h(g·x) ≈ P_g (g·h(x)) + c_g`` (mirrored channel pairs, Bökman & Kahl 2023).
    out_generator, layer_generators :
        Lie derivative: see :func:`probes._attribution_lie.lie_attribution`.
    select : output selector, optional
        Which tensor of the model's output is measured (:mod:`latentgeo._outputs`).
    names : sequence of str, optional
        Lie derivative: element names of the families.

    Returns
    -------
    xarray.Dataset
        Dims ``layer`` (forward order) and ``element``.  Variables: ``contribution``
        (layer[, element]) and ``rest`` (the part after the last layer) summing exactly to
        ``total``; intervention also ``error_equivariant`` (``E_ℓ``) and ``error_drop``
        (``E_0 − E_ℓ``), ``representation`` and ``fit_r2`` (layer: the mean held-out R²
        of a fitted representation's maps, NaN for others); attrs ``method``
        (``"intervention"``/``"lie_derivative"``) and ``sum_error`` (``|Σ contribution + rest
        − total|``, float round-off).

    Raises
    ------
    TypeError
        ``model`` not a module, ``inputs`` not a floating tensor, ``action`` of neither kind.
    ValueError
        Unknown layers, layers the forward does not call, a representation that cannot act on
        a layer.

    Examples
    --------
    >>> import torch
    >>> from latentgeo.actions import ImageRotations
    >>> _ = torch.manual_seed(0)
    >>> net = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3, padding=1), torch.nn.Flatten(),
    ...                           torch.nn.Linear(2 * 8 * 8, 3)).double()
    >>> x = torch.randn(64, 1, 8, 8, dtype=torch.float64)
    >>> ds = equivariance_attribution(net, ImageRotations("C4"), x, ["0"])
    >>> law = abs(ds.contribution.sum("layer") + ds.rest - ds.total) / ds.total
    >>> float(law.max()) < 1e-12  # contributions and the rest add up to the total error
    True
    """
    from latentgeo.actions import Action

    if not isinstance(action, Action):
        from probes._attribution_lie import lie_attribution

        return lie_attribution(
            model,
            action,
            inputs,
            layers,
            out_generator=out_generator,
            layer_generators=layer_generators,
            select=select,
            names=names,
        )
    return _intervention(model, action, inputs, layers, out_action, layer_reps, select)


def _fit_r2(rep: Any) -> float:
    """Mean held-out R² of a fitted representation over the non-identity elements (how
    linearly equivariant the layer is); NaN for a representation that is not fitted."""
    r2 = getattr(rep, "r2", None)
    return float(np.mean(r2[1:])) if r2 is not None and len(r2) > 1 else float("nan")


def _intervention(
    model: torch.nn.Module,
    action: Any,
    inputs: Any,
    layers: Any,
    out_action: Any,
    layer_reps: Any,
    select: Any,
) -> Any:
    import xarray as xr

    from probes._orbit_reps import TrivialRep

    x = check_inputs(inputs)
    names, modules = model_layers(model, layers)
    fwd = LayerForward(model, modules, select)
    names = forward_order(fwd, x, names)
    orbit = action.orbit(x)  # (G, n, ...)
    n_el, n = orbit.shape[0], orbit.shape[1]
    flat = orbit.reshape(n_el * n, *orbit.shape[2:])

    def as_orbit(t: torch.Tensor) -> torch.Tensor:
        return t.reshape(n_el, n, *t.shape[1:])

    with torch.no_grad():
        y, hidden = fwd(flat, read=names)
    Y = as_orbit(y)
    out_rep = TrivialRep() if out_action is None else orbit_rep(out_action, action, Y, "output")
    centred = (Y - Y.mean(dim=(0, 1), keepdim=True)).reshape(-1)
    denom = (centred * centred).sum()
    if not denom > 0:
        raise ValueError("the model's output is constant on the orbit: no error to attribute")
    total = _orbit_error(Y, out_rep, denom)

    reps: dict[str, Any] = {}
    for name in names:
        spec = layer_reps.get(name, "auto") if isinstance(layer_reps, Mapping) else layer_reps
        reps[name] = orbit_rep(spec, action, as_orbit(hidden[name]), f"layer {name!r}")
    del hidden, y, Y, centred  # the layers' activations are not needed past this point
    poor = {n: r2 for n in names if (r2 := _fit_r2(reps[n])) < 0}
    if poor:
        warnings.warn(
            "the fitted representation of "
            + ", ".join(f"layer {n!r} (held-out R² {r2:.3g})" for n, r2 in poor.items())
            + " predicts the orbit worse than its mean: the orbit average under it is not an "
            "equivariant version of the layer, and its contribution (and the error after it) "
            'can be far larger than the total; pass layer_reps= ("input", "channels", an '
            "action) for it, more samples, or leave the layer out",
            UserWarning,
            stacklevel=outside_stacklevel(),
        )
    errors = []
    for name in names:
        rep = reps[name]

        def equivariant(h: torch.Tensor, rep: Any = rep) -> torch.Tensor:
            return rep.average(as_orbit(h)).reshape(h.shape)

        with torch.no_grad():
            y_l, _ = fwd(flat, replace={name: equivariant})
        errors.append(_orbit_error(as_orbit(y_l), out_rep, denom))

    E = torch.stack(errors).cpu().numpy()  # (layer, element)
    tot = total.cpu().numpy()
    before = np.concatenate([tot[None], E[:-1]])
    contribution = before - E
    rest = E[-1]
    sum_error = float(np.abs(contribution.sum(0) + rest - tot).max())
    elements = np.asarray(action.elements, dtype=object)
    ds = xr.Dataset(
        {
            "contribution": (("layer", "element"), contribution),
            "error_drop": (("layer", "element"), tot[None] - E),
            "error_equivariant": (("layer", "element"), E),
            "rest": ("element", rest),
            "total": ("element", tot),
            "representation": ("layer", np.array([reps[n].name for n in names], dtype=object)),
            "fit_r2": ("layer", np.array([_fit_r2(reps[n]) for n in names])),
        },
        coords={"layer": np.array(names, dtype=object), "element": elements},
        attrs={
            "method": "intervention",
            "output_representation": out_rep.name,
            "sum_error": sum_error,
            "n_samples": int(n),
        },
    )
    return ds
