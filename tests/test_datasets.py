"""Tests of latentgeo.datasets: digits and modular addition (shapes, ranges, splits, seeds)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from latentgeo.datasets import LabelledTensors, digits, modular_addition


@pytest.fixture(scope="module")
def sk_digits():
    from sklearn.datasets import load_digits

    return load_digits()


def _rows(x: torch.Tensor) -> list[bytes]:
    return sorted(r.tobytes() for r in x.reshape(len(x), -1).numpy())


def test_digits_all_matches_sklearn(sk_digits):
    data = digits()
    assert isinstance(data, LabelledTensors)
    x, y = data
    assert x.shape == (1797, 1, 8, 8) and x.dtype == torch.float32
    assert y.shape == (1797,) and y.dtype == torch.int64
    assert float(x.min()) == 0.0 and float(x.max()) == 1.0
    np.testing.assert_array_equal(x[:, 0].numpy(), (sk_digits.images / 16).astype(np.float32))
    np.testing.assert_array_equal(y.numpy(), sk_digits.target)
    assert digits(dtype=torch.float64).inputs.dtype == torch.float64


def test_digits_split_is_disjoint_stratified_and_seeded():
    full = digits()
    train, test = digits("train", seed=0), digits("test", seed=0)
    assert len(train.labels) + len(test.labels) == 1797
    assert len(test.labels) == pytest.approx(0.25 * 1797, abs=1)
    # Together the parts are exactly the whole set (as a multiset of image, label rows).
    both = torch.cat([train.inputs, test.inputs]).flatten(1)
    labels = torch.cat([train.labels, test.labels])
    assert _rows(torch.cat([both, labels[:, None].float()], 1)) == _rows(
        torch.cat([full.inputs.flatten(1), full.labels[:, None].float()], 1)
    )
    # Stratified: each class has the same share in both parts (within one image).
    for c in range(10):
        n_all = int((full.labels == c).sum())
        assert abs(int((test.labels == c).sum()) - 0.25 * n_all) <= 1
    # Seeded: same seed, same split; another seed, another split.
    assert torch.equal(digits("test", seed=0).inputs, test.inputs)
    assert not torch.equal(digits("test", seed=1).inputs, test.inputs)
    assert len(digits("test", test_size=0.1).labels) == pytest.approx(180, abs=1)


def test_rotated_digits_are_rot90s_of_the_originals():
    plain = digits()
    rot = digits(rotated=True, seed=2)
    assert torch.equal(rot.labels, plain.labels)
    ks = []
    for a, b in zip(plain.inputs, rot.inputs):
        matches = [k for k in range(4) if torch.equal(torch.rot90(a, k, dims=(-2, -1)), b)]
        assert matches
        ks.append(matches[0])
    counts = np.bincount(ks, minlength=4)
    assert counts.min() > 300  # roughly uniform over the four rotations
    assert torch.equal(digits(rotated=True, seed=2).inputs, rot.inputs)
    # A split picks the same rotated images as the whole set.
    test = digits("test", rotated=True, seed=2)
    assert set(_rows(test.inputs)) <= set(_rows(rot.inputs))


@pytest.mark.parametrize("p", [2, 7, 23])
def test_modular_addition_covers_all_pairs_with_correct_labels(p):
    train, test = modular_addition(p, train_fraction=0.3, seed=0)
    for part in (train, test):
        assert part.inputs.dtype == torch.int64 and part.inputs.shape[1] == 2
        assert part.labels.dtype == torch.int64
        assert torch.equal(part.labels, (part.inputs[:, 0] + part.inputs[:, 1]) % p)
        assert int(part.inputs.min()) >= 0 and int(part.inputs.max()) < p
    codes = torch.cat([train.inputs, test.inputs]) @ torch.tensor([p, 1])
    assert torch.equal(torch.sort(codes).values, torch.arange(p * p))
    assert len(train.labels) == min(max(round(0.3 * p * p), 1), p * p - 1)


def test_modular_addition_is_seeded():
    a, b, c = (
        modular_addition(11, seed=0),
        modular_addition(11, seed=0),
        modular_addition(11, seed=1),
    )
    assert torch.equal(a.train.inputs, b.train.inputs) and torch.equal(a.test.labels, b.test.labels)
    assert not torch.equal(a.train.inputs, c.train.inputs)
    assert len(modular_addition(11, train_fraction=0.5).train.labels) == 60


@pytest.mark.parametrize(
    ("call", "exc", "match"),
    [
        (lambda: digits("probe"), ValueError, "'probe'"),
        (lambda: digits(test_size=1.5), ValueError, "1.5"),
        (lambda: digits(seed=-1), ValueError, "-1"),
        (lambda: digits(dtype=torch.int64), TypeError, "int64"),
        (lambda: modular_addition(1), ValueError, "got 1"),
        (lambda: modular_addition(5, train_fraction=0.0), ValueError, "0.0"),
        (lambda: modular_addition(5.0), TypeError, "5.0"),
    ],
)
def test_bad_arguments(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def test_planted_latents_is_reexported():
    # Imported with the package (numpy only, no import guard): one name, one function.
    import latentgeo.datasets as ds
    from latentgeo.datasets import planted

    assert ds.planted_latents is planted.planted_latents
    assert "planted_latents" in ds.__all__
    with pytest.raises(AttributeError, match="'nope'"):
        ds.nope  # noqa: B018
