"""Deterministic initialisation that never touches torch's global random state."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator

import torch
from torch import nn

from latentgeo._validate import check_int

__all__ = ["make_generator", "no_global_rng", "uniform_"]


def make_generator(seed: int | None, generator: torch.Generator | None) -> torch.Generator:
    """The generator to initialise from: ``generator`` if given, else one seeded by ``seed``
    (default 0, so that a model built twice has the same weights)."""
    if generator is not None and seed is not None:
        raise ValueError("pass either seed= or generator=, not both")
    if generator is not None:
        if not isinstance(generator, torch.Generator):
            raise TypeError(f"generator must be a torch.Generator, got {generator!r}")
        return generator
    if seed is None:
        seed = 0
    return torch.Generator().manual_seed(check_int(seed, "seed"))


@contextlib.contextmanager
def no_global_rng() -> Iterator[None]:
    """Build modules without consuming torch's global CPU generator.

    ``nn.Conv2d``/``nn.Linear`` draw their default initialisation from the global generator;
    we overwrite those weights anyway, and restoring the state keeps the user's random stream
    (and so their training run) exactly as if the model had not been built.
    """
    with torch.random.fork_rng(devices=[]):
        yield


@torch.no_grad()
def uniform_(p: torch.Tensor, bound: float, generator: torch.Generator) -> None:
    """Fill ``p`` with U(-bound, bound) drawn from ``generator`` (on the generator's device)."""
    values = torch.empty(p.shape, dtype=torch.float64, device=generator.device)
    values.uniform_(-bound, bound, generator=generator)
    p.copy_(values.to(device=p.device, dtype=p.dtype))


@torch.no_grad()
def init_like_torch(module: nn.Module, generator: torch.Generator) -> None:
    """PyTorch's default init for conv/linear layers (kaiming-uniform with a = √5, i.e.
    U(±1/√fan_in) for weight and bias), drawn from ``generator`` in module order."""
    for m in module.modules():
        weight = getattr(m, "weight", None)
        if not isinstance(weight, torch.Tensor) or weight.ndim < 2:
            continue
        if isinstance(m, nn.Embedding):
            # nn.Embedding's default is N(0, 1); keep its scale with a deterministic draw.
            values = torch.empty(weight.shape, dtype=torch.float64, device=generator.device)
            values.normal_(0.0, 1.0, generator=generator)
            weight.copy_(values.to(device=weight.device, dtype=weight.dtype))
            continue
        fan_in = math.prod(weight.shape[1:])
        bound = 1.0 / math.sqrt(fan_in)
        uniform_(weight, bound, generator)
        bias = getattr(m, "bias", None)
        if isinstance(bias, torch.Tensor):
            uniform_(bias, bound, generator)
