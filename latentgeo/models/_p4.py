"""A group-convolutional network for the rotation group C4 (p4-CNN, Cohen & Welling 2016).

Feature maps on ``p4 = Z² ⋊ C4`` are tensors of shape ``(n, channels, 4, H, W)``; index
``r`` of the rotation axis holds the response of the filter rotated by ``r`` quarter turns.
Rotating the input image by ``torch.rot90(x, k, dims=(-2, -1))`` transforms every such map by
:func:`p4_rotate` (spatial ``rot90`` by ``k`` plus a cyclic shift by ``k`` along the rotation
axis); pooling over the rotation axis then gives rotation-*invariant* features.  Odd kernels
with 'same' padding make these identities exact on square images.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from latentgeo._validate import check_int
from latentgeo.models._init import init_like_torch, make_generator, no_global_rng

__all__ = [
    "P4CNN",
    "GroupConv2d",
    "LiftingConv2d",
    "RotationPool",
    "SpatialMaxPool",
    "p4_rotate",
]


def p4_rotate(z: torch.Tensor, k: int = 1) -> torch.Tensor:
    """How ``rot90`` by ``k`` of the input acts on a p4 feature map.

    Parameters
    ----------
    z : tensor of shape (..., 4, H, W)
        A p4 feature map (rotation axis third from last).
    k : int
        Quarter turns (``torch.rot90`` convention).

    Returns
    -------
    tensor of shape (..., 4, H, W)
        ``roll(rot90(z, k), k, rotation axis)``, i.e.
        ``out[..., r, :, :] = rot90(z[..., r - k, :, :], k)``.
    """
    if z.ndim < 3 or z.shape[-3] != 4:
        raise ValueError(f"p4 feature maps have shape (..., 4, H, W); got {tuple(z.shape)}")
    return torch.roll(torch.rot90(z, k, dims=(-2, -1)), k, dims=-3)


def _check_kernel(kernel_size: object) -> int:
    k = check_int(kernel_size, "kernel_size", minimum=1)
    if k % 2 == 0:
        raise ValueError(
            f"kernel_size must be a positive odd int (so that rot90 commutes with 'same' "
            f"convolution), got {kernel_size!r}"
        )
    return k


class LiftingConv2d(nn.Module):
    """Lifting convolution Z² → p4: correlate with the 4 rotated copies of every filter.

    Input (n, in_channels, H, W) → output (n, out_channels, 4, H, W), where
    ``out[:, :, r] = conv2d(x, rot90(weight, r))`` and the bias is shared over rotations.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3) -> None:
        super().__init__()
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        self.kernel_size = _check_kernel(kernel_size)
        k = self.kernel_size
        self.weight = nn.Parameter(torch.empty(self.out_channels, self.in_channels, k, k))
        self.bias = nn.Parameter(torch.empty(self.out_channels))
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """U(±1/√fan_in) for weight and bias, as torch does for ``nn.Conv2d`` (drawn from
        ``generator``, or from torch's global generator like any torch layer)."""
        bound = 1.0 / math.sqrt(math.prod(self.weight.shape[1:]))
        self.weight.uniform_(-bound, bound, generator=generator)
        self.bias.uniform_(-bound, bound, generator=generator)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"LiftingConv2d expects (n, {self.in_channels}, H, W); got {tuple(x.shape)}"
            )
        w = torch.stack([torch.rot90(self.weight, r, dims=(-2, -1)) for r in range(4)], dim=1)
        w = w.reshape(self.out_channels * 4, self.in_channels, self.kernel_size, self.kernel_size)
        out = F.conv2d(x, w, self.bias.repeat_interleave(4), padding=self.kernel_size // 2)
        return out.view(x.shape[0], self.out_channels, 4, *out.shape[-2:])

    def extra_repr(self) -> str:
        return f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}"


class GroupConv2d(nn.Module):
    """Group convolution p4 → p4.

    Input (n, in_channels, 4, H, W) → output (n, out_channels, 4, H, W).  The filter for
    output rotation ``r`` is the base filter rotated spatially by ``r`` and shifted cyclically
    by ``r`` along its own rotation axis: ``w_r[o, i, s] = rot90(w[o, i, s - r], r)``.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3) -> None:
        super().__init__()
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        self.kernel_size = _check_kernel(kernel_size)
        k = self.kernel_size
        self.weight = nn.Parameter(torch.empty(self.out_channels, self.in_channels, 4, k, k))
        self.bias = nn.Parameter(torch.empty(self.out_channels))
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """U(±1/√fan_in) for weight and bias, as torch does for ``nn.Conv2d`` (drawn from
        ``generator``, or from torch's global generator like any torch layer)."""
        bound = 1.0 / math.sqrt(math.prod(self.weight.shape[1:]))
        self.weight.uniform_(-bound, bound, generator=generator)
        self.bias.uniform_(-bound, bound, generator=generator)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 5 or x.shape[1] != self.in_channels or x.shape[2] != 4:
            raise ValueError(
                f"GroupConv2d expects p4 maps (n, {self.in_channels}, 4, H, W); "
                f"got {tuple(x.shape)}"
            )
        k = self.kernel_size
        w = torch.stack(
            [torch.rot90(torch.roll(self.weight, r, dims=2), r, dims=(-2, -1)) for r in range(4)],
            dim=1,
        )  # (out, 4, in, 4, k, k)
        w = w.reshape(self.out_channels * 4, self.in_channels * 4, k, k)
        flat = x.reshape(x.shape[0], self.in_channels * 4, *x.shape[-2:])
        out = F.conv2d(flat, w, self.bias.repeat_interleave(4), padding=k // 2)
        return out.view(x.shape[0], self.out_channels, 4, *out.shape[-2:])

    def extra_repr(self) -> str:
        return f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}"


class RotationPool(nn.Module):
    """Pool p4 maps over the rotation axis: (n, C, 4, H, W) → (n, C, H, W), invariant."""

    def __init__(self, mode: str = "max") -> None:
        super().__init__()
        if mode not in ("max", "mean"):
            raise ValueError(f"mode must be 'max' or 'mean', got {mode!r}")
        self.mode = mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim < 3 or x.shape[-3] != 4:
            raise ValueError(f"RotationPool expects (..., 4, H, W); got {tuple(x.shape)}")
        return x.amax(dim=-3) if self.mode == "max" else x.mean(dim=-3)

    def extra_repr(self) -> str:
        return f"mode={self.mode!r}"


class SpatialMaxPool(nn.Module):
    """Halve the spatial size by max pooling in a way that commutes with rot90.

    Even sides use 2×2 windows with stride 2 (the window grid maps onto itself under rot90);
    odd sides use 3×3 windows with stride 2 and padding 1 (windows centred on even pixels,
    again a rot90-symmetric set).  Works on (..., H, W) with any leading axes.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        flat = x.reshape(-1, 1, h, w)
        if h % 2 == 0 and w % 2 == 0:
            out = F.max_pool2d(flat, 2, 2)
        else:
            out = F.max_pool2d(flat, 3, 2, padding=1)
        return out.view(*x.shape[:-2], *out.shape[-2:])


class P4CNN(nn.Module):
    """A C4-equivariant CNN: lifting conv → group convs → pool over rotations → linear.

    ``lift`` → ``relu1`` → ``gconv1`` → ``relu2`` → ``spatial_pool`` → ``gconv2`` →
    ``relu3`` → ``pool`` (max over rotations) → ``gap`` (global mean) → ``fc``.

    On square inputs, with ``x' = torch.rot90(x, k, dims=(-2, -1))``: the outputs of
    ``lift``, ``relu1``, ``gconv1``, ``relu2``, ``spatial_pool``, ``gconv2``, ``relu3`` on ``x'``
    equal :func:`p4_rotate` of those on ``x``; ``pool`` outputs rotate spatially; ``gap`` and
    the logits are invariant — exactly, up to floating-point rounding.

    Parameters
    ----------
    in_channels, n_classes : int
    width : int
        Channels per rotation of every group-convolution layer (each layer stores
        ``4 * width`` feature maps).
    kernel_size : int
        Odd kernel size (default 3).
    seed, generator, device, dtype
        As for :class:`SmallCNN`: deterministic init without the global RNG.

    Examples
    --------
    >>> model = P4CNN(width=4)
    >>> x = torch.rand(2, 1, 8, 8)
    >>> torch.allclose(model(x), model(torch.rot90(x, 1, dims=(-2, -1))), atol=1e-5)
    True
    """

    def __init__(
        self,
        in_channels: int = 1,
        n_classes: int = 10,
        width: int = 8,
        kernel_size: int = 3,
        *,
        seed: int | None = None,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        for name, v in (("in_channels", in_channels), ("n_classes", n_classes), ("width", width)):
            check_int(v, name, minimum=1)
        kernel_size = _check_kernel(kernel_size)
        gen = make_generator(seed, generator)
        self.in_channels, self.n_classes, self.width = int(in_channels), int(n_classes), int(width)
        with no_global_rng():
            self.lift = LiftingConv2d(self.in_channels, self.width, kernel_size)
            self.relu1 = nn.ReLU()
            self.gconv1 = GroupConv2d(self.width, self.width, kernel_size)
            self.relu2 = nn.ReLU()
            self.spatial_pool = SpatialMaxPool()
            self.gconv2 = GroupConv2d(self.width, self.width, kernel_size)
            self.relu3 = nn.ReLU()
            self.pool = RotationPool("max")
            self.gap = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
            self.fc = nn.Linear(self.width, self.n_classes)
        init_like_torch(self, gen)
        self.to(device=device, dtype=dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of shape (n, n_classes) for images of shape (n, in_channels, H, W)."""
        x = self.relu1(self.lift(x))
        x = self.relu2(self.gconv1(x))
        x = self.spatial_pool(x)
        x = self.relu3(self.gconv2(x))
        return self.fc(self.gap(self.pool(x)))

    def extra_repr(self) -> str:
        return f"in_channels={self.in_channels}, n_classes={self.n_classes}, width={self.width}"
