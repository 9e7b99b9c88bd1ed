"""Lie derivatives of a model along rotations, the SO(3) generators and any differentiable
one-parameter family of input transformations (the functions that call the user's model)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from latentgeo._validate import check_real

__all__ = [
    "family_latents",
    "family_lie_derivative",
    "lie_derivative",
    "so3_lie_derivative",
]


def lie_derivative(
    fn: Callable[[Any], Any],
    x: Any,
    action: Any,
    eps: float = 1e-3,
    out_action: Any = None,
    *,
    select: Any = None,
) -> torch.Tensor:
    """Lie derivative of ``fn`` along rotations at θ = 0, by central finite differences.

    ``(F(ε) − F(−ε)) / 2ε`` with ``F(θ) = fn(action.rotate(x, θ))`` (invariance: zero for an
    invariant ``fn``), or ``F(θ) = out_action(−θ, fn(action.rotate(x, θ)))`` when the output
    rotates too (equivariance: zero for an equivariant ``fn``).  The error of the central
    difference is O(ε²).

    Parameters
    ----------
    fn : callable
        A model or function of a batch of inputs.
    x : Tensor
        A batch of inputs.
    action : object with ``rotate(x, angle)``
        Rotation of the inputs by an angle in radians (e.g. interpolated image rotation).
    eps : float
        Finite-difference step in radians.
    out_action : callable ``(angle, y) -> y`` or object with ``rotate``, optional
        Rotation of the outputs.
    select : str, sequence or callable, optional
        Which tensor of a structured output (tuple, dict, ``ModelOutput``) to differentiate;
        default: its first tensor, depth-first (``latentgeo._outputs``).

    Notes
    -----
    A model is called through latentgeo's protected model-call path: in eval mode entered and
    left through its own ``train()`` (every submodule's mode restored), without gradients,
    with random state and batch-norm statistics untouched.

    Returns
    -------
    Tensor
        Same shape as ``fn(x)``.

    Examples
    --------
    >>> import torch
    >>> class Plane:
    ...     def rotate(self, x, angle):
    ...         c, s = torch.cos(torch.tensor(angle)), torch.sin(torch.tensor(angle))
    ...         return x @ torch.stack([torch.stack([c, s]), torch.stack([-s, c])]).to(x)
    >>> x = torch.randn(5, 2, dtype=torch.float64)
    >>> d = lie_derivative(lambda p: p.norm(dim=1), x, Plane())
    >>> bool(d.abs().max() < 1e-8)
    True
    """
    if not hasattr(action, "rotate"):
        raise TypeError(f"action must provide rotate(x, angle), got {action!r}")
    check_real(eps, "eps", minimum=0, open_minimum=True)
    if out_action is not None and not callable(out_action):
        if not hasattr(out_action, "rotate"):
            raise TypeError(f"out_action must be callable or provide rotate, got {out_action!r}")
        rot_out = out_action.rotate

        def out_rotate(angle: float, y: Any) -> Any:
            return rot_out(y, angle)
    else:
        out_rotate = out_action

    from latentgeo._model_call import protected_call
    from latentgeo._outputs import select_output

    def F(angle: float) -> Any:
        y = fn(action.rotate(x, angle))
        if not isinstance(y, torch.Tensor):
            y = select_output(y, select, what="the model's output")[0]
        return y if out_rotate is None else out_rotate(-angle, y)

    # The model is measured, never changed: eval through its own API (the answer of a model
    # left in train mode is its eval-mode answer), no grad, RNG and batch-norm stats kept.
    with protected_call(fn):
        return (F(eps) - F(-eps)) / (2.0 * eps)


# --------------------------------------------------------------------------------------
# Lie derivatives along any differentiable one-parameter family (SO(3) generators, image
# scaling / shear / translation), exact by autograd or by central differences.


def _call_model(fn: Callable[[Any], Any], inputs: Any) -> torch.Tensor:
    """The one place the Lie-derivative functions below call the user's model.

    Through the protected model-call path (:func:`latentgeo._model_call.protected_call`: eval
    through the model's own API, modes, batch-norm statistics and random state restored),
    with the caller's grad mode kept inside it: the autograd Lie derivative differentiates
    through this call with respect to the family's parameter (never the weights).
    """
    from latentgeo._model_call import protected_call

    grad = torch.is_grad_enabled()
    with protected_call(fn), torch.set_grad_enabled(grad):
        out = fn(inputs)
    if not isinstance(out, torch.Tensor):
        raise TypeError(
            f"fn must return a tensor for a Lie derivative, got {type(out).__name__!r}; wrap "
            "the model so it returns the tensor to differentiate"
        )
    return out


def _linear_part(out_generator: Any, y: torch.Tensor) -> torch.Tensor:
    """``L y`` on the last axis of ``y`` (``y @ Lᵀ``), or ``out_generator(y)`` if callable."""
    if callable(out_generator):
        lin = out_generator(y)
        if not isinstance(lin, torch.Tensor) or lin.shape != y.shape:
            raise ValueError(
                f"out_generator(y) must return a tensor of the output's shape {tuple(y.shape)}"
            )
        return lin
    L = torch.as_tensor(np.asarray(out_generator, dtype=np.float64), device=y.device)
    if L.ndim != 2 or L.shape != (y.shape[-1], y.shape[-1]):
        raise ValueError(
            f"out_generator must be a ({y.shape[-1]}, {y.shape[-1]}) matrix acting on the "
            f"output's last axis, got shape {tuple(L.shape)}"
        )
    return y @ L.to(y.dtype).T


def _check_method(method: str, eps: Any) -> None:
    if method not in ("autograd", "fd"):
        raise ValueError(f"method must be 'autograd' or 'fd', got {method!r}")
    check_real(eps, "eps", minimum=0, open_minimum=True)


def _jvp(F: Callable[[torch.Tensor], torch.Tensor], t0: torch.Tensor) -> tuple[Any, Any]:
    """``(F(t0), dF/dt(t0))`` exactly: forward mode (dual numbers) where every operation
    has a forward-mode formula, else two reverse passes (double backward), which covers
    operations without one (e.g. ``grid_sample``)."""
    import torch.autograd.forward_ad as fwAD

    one = torch.ones_like(t0)
    try:
        # Dual numbers directly: torch.func.jvp would import torch._dynamo (seconds).
        with fwAD.dual_level():
            y, dy = fwAD.unpack_dual(F(fwAD.make_dual(t0, one)))
        return y, torch.zeros_like(y) if dy is None else dy
    except NotImplementedError:
        with torch.enable_grad():
            return torch.autograd.functional.jvp(F, t0, one)


def family_lie_derivative(
    fn: Callable[[Any], Any],
    x: torch.Tensor,
    family: Callable[[Any, Any], Any],
    out_generator: Any = None,
    *,
    method: str = "autograd",
    eps: float = 1e-3,
) -> torch.Tensor:
    """Lie derivative of ``fn`` along a one-parameter family of input transformations.

    ``(L f)(x) = d/dt [expm(−t L_out) f(T_t x)] at t = 0 = d/dt f(T_t x)|₀ − L_out f(x)``
    (Gruver et al., 2023, "The Lie derivative for measuring learned equivariance", ICLR,
    eq. 2): zero for every ``x`` exactly when ``f`` is equivariant along the family with output
    generator ``L_out`` (invariant when ``out_generator`` is None).  For latents whose
    transformation is unknown, pass the generator a probe fitted (:class:`GeneratorProbe`,
    :class:`LieAlgebraProbe`): what remains is the part of the derivative no linear
    representation explains.  The family need not be compact: scaling, shear and continuous
    translation of images (:mod:`latentgeo.actions` families) have no Haar spectrum but a
    Lie derivative all the same.

    ``method="autograd"`` differentiates exactly: one forward-mode product (dual numbers)
    or, where an operation has no forward-mode formula (e.g. ``grid_sample``), the same product
    from two reverse passes (double backward, ``torch.autograd.functional.jvp``); parameters'
    ``.grad`` are not touched.
    ``method="fd"`` uses the central difference ``(F(ε) − F(−ε)) / 2ε`` with no gradients
    (error O(ε²) for smooth families; O(ε) for bicubic image interpolation, whose second
    derivative jumps at pixel centres).

    Parameters
    ----------
    fn : torch.nn.Module or callable
        The model or function of a batch of inputs; must return a tensor.  A module is
        called through the protected model-call path (eval through its own API, modes,
        batch-norm statistics and random state restored); a plain function gets the
        random-state protection only, so pass the module itself to measure its eval mode.
    x : Tensor
        A batch of inputs (floating point).
    family : callable ``(x, t) -> x'``
        ``T_t``, differentiable in ``t`` (e.g. :class:`latentgeo.actions.ImageAffineFamily`,
        :func:`latentgeo.actions.point_cloud_rotation`), ``T_0`` the identity.
    out_generator : array-like of shape (d, d) or callable ``y -> L y``, optional
        Output generator acting on the last axis of ``fn(x)`` (``y ↦ y @ Lᵀ``).
    method : {"autograd", "fd"}
    eps : float
        Step of ``method="fd"``.

    Returns
    -------
    Tensor
        Same shape as ``fn(x)``, detached.

    Raises
    ------
    TypeError
        ``x`` not a floating tensor, ``fn`` not returning a tensor.
    ValueError
        Bad ``method``, ``eps`` or ``out_generator`` shape.

    Examples
    --------
    >>> import torch
    >>> from latentgeo.actions import point_cloud_rotation, so3_basis
    >>> x = torch.randn(4, 10, 3, dtype=torch.float64)
    >>> centroid = lambda p: p.mean(dim=-2)          # equivariant: a vector output
    >>> d = family_lie_derivative(centroid, x, point_cloud_rotation("z"), so3_basis()[2])
    >>> bool(d.abs().max() < 1e-12)
    True
    """
    _check_method(method, eps)
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise TypeError(f"x must be a floating-point torch.Tensor, got {type(x).__name__!r}")
    if not callable(family):
        raise TypeError(f"family must be callable as family(x, t), got {family!r}")
    t_dtype = torch.float64 if x.dtype == torch.float64 else x.dtype

    def F(t: torch.Tensor) -> torch.Tensor:
        return _call_model(fn, family(x, t))

    zero = torch.zeros((), dtype=t_dtype, device=x.device)
    if method == "autograd":
        y0, dy = _jvp(F, zero)
    else:
        with torch.no_grad():
            y0 = F(zero)
            dy = (F(zero + eps) - F(zero - eps)) / (2.0 * eps)
    y0, dy = y0.detach(), dy.detach()
    if out_generator is not None:
        dy = dy - _linear_part(out_generator, y0)
    return dy


def so3_lie_derivative(
    fn: Callable[[Any], Any],
    x: torch.Tensor,
    out_generators: Any = None,
    *,
    method: str = "autograd",
    eps: float = 1e-3,
) -> torch.Tensor:
    """Lie derivatives of ``fn`` on 3-D point clouds along the so(3) generators ``X_x, X_y, X_z``.

    For each ``i``: ``d/dt f(x expm(t X_i)ᵀ)|₀ − L_i f(x)`` (see :func:`family_lie_derivative`),
    with ``(X_i)_{jk} = −ε_{ijk}`` (:func:`latentgeo.actions.so3_basis`).

    Parameters
    ----------
    fn : callable
        Model of point clouds ``(..., n_points, 3)``; returns a tensor.
    x : Tensor of shape (..., n_points, 3)
    out_generators : array-like of shape (3, d, d), optional
        Output generators ``L_x, L_y, L_z`` on the last axis of ``fn(x)`` (``so3_basis()``
        for a vector output; ``LieAlgebraProbe.generators_`` for latents); None measures
        invariance.
    method : {"autograd", "fd"}
    eps : float

    Returns
    -------
    Tensor of shape (3, *fn(x).shape)
    """
    from latentgeo.actions import point_cloud_rotation

    if out_generators is not None and not callable(out_generators):
        gens = np.asarray(out_generators, dtype=np.float64)
        if gens.ndim != 3 or gens.shape[0] != 3:
            raise ValueError(
                f"out_generators must have shape (3, d, d) (L_x, L_y, L_z), got {gens.shape}"
            )
        per_axis: list[Any] = list(gens)
    else:
        per_axis = [None] * 3
    return torch.stack(
        [
            family_lie_derivative(
                fn, x, point_cloud_rotation(i), per_axis[i], method=method, eps=eps
            )
            for i in range(3)
        ]
    )


def family_latents(
    fn: Callable[[Any], Any], x: torch.Tensor, family: Callable[[Any, Any], Any], ts: Any
) -> torch.Tensor:
    """Outputs along a family, ``Z[a] = fn(T_{ts[a]} x)``, to fit a generator from.

    The result feeds :class:`GeneratorProbe` (``GeneratorProbe().fit(Z, ts)``; its "angles"
    are the family's parameters, and ``expm(tL)`` need not be periodic) — the fitted
    generator of a non-compact family.

    Parameters
    ----------
    fn : callable
    x : Tensor of shape (n, ...)
    family : callable ``(x, t) -> x'``
    ts : array-like of shape (n_t,)
        Parameters; include 0 for the identity.

    Returns
    -------
    Tensor of shape (n_t, n, d)
        ``fn``'s output flattened after the batch axis, detached.
    """
    t = np.asarray(ts, dtype=np.float64).ravel()
    if t.size == 0 or not np.all(np.isfinite(t)):
        raise ValueError(f"ts must be a non-empty array of finite parameters, got {ts!r}")
    with torch.no_grad():
        out = [_call_model(fn, family(x, float(v))) for v in t]
    return torch.stack([o.reshape(o.shape[0], -1) for o in out]).detach()
