"""scikit-learn's 8×8 handwritten digits as torch tensors (ships with scikit-learn)."""

from __future__ import annotations

import numbers
from typing import NamedTuple

import numpy as np
import torch

from latentgeo._validate import check_int

__all__ = ["LabelledTensors", "digits"]

_SPLITS = ("train", "test", "all")


class LabelledTensors(NamedTuple):
    """Inputs and labels; unpacks as ``x, y = data``.

    ``torch.utils.data.TensorDataset(*data)`` turns it into a dataset.
    """

    inputs: torch.Tensor
    labels: torch.Tensor


def digits(
    split: str = "all",
    *,
    test_size: float = 0.25,
    seed: int = 0,
    rotated: bool = False,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> LabelledTensors:
    """The 1797 8×8 digits of ``sklearn.datasets.load_digits`` (no download).

    Parameters
    ----------
    split : {"all", "train", "test"}
        ``"train"``/``"test"`` are a stratified split with ``test_size`` of the images in
        the test part, fixed by ``seed`` (the two parts are disjoint and cover all images).
        Use ``"test"`` (or part of it) as the probe set.
    test_size : float in (0, 1)
    seed : int
        Seed of the split and of the random rotations.
    rotated : bool
        Rotate every image by a random multiple of 90° (``torch.rot90``, seeded), as in
        rotated-digits experiments; each image keeps its label.  The rotation of image ``i``
        does not depend on ``split`` (it is drawn for the whole data set).
    dtype, device
        Of the returned images.

    Returns
    -------
    LabelledTensors
        ``inputs`` of shape (n, 1, 8, 8) in ``[0, 1]`` (pixel values / 16) and ``labels``
        int64 of shape (n,) in ``0..9``.

    Examples
    --------
    >>> x, y = digits("test", seed=0)
    >>> x.shape[1:], x.dtype
    (torch.Size([1, 8, 8]), torch.float32)
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    if split not in _SPLITS:
        raise ValueError(f"split must be one of {_SPLITS}, got {split!r}")
    check_int(seed, "seed", minimum=0)
    if not isinstance(test_size, numbers.Real) or not 0.0 < float(test_size) < 1.0:
        raise ValueError(f"test_size must be a float in (0, 1), got {test_size!r}")
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise TypeError(f"dtype must be a floating torch.dtype, got {dtype!r}")

    raw = load_digits()
    images = np.asarray(raw.images, dtype=np.float64) / 16.0  # (1797, 8, 8), values 0..16
    labels = np.asarray(raw.target, dtype=np.int64)
    x = torch.from_numpy(images).unsqueeze(1)
    if rotated:
        from latentgeo.actions import ImageRotations

        x, _ = ImageRotations("C4").sample(x, seed=int(seed))
    idx = np.arange(len(labels))
    if split != "all":
        train, test = train_test_split(
            idx, test_size=float(test_size), random_state=int(seed), stratify=labels
        )
        idx = np.sort(train if split == "train" else test)
    idx_t = torch.from_numpy(idx)
    return LabelledTensors(
        x[idx_t].to(device=device, dtype=dtype).contiguous(),
        torch.from_numpy(labels[idx]).to(device=device),
    )
