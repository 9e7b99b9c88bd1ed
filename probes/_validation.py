"""Input checks shared by the probes: array conversion, shapes, finiteness, splits."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from latentgeo._validate import as_orbit_tensor, check_group_order

if TYPE_CHECKING:
    from latentgeo.groups import FiniteGroup

__all__ = [
    "as_orbit_tensor",
    "check_group_order",
    "element_index",
    "irrep_type_dim",
    "train_test_indices",
]

_FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def element_index(group: FiniteGroup, element: Any) -> int:
    """Index of an element given as an index or a name."""
    if isinstance(element, (int, np.integer)) and not isinstance(element, bool):
        if not 0 <= int(element) < group.order:
            raise ValueError(f"element index {element!r} out of range for {group!r}")
        return int(element)
    names = list(getattr(group, "elements", ()))
    if element in names:
        return names.index(element)
    raise ValueError(f"unknown element {element!r} of {group!r}; valid names are {names!r}")


def irrep_type_dim(irrep: Any) -> int:
    """Dimension of the commutant of a real irrep: 1 (real), 2 (complex), 4 (quaternionic)."""
    kind = getattr(irrep, "type", "real")
    try:
        return {"real": 1, "complex": 2, "quaternionic": 4}[kind]
    except KeyError:
        raise ValueError(
            f"irrep {getattr(irrep, 'name', irrep)!r} has type {kind!r}; expected one of "
            "'real', 'complex', 'quaternionic'"
        ) from None


def train_test_indices(
    n_samples: int, test_size: float | int, random_state: int | None
) -> tuple[np.ndarray, np.ndarray]:
    """Random split of sample indices into train and held-out parts.

    Both parts need at least two samples: one to centre and one to score.
    """
    if isinstance(test_size, bool) or not isinstance(test_size, (int, float, np.number)):
        raise TypeError(f"test_size must be a float in (0, 1) or an int, got {test_size!r}")
    if isinstance(test_size, (float, np.floating)):
        if not 0.0 < float(test_size) < 1.0:
            raise ValueError(f"test_size must be in (0, 1) when a float, got {test_size!r}")
        n_test = int(np.ceil(float(test_size) * n_samples))
    else:
        n_test = int(test_size)
    n_train = n_samples - n_test
    if n_test < 2 or n_train < 2:
        raise ValueError(
            f"cannot split {n_samples} samples with test_size={test_size!r} into a training "
            f"part and a held-out part of at least 2 samples each (got {n_train} and {n_test})"
        )
    perm = np.random.default_rng(random_state).permutation(n_samples)
    return np.sort(perm[n_test:]), np.sort(perm[:n_test])


def as_index_list(
    values: Sequence[Any] | str | int | np.integer | None, valid: Sequence[Any], what: str
) -> list[Any]:
    """Check requested names against the valid ones, listing the valid ones on error."""
    if values is None:
        return list(valid)
    if isinstance(values, (str, int, np.integer)):
        values = [values]
    out = list(values)
    valid_list = list(valid)
    missing = [v for v in out if v not in valid_list]
    if missing:
        shown = valid_list if len(valid_list) <= 20 else [*valid_list[:20], "..."]
        raise ValueError(f"unknown {what} {missing!r}; valid {what}s are {shown!r}")
    return out


def float_dtype_of(t: torch.Tensor) -> torch.dtype:
    return t.dtype if t.dtype in _FLOAT_DTYPES else torch.float64
