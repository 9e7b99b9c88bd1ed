"""Differentiable one-parameter families of input transformations ``t ↦ T_t``.

A family is the flow of one generator: ``T_t = exp(t G)`` acting on inputs, with
``T_0`` the identity and ``T_s ∘ T_t = T_{s+t}`` (exactly for point clouds, up to
interpolation for images).  Families need not be compact: image scaling, shear and
continuous translation are the non-compact families Gruver et al. (2023, "The Lie derivative
for measuring learned equivariance", ICLR) measure with the Lie derivative, and rotations of
point clouds are the one-parameter subgroups of SO(3) along a Lie-algebra basis.

Every family is an immutable value object, called as ``family(x, t)`` with ``t`` a float or a
0-d tensor; the result is differentiable in ``t`` (torch autograd, double backward included),
which is what :func:`probes.family_lie_derivative` uses for exact Lie derivatives.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import torch

from latentgeo._validate import check_real
from latentgeo.actions._base import as_tensor, like_input

__all__ = [
    "ImageAffineFamily",
    "OneParameterFamily",
    "PointCloudFamily",
    "image_rotation",
    "image_scaling",
    "image_shear",
    "image_translation",
    "point_cloud_rotation",
    "so3_basis",
]

_INTERPOLATION = ("bicubic", "bilinear", "nearest")
_PADDING = ("zeros", "border", "reflection")
_AXES = {"x": 0, "y": 1, "z": 2}


def _as_matrix(
    value: Any, shape: tuple[int, ...] | None, name: str
) -> tuple[tuple[float, ...], ...]:
    arr = np.asarray(value, dtype=np.float64)
    if arr.ndim != 2 or (shape is not None and arr.shape != shape):
        want = f"shape {shape}" if shape is not None else "a square 2-D matrix"
        raise ValueError(f"{name} must be {want}, got shape {arr.shape}")
    if shape is None and arr.shape[0] != arr.shape[1]:
        raise ValueError(f"{name} must be a square matrix, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite, got {arr.tolist()!r}")
    return tuple(tuple(float(v) for v in row) for row in arr)


def _parameter(t: Any, like: torch.Tensor) -> torch.Tensor:
    """``t`` as a 0-d float tensor on ``like``'s device (keeping its autograd graph)."""
    dtype = like.dtype if like.is_floating_point() else torch.float64
    if isinstance(t, torch.Tensor):
        if t.ndim != 0 or t.is_complex() or t.dtype == torch.bool:
            raise ValueError(f"t must be a real scalar, got a tensor of shape {tuple(t.shape)}")
        return t.to(device=like.device, dtype=dtype)
    return torch.tensor(check_real(t, "t"), dtype=dtype, device=like.device)


def so3_basis() -> np.ndarray:
    """The standard basis ``(X_x, X_y, X_z)`` of so(3), ``(X_i)_{jk} = −ε_{ijk}``.

    ``exp(t X_i)`` rotates by ``t`` radians about axis ``i`` (right-handed), and
    ``[X_x, X_y] = X_z``, ``[X_y, X_z] = X_x``, ``[X_z, X_x] = X_y``.

    Returns
    -------
    float64 ndarray of shape (3, 3, 3)
        A fresh array (callers may modify it).
    """
    X = np.zeros((3, 3, 3))
    for i, j, k in ((0, 1, 2), (1, 2, 0), (2, 0, 1)):
        X[i, k, j], X[i, j, k] = 1.0, -1.0  # −ε_ijk
    return X


class _Flow(torch.autograd.Function):
    """``expm(t G)`` for a scalar ``t`` and a fixed matrix ``G``, with exact derivatives in
    ``t`` in both modes: ``d/dt expm(tG) = G expm(tG)``.

    Forward mode through ``torch.linalg.matrix_exp`` would route through a decomposition that
    imports ``torch._dynamo`` (seconds); the closed-form derivative avoids it, and the backward
    is written with differentiable operations so double backward works too.
    """

    @staticmethod
    def forward(t: torch.Tensor, G: torch.Tensor) -> torch.Tensor:
        return torch.linalg.matrix_exp(t.detach() * G)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: torch.Tensor) -> None:
        t, G = inputs
        ctx.save_for_backward(t, G)
        ctx.save_for_forward(output, G)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        t, G = ctx.saved_tensors
        return (grad * (G @ _Flow.apply(t, G))).sum(), None

    @staticmethod
    def jvp(ctx: Any, t_dot: torch.Tensor, G_dot: Any) -> torch.Tensor:
        out, G = ctx.saved_tensors
        return t_dot * (G @ out)


def _flow(t: torch.Tensor, G: torch.Tensor) -> torch.Tensor:
    return _Flow.apply(t, G)


class OneParameterFamily:
    """A differentiable one-parameter family ``t ↦ T_t`` of input transformations.

    Subclasses implement :meth:`_transform` on a floating-point tensor and a scalar tensor
    ``t``; :meth:`__call__` handles numpy in/out and the checks.

    Attributes
    ----------
    compact : bool
        Whether the family is a compact (periodic) subgroup, e.g. a rotation; scaling, shear
        and translation are not.
    """

    compact: bool = False

    def __call__(self, x: Any, t: Any) -> Any:
        """Transform a batch ``x`` by ``T_t``.

        Parameters
        ----------
        x : Tensor or ndarray
            Floating-point inputs (shape as the family documents).
        t : float or 0-d Tensor
            The parameter; a tensor that requires grad gives derivatives in ``t``.

        Returns
        -------
        Tensor or ndarray
            Same kind and shape as ``x``.
        """
        xt, was_numpy = as_tensor(x)
        if not xt.is_floating_point():
            raise TypeError(f"{type(self).__name__} needs floating-point inputs, got {xt.dtype}")
        self._validate(xt)
        return like_input(self._transform(xt, _parameter(t, xt)), was_numpy)

    def _validate(self, x: torch.Tensor) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def _transform(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError

    def to_spec(self) -> dict[str, Any]:
        """A JSON-serialisable description: ``{"type": class name, **fields}``."""
        fields = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}  # type: ignore[arg-type]
        return {"type": type(self).__name__, **_jsonable(fields)}


def _jsonable(fields: dict[str, Any]) -> dict[str, Any]:
    return {k: [list(r) for r in v] if isinstance(v, tuple) else v for k, v in fields.items()}


@dataclasses.dataclass(frozen=True)
class PointCloudFamily(OneParameterFamily):
    """Linear flow of point coordinates: ``x ↦ x expm(t G)ᵀ`` on ``(..., n_points, m)``.

    Each point ``p`` (a row) moves to ``expm(t G) p``.  With ``G`` antisymmetric this is a
    rotation (compact); with ``G = I`` a scaling, with a nilpotent ``G`` a shear.

    Parameters
    ----------
    generator : array-like of shape (m, m)
        The Lie-algebra element ``G`` (e.g. ``latentgeo``'s so(3) basis matrices; see
        :func:`point_cloud_rotation`).
    """

    generator: Any

    def __post_init__(self) -> None:
        object.__setattr__(self, "generator", _as_matrix(self.generator, None, "generator"))

    @property
    def compact(self) -> bool:  # type: ignore[override]
        G = np.asarray(self.generator)
        return bool(np.allclose(G, -G.T, rtol=0, atol=1e-12))

    @property
    def dim(self) -> int:
        """The coordinate dimension ``m``."""
        return len(self.generator)

    def _validate(self, x: torch.Tensor) -> None:
        if x.ndim < 2 or x.shape[-1] != self.dim:
            raise ValueError(
                f"PointCloudFamily with a {self.dim}x{self.dim} generator acts on point clouds "
                f"of shape (..., n_points, {self.dim}); got shape {tuple(x.shape)}"
            )

    def _transform(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        G = torch.as_tensor(self.generator, dtype=t.dtype, device=x.device)
        return x @ _flow(t, G).transpose(0, 1)


def point_cloud_rotation(axis: str | int, dim: int = 3) -> PointCloudFamily:
    """Rotations of 3-D point clouds about a coordinate axis: ``exp(t X_axis)``.

    The generators are the standard so(3) basis ``(X_i)_{jk} = −ε_{ijk}``, so
    ``[X_x, X_y] = X_z`` (cyclic) and ``exp(t X_z)`` turns ``e_x`` towards ``e_y``.

    Parameters
    ----------
    axis : {"x", "y", "z"} or {0, 1, 2}
    dim : int
        Must be 3 (kept explicit so planar use asks for :class:`PointCloudFamily`).

    Returns
    -------
    PointCloudFamily
    """
    if dim != 3:
        raise ValueError(f"point_cloud_rotation is for 3-D point clouds (dim=3), got dim={dim!r}")
    if isinstance(axis, str) and axis in _AXES:
        i = _AXES[axis]
    elif isinstance(axis, (int, np.integer)) and not isinstance(axis, bool) and 0 <= axis < 3:
        i = int(axis)
    else:
        raise ValueError(f"axis must be 'x', 'y', 'z' or 0, 1, 2; got {axis!r}")
    return PointCloudFamily(so3_basis()[i])


@dataclasses.dataclass(frozen=True)
class ImageAffineFamily(OneParameterFamily):
    """Affine flow of images ``(..., H, W)`` by ``grid_sample``, differentiable in ``t``.

    Coordinates are pixel units from the image centre, ``p = (u, v)`` = (column, row), as in
    :class:`ImageRotationAngles`.  The generator ``[M | b]`` (2x3) is the velocity of the
    picture's content: a feature at ``p`` moves along ``dp/dt = M p + b``, so the transformed
    image samples the input at ``expm(−t Ĝ) p`` (``Ĝ`` the 3x3 homogeneous generator) with
    ``interpolation``; outside the image ``padding_mode`` decides.

    Interpolation and derivatives: with ``"bicubic"`` (default; PyTorch's cubic convolution,
    a = −0.75, a C¹ kernel) ``T_t x`` is continuously differentiable in ``t`` and the autograd
    derivative at ``t = 0`` equals the derivative of the interpolant at the pixel centres
    (central differences agree to O(ε) — the kernel's second derivative jumps at the nodes).
    ``"bilinear"`` is only piecewise linear: at ``t = 0`` every sample sits on a node, where it
    has no derivative, and autograd returns one of the one-sided differences.

    Parameters
    ----------
    generator : array-like of shape (2, 3)
        ``[M | b]``: ``M`` in 1/unit-t, ``b`` in pixels per unit t.
    interpolation : {"bicubic", "bilinear", "nearest"}
    padding_mode : {"zeros", "border", "reflection"}
    """

    generator: Any
    interpolation: str = "bicubic"
    padding_mode: str = "zeros"

    def __post_init__(self) -> None:
        object.__setattr__(self, "generator", _as_matrix(self.generator, (2, 3), "generator"))
        if self.interpolation not in _INTERPOLATION:
            raise ValueError(
                f"interpolation must be one of {_INTERPOLATION}, got {self.interpolation!r}"
            )
        if self.padding_mode not in _PADDING:
            raise ValueError(f"padding_mode must be one of {_PADDING}, got {self.padding_mode!r}")

    @property
    def compact(self) -> bool:  # type: ignore[override]
        G = np.asarray(self.generator)
        M, b = G[:, :2], G[:, 2]
        return bool(np.allclose(M, -M.T, rtol=0, atol=1e-12) and np.all(b == 0))

    def _validate(self, x: torch.Tensor) -> None:
        if x.ndim < 2 or x.shape[-1] < 1 or x.shape[-2] < 1:
            raise ValueError(f"images must have shape (..., H, W), got {tuple(x.shape)}")

    def homogeneous(self, t: Any) -> np.ndarray:
        """The 3x3 matrix ``expm(t Ĝ)`` moving content (pixel units), float64."""
        G = np.zeros((3, 3))
        G[:2] = np.asarray(self.generator)
        tt = torch.as_tensor(float(t), dtype=torch.float64)
        return torch.linalg.matrix_exp(tt * torch.as_tensor(G)).numpy()

    def _transform(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        import torch.nn.functional as F

        h, w = x.shape[-2:]
        flat = x.reshape(-1, 1, h, w)
        G = torch.zeros(3, 3, dtype=torch.float64, device=x.device)
        G[:2] = torch.as_tensor(self.generator, dtype=torch.float64, device=x.device)
        back = _flow(-t.to(torch.float64), G)  # samples content from here
        # affine_grid uses coordinates normalised to [-1, 1]; pixel units are p = S p_n with
        # S = diag(W/2, H/2), so the sampling map in normalised coordinates is S⁻¹ A S.
        S = torch.diag(torch.tensor([w / 2.0, h / 2.0, 1.0], dtype=torch.float64, device=x.device))
        S_inv = torch.diag(1.0 / torch.diagonal(S))
        A = (S_inv @ back @ S)[:2].to(x.dtype)
        grid = F.affine_grid(A.expand(flat.shape[0], 2, 3), list(flat.shape), align_corners=False)
        out = F.grid_sample(
            flat, grid, mode=self.interpolation, padding_mode=self.padding_mode, align_corners=False
        )
        return out.reshape(x.shape)


def image_translation(axis: str = "x", **kwargs: Any) -> ImageAffineFamily:
    """Continuous translation of images by ``t`` pixels along ``"x"`` (columns) or ``"y"`` (rows).

    Parameters
    ----------
    axis : {"x", "y"}
    **kwargs
        ``interpolation``, ``padding_mode`` of :class:`ImageAffineFamily`.
    """
    b = {"x": (1.0, 0.0), "y": (0.0, 1.0)}.get(axis)
    if b is None:
        raise ValueError(f"axis must be 'x' or 'y', got {axis!r}")
    return ImageAffineFamily([[0.0, 0.0, b[0]], [0.0, 0.0, b[1]]], **kwargs)


def image_scaling(**kwargs: Any) -> ImageAffineFamily:
    """Isotropic scaling about the image centre: content magnified by ``e^t``."""
    return ImageAffineFamily([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], **kwargs)


def image_shear(axis: str = "x", **kwargs: Any) -> ImageAffineFamily:
    """Shear: ``u ↦ u + t v`` (``axis="x"``) or ``v ↦ v + t u`` (``axis="y"``)."""
    M = {"x": [[0.0, 1.0], [0.0, 0.0]], "y": [[0.0, 0.0], [1.0, 0.0]]}.get(axis)
    if M is None:
        raise ValueError(f"axis must be 'x' or 'y', got {axis!r}")
    return ImageAffineFamily([[*M[0], 0.0], [*M[1], 0.0]], **kwargs)


def image_rotation(**kwargs: Any) -> ImageAffineFamily:
    """Rotation about the image centre by ``t`` radians, the same sense as
    ``ImageRotationAngles.rotate`` (and ``torch.rot90`` at ``t = π/2``)."""
    return ImageAffineFamily([[0.0, 1.0, 0.0], [-1.0, 0.0, 0.0]], **kwargs)
