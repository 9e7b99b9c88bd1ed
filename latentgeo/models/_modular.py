"""An MLP for modular addition ``(a + b) mod p`` (the grokking task) and, alike, for the
composition table ``x∘y`` of any finite group."""

from __future__ import annotations

import numbers
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from latentgeo._validate import check_int
from latentgeo.models._init import init_like_torch, make_generator, no_global_rng

if TYPE_CHECKING:  # pragma: no cover
    from latentgeo.groups import Group

__all__ = ["ModularMLP"]


class ModularMLP(nn.Module):
    """Embed the two tokens, mix them in a ReLU layer, unembed to ``p`` logits.

    ``embed`` (a shared ``nn.Embedding(p, d_embed)``; its output has shape (n, 2, d_embed))
    → concatenate (n, 2 * d_embed) or sum (n, d_embed) → ``hidden`` (``hidden.linear`` then
    ``hidden.relu``; recording ``hidden`` gives the post-ReLU neurons, shape (n, d_hidden))
    → ``out`` (logits, shape (n, p)).  This is the one-hidden-layer model in which Fourier
    features of ``Z_p`` emerge during training (Nanda et al. 2023), and, given a finite
    group, the model of Chughtai et al. 2023 ("A toy model of universality") for its
    composition table ``x∘y`` (tokens and classes are element indices; see
    :func:`latentgeo.datasets.group_composition`), in which the embeddings and neurons
    come to use a few of the group's irreps.  Use ``combine="concat"`` (the default) for a
    non-abelian group: a sum cannot tell ``x∘y`` from ``y∘x``.

    Parameters
    ----------
    p : int or finite Group
        The modulus (vocabulary size and number of classes), or a finite group whose order
        is both (``ModularMLP(Symmetric(4))`` has 24 tokens and 24 classes).
    d_embed, d_hidden : int
    combine : {"concat", "sum"}
        How the two embeddings enter the hidden layer.
    seed, generator, device, dtype
        Deterministic init without the global RNG (default seed 0).

    Examples
    --------
    >>> model = ModularMLP(7, d_embed=8, d_hidden=16)
    >>> model(torch.tensor([[3, 5]])).shape
    torch.Size([1, 7])
    >>> from latentgeo.groups import Symmetric
    >>> ModularMLP(Symmetric(4), d_embed=8, d_hidden=16).p
    24
    """

    def __init__(
        self,
        p: int | Group,
        d_embed: int = 32,
        d_hidden: int = 128,
        *,
        combine: str = "concat",
        seed: int | None = None,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        n_tokens: Any = p
        if not isinstance(p, numbers.Integral) and getattr(p, "is_finite", False):
            n_tokens = getattr(p, "order", p)  # a finite group: its elements are tokens/classes
        for name, v in (("p", n_tokens), ("d_embed", d_embed), ("d_hidden", d_hidden)):
            check_int(v, name, minimum=1)
        if combine not in ("concat", "sum"):
            raise ValueError(f"combine must be 'concat' or 'sum', got {combine!r}")
        gen = make_generator(seed, generator)
        self.p, self.d_embed, self.d_hidden, self.combine = (
            int(n_tokens),
            int(d_embed),
            int(d_hidden),
            combine,
        )
        d_in = 2 * self.d_embed if combine == "concat" else self.d_embed
        with no_global_rng():
            self.embed = nn.Embedding(self.p, self.d_embed)
            self.hidden = nn.Sequential(
                OrderedDict(linear=nn.Linear(d_in, self.d_hidden), relu=nn.ReLU())
            )
            self.out = nn.Linear(self.d_hidden, self.p)
        init_like_torch(self, gen)
        self.to(device=device, dtype=dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of shape (n, p) for token pairs ``x`` of shape (n, 2), ints in ``[0, p)``."""
        if x.ndim != 2 or x.shape[1] != 2:
            raise ValueError(
                f"ModularMLP expects token pairs of shape (n, 2); got {tuple(x.shape)}"
            )
        if x.is_floating_point() or x.dtype == torch.bool:
            raise TypeError(f"ModularMLP expects integer tokens, got dtype {x.dtype}")
        # A value check syncs with the device; skip it while torch.compile traces the model.
        if (
            not torch.compiler.is_compiling()
            and x.numel()
            and (int(x.min()) < 0 or int(x.max()) >= self.p)
        ):
            raise ValueError(
                f"tokens must lie in [0, {self.p}); got values in [{int(x.min())}, {int(x.max())}]"
            )
        e = self.embed(x)  # (n, 2, d_embed)
        h = e.flatten(1) if self.combine == "concat" else e.sum(dim=1)
        return self.out(self.hidden(h))

    def extra_repr(self) -> str:
        return (
            f"p={self.p}, d_embed={self.d_embed}, d_hidden={self.d_hidden}, "
            f"combine={self.combine!r}"
        )
