"""Layer-wise decomposition of the Lie derivative (Gruver et al., 2023, ICLR: their Fig. 4).

Write the network as ``f = F_{K+1} ∘ F_K ∘ … ∘ F_1`` around the chosen layers, ``h_k`` the
output of layer ``k`` (``h_0 = x``, ``h_{K+1} = f(x)``), and give every ``h_k`` a generator
``A_k`` of the family's action on it (``A_0`` the family on the inputs, ``A_{K+1}`` the
output's; 0 for invariance).  With ``J_{out←k}`` the Jacobian of the rest of the network in
``h_k``, the chain rule gives

    ``L f = J_{out←0} A_0 x − A_{K+1} f(x) = Σ_{k=1}^{K+1} J_{out←k} (L F_k)``,

``L F_k = J_{F_k} A_{k−1} h_{k−1} − A_k h_k`` the Lie derivative of layer ``k`` alone (its
input held equivariant), pushed to the output.  Each term is computed as
``D_{k−1} − D_k`` with ``D_k = J_{out←k} (A_k h_k)`` — one forward-mode derivative of the
network in which ``h_k`` is moved along ``A_k h_k`` — so the terms sum to the end-to-end
Lie derivative exactly, whatever the generators; the law the tests check is that this sum
equals :func:`probes.family_lie_derivative` of the whole model, computed independently.

A layer's generator: the family itself applied to the layer's tensor where it accepts it
(feature maps of images in the layer's own pixel units, point-cloud coordinates), else the
least-squares linear map ``A = argmin Σ_i ‖A h_k(x_i) − d/dt h_k(T_t x_i)‖²`` (the fitted
generator: what a linear representation explains), or one the user gives.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch

from probes._intervene import LayerForward, check_inputs, forward_order, model_layers
from probes._lie_derivative import _jvp, _linear_part

__all__ = ["lie_attribution"]


def _families(
    family: Any, out_generator: Any, names: Any
) -> tuple[list[Any], list[str], list[Any]]:
    from latentgeo.actions import point_cloud_rotation

    if isinstance(family, str):
        if family != "so3":
            raise ValueError(f"the only named family set is 'so3', got {family!r}")
        fams: list[Any] = [point_cloud_rotation(i) for i in range(3)]
        default_names = ["x", "y", "z"]
    elif callable(family):
        fams, default_names = [family], [type(family).__name__]
    elif isinstance(family, Sequence) and family and all(callable(f) for f in family):
        fams = list(family)
        default_names = [f"{type(f).__name__}{i}" for i, f in enumerate(fams)]
    else:
        raise TypeError(
            "action must be an Action, a one-parameter family (x, t) -> x', a sequence of "
            f"them, or 'so3'; got {family!r}"
        )
    el_names = default_names if names is None else [str(n) for n in names]
    if len(el_names) != len(fams):
        raise ValueError(f"names must give {len(fams)} names, got {names!r}")
    return fams, el_names, _per_element(out_generator, len(fams), "out_generator")


def _per_element(spec: Any, n: int, what: str) -> list[Any]:
    if (isinstance(spec, np.ndarray) and spec.ndim == 3) or (
        isinstance(spec, (list, tuple)) and len(spec) == n and not _is_matrix(spec)
    ):
        if len(spec) != n:
            raise ValueError(f"{what} gives {len(spec)} generators for {n} families")
        return list(spec)
    return [spec] * n


def _is_matrix(spec: Any) -> bool:
    try:
        return np.asarray(spec, dtype=np.float64).ndim == 2
    except (TypeError, ValueError):
        return False


def _tangent(fam: Callable[[Any, Any], Any], h: torch.Tensor) -> torch.Tensor:
    zero = torch.zeros((), dtype=h.dtype, device=h.device)
    return _jvp(lambda t: fam(h, t), zero)[1].detach()


def _fitted(h: torch.Tensor, dh: torch.Tensor, what: str) -> torch.Tensor:
    H = h.reshape(h.shape[0], -1)
    dH = dh.reshape(h.shape[0], -1)
    if H.shape[0] <= H.shape[1]:
        warnings.warn(
            f"the generator fitted for {what} has {H.shape[1]} units from {H.shape[0]} samples: "
            "least squares explains any derivative, so the layer looks equivariant; pass more "
            "samples or a generator",
            stacklevel=4,
        )
    A_t = torch.linalg.lstsq(H, dH, driver="gelsd" if H.device.type == "cpu" else None).solution
    return (H @ A_t).reshape(h.shape)


def _family_fits(fam: Any, h: torch.Tensor, x: torch.Tensor) -> bool:
    """Whether ``"auto"`` applies the input family to a layer's tensor ``h``: the same
    number of axes as the inputs (feature maps of images), or point-cloud coordinates (a
    cloud's vector-valued layers, ``(n, 3)``, rotate as its points do)."""
    from latentgeo.actions import PointCloudFamily

    return h.ndim == x.ndim or isinstance(fam, PointCloudFamily)


def _generator_tangent(
    spec: Any,
    fam: Any,
    h: torch.Tensor,
    dh: torch.Tensor,
    what: str,
    x: torch.Tensor,
    *,
    output: bool = False,
) -> tuple[torch.Tensor, str]:
    """``A h`` for the generator ``spec`` names, and that name."""
    if spec is None:  # the zero generator: the layer (or output) is expected invariant
        return torch.zeros_like(h), "trivial"
    if isinstance(spec, str):
        if spec not in ("auto", "input", "fitted"):
            raise ValueError(
                f"the generator for {what} must be 'auto', 'input', 'fitted', a family, a "
                f"matrix or a callable h -> A h; got {spec!r}"
            )
        if spec == "input" or (spec == "auto" and _family_fits(fam, h, x)):
            try:
                return _tangent(fam, h), "input"
            except (ValueError, TypeError, RuntimeError) as err:
                if spec == "input":
                    raise ValueError(f"the family cannot act on {what}: {err}") from None
        return _fitted(h, dh, what), "fitted"
    if _is_matrix(spec):
        return _linear_part(spec, h), "matrix"
    if callable(spec):
        try:
            return _tangent(spec, h), "family"
        except TypeError:
            return _linear_part(spec, h), "callable"
    raise TypeError(f"the generator for {what} must be a string, matrix or callable, got {spec!r}")


def lie_attribution(
    model: torch.nn.Module,
    family: Any,
    inputs: Any,
    layers: Any,
    *,
    out_generator: Any = None,
    layer_generators: Any = "auto",
    select: Any = None,
    names: Any = None,
) -> Any:
    """Layer-wise Lie-derivative decomposition; see :func:`probes.equivariance_attribution`.

    Parameters
    ----------
    model : torch.nn.Module
    family : one-parameter family, sequence of them, or ``"so3"``
        ``(x, t) -> T_t x`` differentiable in ``t`` (``latentgeo.actions`` families).
    inputs : Tensor of shape (n_samples, ...)
    layers : str or sequence of str
    out_generator : None, ``"input"``, ``"fitted"``, matrix, callable, or one per family
        The output's generator: None for invariance; a ``(d, d)`` matrix on the output's last
        axis (``so3_basis()[i]`` for a vector output); ``"input"`` the family on the output.
    layer_generators : ``"auto"``, ``"input"``, ``"fitted"``, family, matrix, callable, one per
        family, or a mapping of layer name to those
        ``"auto"``: the family on the layer's tensor where it accepts it, else fitted;
        None: the zero generator (the layer is expected invariant).
    select : output selector, optional
    names : sequence of str, optional
        Element (family) names.

    Returns
    -------
    xarray.Dataset
        Dims ``layer``, ``element``.  Per sample ``i``, the layer's term ``C_k(x_i)`` is
        projected on the unit end-to-end Lie derivative ``u_i = L f(x_i) / ‖L f(x_i)‖``:
        ``contribution = mean_i ⟨C_k(x_i), u_i⟩`` (layer, element) and ``rest`` (the head
        after the last layer) sum exactly to ``total = mean_i ‖L f(x_i)‖`` (element).
        ``norm = mean_i ‖C_k(x_i)‖`` (layer, element), ``rest_norm`` (element),
        ``generator`` (layer, element: which generator was used); attrs ``method``,
        ``sum_error`` (largest ``‖Σ_k C_k + rest − L f‖`` over samples, from the tensors).
    """
    import xarray as xr

    x = check_inputs(inputs, floating=True)
    fams, el_names, out_gens = _families(family, out_generator, names)
    layer_names, modules = model_layers(model, layers)
    fwd = LayerForward(model, modules, select)
    order = forward_order(fwd, x, layer_names)
    with torch.no_grad():
        y, hidden = fwd(x, read=order)
    zero = torch.zeros((), dtype=x.dtype, device=x.device)
    n = x.shape[0]

    contrib = np.zeros((len(order), len(fams)))
    norms = np.zeros_like(contrib)
    rest, rest_norm, total = (np.zeros(len(fams)) for _ in range(3))
    gen_used = np.empty((len(order), len(fams)), dtype=object)
    sum_err = 0.0
    for e, fam in enumerate(fams):
        sizes = [y[0].numel()] + [hidden[k][0].numel() for k in order]

        def along(t: torch.Tensor, fam: Any = fam) -> torch.Tensor:
            y_t, h_t = fwd(fam(x, t), read=order)
            parts = [y_t.reshape(n, -1)] + [h_t[k].reshape(n, -1) for k in order]
            return torch.cat(parts, dim=1)

        _, d_all = _jvp(along, zero)
        pieces = torch.split(d_all.detach(), sizes, dim=1)
        D = [pieces[0].reshape(y.shape)]  # D_0 = d/dt f(T_t x)
        for k, name in enumerate(order):
            h = hidden[name]
            spec = (
                layer_generators.get(name, "auto")
                if isinstance(layer_generators, Mapping)
                else layer_generators
            )
            spec = _per_element(spec, len(fams), f"layer_generators[{name!r}]")[e]
            v, gen_used[k, e] = _generator_tangent(
                spec, fam, h, pieces[k + 1].reshape(h.shape), f"layer {name!r}", x
            )

            def moved(s: torch.Tensor, name: str = name, v: torch.Tensor = v) -> torch.Tensor:
                return fwd(x, replace={name: lambda hk: hk + s * v})[0]

            D.append(_jvp(moved, zero)[1].detach())
        out_t, _ = _generator_tangent(out_gens[e], fam, y, D[0], "the output", x, output=True)
        lf = (D[0] - out_t).reshape(n, -1)
        terms = [(D[k] - D[k + 1]).reshape(n, -1) for k in range(len(order))]
        head = (D[-1] - out_t).reshape(n, -1)
        size = lf.norm(dim=1)
        unit = torch.where(size[:, None] > 0, lf / size.clamp_min(1e-300)[:, None], 0.0)
        for k, c in enumerate(terms):
            contrib[k, e] = float((c * unit).sum(dim=1).mean())
            norms[k, e] = float(c.norm(dim=1).mean())
        rest[e] = float((head * unit).sum(dim=1).mean())
        rest_norm[e] = float(head.norm(dim=1).mean())
        total[e] = float(size.mean())
        recon = torch.stack(terms).sum(0) + head
        sum_err = max(sum_err, float((recon - lf).norm(dim=1).max()))

    return xr.Dataset(
        {
            "contribution": (("layer", "element"), contrib),
            "norm": (("layer", "element"), norms),
            "rest": ("element", rest),
            "rest_norm": ("element", rest_norm),
            "total": ("element", total),
            "generator": (("layer", "element"), gen_used),
        },
        coords={
            "layer": np.array(order, dtype=object),
            "element": np.array(el_names, dtype=object),
        },
        attrs={"method": "lie_derivative", "sum_error": sum_err, "n_samples": int(n)},
    )
