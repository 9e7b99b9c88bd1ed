"""Group-composition tables ``x∘y = z`` split into train and test; modular addition is the
cyclic case ``(a + b) mod p``."""

from __future__ import annotations

import numbers
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import torch

from latentgeo._validate import check_int, check_real
from latentgeo.datasets._digits import LabelledTensors

if TYPE_CHECKING:  # pragma: no cover
    from latentgeo.groups import Group

__all__ = ["TrainTest", "group_composition", "modular_addition"]


class TrainTest(NamedTuple):
    """A train and a test part; unpacks as ``train, test = data``."""

    train: LabelledTensors
    test: LabelledTensors


def _check_split(train_fraction: float, seed: int) -> None:
    check_real(
        train_fraction, "train_fraction", minimum=0, maximum=1, open_minimum=True, open_maximum=True
    )
    check_int(seed, "seed", minimum=0)


def group_composition(
    group: Group | str,
    train_fraction: float = 0.3,
    seed: int = 0,
    *,
    device: torch.device | str | None = None,
) -> TrainTest:
    """Every pair ``(x, y)`` of elements of a finite group with label ``x∘y``.

    The group-composition task of Chughtai et al. 2023 ("A toy model of universality:
    reverse engineering how networks learn group operations"); modular addition is the case
    ``Cyclic(p)``.  Tokens and labels are element indices in the group's element order, as
    :class:`latentgeo.actions.GroupTokens` reads them (its left action on token 0 maps the
    label ``z`` to ``g∘z``: ``GroupTokens.shift_label``).

    Parameters
    ----------
    group : finite Group or str
        Any finite ``latentgeo.groups`` group of order >= 2 (or its spec, e.g. ``"S4"``);
        the labels come from ``group.compose``.
    train_fraction : float in (0, 1)
        Fraction of the ``|G|**2`` pairs in the train part (``round(train_fraction * |G|**2)``,
        at least one pair in each part).
    seed : int
        Seed of the random split (``numpy.random.default_rng``).
    device : torch.device or str, optional

    Returns
    -------
    TrainTest
        ``train`` and ``test``, each :class:`LabelledTensors` with ``inputs`` int64 of shape
        (m, 2) (columns ``x``, ``y``) and ``labels`` int64 of shape (m,) (the index of
        ``x∘y``).  Each part is sorted by ``x * |G| + y``.

    Raises
    ------
    ValueError
        For a continuous group or one of order 1, a fraction outside (0, 1), a negative seed.

    Examples
    --------
    >>> from latentgeo.groups import Symmetric
    >>> train, test = group_composition(Symmetric(3), train_fraction=0.5)
    >>> len(train.labels) + len(test.labels)
    36
    """
    G: Any = group
    if isinstance(G, str):
        from latentgeo.groups import parse

        G = parse(G)
    order = getattr(G, "order", None) if getattr(G, "is_finite", False) else None
    if not isinstance(order, numbers.Integral) or order < 2:
        raise ValueError(f"group must be a finite group of order >= 2, got {G!r}")
    _check_split(train_fraction, seed)
    n = int(order)
    x, y = np.divmod(np.arange(n * n, dtype=np.int64), n)
    labels = np.asarray(G.compose(x, y), dtype=np.int64)
    return _split(np.stack([x, y], axis=1), labels, float(train_fraction), int(seed), device)


def _split(
    inputs: np.ndarray,
    labels: np.ndarray,
    fraction: float,
    seed: int,
    device: torch.device | str | None,
) -> TrainTest:
    m = len(labels)
    n_train = min(max(round(fraction * m), 1), m - 1)
    order = np.random.default_rng(seed).permutation(m)
    train_idx, test_idx = np.sort(order[:n_train]), np.sort(order[n_train:])

    def part(idx: np.ndarray) -> LabelledTensors:
        return LabelledTensors(
            torch.from_numpy(inputs[idx]).to(device), torch.from_numpy(labels[idx]).to(device)
        )

    return TrainTest(part(train_idx), part(test_idx))


def modular_addition(
    p: int,
    train_fraction: float = 0.3,
    seed: int = 0,
    *,
    device: torch.device | str | None = None,
) -> TrainTest:
    """Every pair ``(a, b)`` in ``Z_p × Z_p`` with label ``(a + b) mod p``.

    The cyclic case of :func:`group_composition` (``Cyclic(p)``, whose element ``k`` is
    ``r^k``), with the same split.

    Parameters
    ----------
    p : int
        The modulus (>= 2).
    train_fraction : float in (0, 1)
        Fraction of the ``p**2`` pairs in the train part (``round(train_fraction * p**2)``,
        at least one pair in each part); small fractions give grokking.
    seed : int
        Seed of the random split.

    Returns
    -------
    TrainTest
        ``train`` and ``test``, each :class:`LabelledTensors` with ``inputs`` int64 of shape
        (m, 2) (columns ``a``, ``b``) and ``labels`` int64 of shape (m,).  Each part is sorted
        by ``a * p + b``.

    Examples
    --------
    >>> train, test = modular_addition(5, train_fraction=0.4)
    >>> len(train.labels) + len(test.labels)
    25
    """
    p = check_int(p, "p", minimum=2)
    _check_split(train_fraction, seed)
    from latentgeo.groups import Cyclic

    return group_composition(Cyclic(int(p)), train_fraction, seed, device=device)
