"""A small plain CNN for 8×8 digits (and other small images)."""

from __future__ import annotations

import torch
from torch import nn

from latentgeo._validate import check_int
from latentgeo.models._init import init_like_torch, make_generator, no_global_rng

__all__ = ["SmallCNN"]


class SmallCNN(nn.Module):
    """conv → ReLU → conv → ReLU → 2×2 max-pool → conv → ReLU → global mean → linear.

    Layer names (for ``LatentRecorder(layers=...)``): ``conv1``, ``relu1``, ``conv2``,
    ``relu2``, ``pool``, ``conv3``, ``relu3``, ``gap``, ``fc``. ``convN`` outputs are
    pre-activation, ``reluN`` the same after the ReLU; ``gap`` is the pooled feature vector
    of shape (n, 2 * width) and ``fc`` the logits.  All convolutions are 3×3 with 'same'
    padding, so an 8×8 input gives 8×8, 8×8, 4×4 feature maps.

    Parameters
    ----------
    in_channels : int
    n_classes : int
    width : int
        Channels of the first two convolutions; the third has ``2 * width``.
    seed : int, optional
        Seed of the initialisation (default 0); the global torch RNG is never used.
    generator : torch.Generator, optional
        Draw the initial weights from this generator instead of ``seed``.
    device, dtype : optional
        Where and in which dtype to put the parameters.

    Examples
    --------
    >>> model = SmallCNN()
    >>> model(torch.zeros(2, 1, 8, 8)).shape
    torch.Size([2, 10])
    """

    def __init__(
        self,
        in_channels: int = 1,
        n_classes: int = 10,
        width: int = 16,
        *,
        seed: int | None = None,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        in_channels = check_int(in_channels, "in_channels", minimum=1)
        n_classes = check_int(n_classes, "n_classes", minimum=1)
        width = check_int(width, "width", minimum=1)
        gen = make_generator(seed, generator)
        self.in_channels, self.n_classes, self.width = in_channels, n_classes, width
        with no_global_rng():
            self.conv1 = nn.Conv2d(in_channels, width, 3, padding=1)
            self.relu1 = nn.ReLU()
            self.conv2 = nn.Conv2d(width, width, 3, padding=1)
            self.relu2 = nn.ReLU()
            self.pool = nn.MaxPool2d(2)
            self.conv3 = nn.Conv2d(width, 2 * width, 3, padding=1)
            self.relu3 = nn.ReLU()
            self.gap = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
            self.fc = nn.Linear(2 * width, n_classes)
        init_like_torch(self, gen)
        self.to(device=device, dtype=dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of shape (n, n_classes) for images of shape (n, in_channels, H, W)."""
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"SmallCNN expects images of shape (n, {self.in_channels}, H, W); "
                f"got {tuple(x.shape)}"
            )
        x = self.relu1(self.conv1(x))
        x = self.relu2(self.conv2(x))
        x = self.pool(x)
        x = self.relu3(self.conv3(x))
        return self.fc(self.gap(x))

    def extra_repr(self) -> str:
        return f"in_channels={self.in_channels}, n_classes={self.n_classes}, width={self.width}"
