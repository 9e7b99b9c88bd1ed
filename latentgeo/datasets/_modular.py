"""All pairs ``(a, b)`` with labels ``(a + b) mod p``, split into train and test."""

from __future__ import annotations

import numbers
from typing import NamedTuple

import numpy as np
import torch

from latentgeo.datasets._digits import LabelledTensors

__all__ = ["TrainTest", "modular_addition"]


class TrainTest(NamedTuple):
    """A train and a test part; unpacks as ``train, test = data``."""

    train: LabelledTensors
    test: LabelledTensors


def modular_addition(
    p: int,
    train_fraction: float = 0.3,
    seed: int = 0,
    *,
    device: torch.device | str | None = None,
) -> TrainTest:
    """Every pair ``(a, b)`` in ``Z_p × Z_p`` with label ``(a + b) mod p``.

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
    if isinstance(p, bool) or not isinstance(p, numbers.Integral) or p < 2:
        raise ValueError(f"p must be an int >= 2, got {p!r}")
    if not isinstance(train_fraction, numbers.Real) or not 0.0 < float(train_fraction) < 1.0:
        raise ValueError(f"train_fraction must be a float in (0, 1), got {train_fraction!r}")
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    p = int(p)
    a, b = np.divmod(np.arange(p * p, dtype=np.int64), p)
    inputs = np.stack([a, b], axis=1)
    labels = (a + b) % p
    n_train = min(max(round(float(train_fraction) * p * p), 1), p * p - 1)
    order = np.random.default_rng(int(seed)).permutation(p * p)
    train_idx, test_idx = np.sort(order[:n_train]), np.sort(order[n_train:])

    def part(idx: np.ndarray) -> LabelledTensors:
        return LabelledTensors(
            torch.from_numpy(inputs[idx]).to(device), torch.from_numpy(labels[idx]).to(device)
        )

    return TrainTest(part(train_idx), part(test_idx))
