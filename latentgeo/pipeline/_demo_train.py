"""``latentgeo demo``, part 1 of 3 — the training harness: models, data, training and recording.

Four models learn scikit-learn's 8x8 digits: a plain ``SmallCNN``, the same CNN trained on
randomly rot90-rotated batches, the same CNN trained on randomly left-right flipped batches,
and a ``P4CNN`` (C4 group convolutions, Cohen & Welling 2016). Four layers of each are
recorded under the C4 rotation orbit of held-out digits (the flip-trained CNN under the
whole D4 orbit) on a log-spaced schedule.

Everything is seeded with local ``torch.Generator``s and the global RNG is forked (restored
on exit), so training leaves torch's global state as it found it.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "FULL",
    "QUICK",
    "DemoConfig",
    "ModelSpec",
    "checkpoint_steps",
    "load_data",
    "model_specs",
    "train_and_record",
]


@dataclass(frozen=True)
class DemoConfig:
    """Sizes of the demo (the defaults take about 50 s on 2 CPU cores, ``QUICK`` about 25 s)."""

    train_steps: int = 600
    batch_size: int = 64
    n_probe: int = 256
    width: int = 8
    n_checkpoints: int = 14
    lr: float = 1e-2


FULL = DemoConfig()
QUICK = DemoConfig(train_steps=200, batch_size=48, n_probe=96, width=6, n_checkpoints=5, lr=1e-2)


@dataclass(frozen=True)
class ModelSpec:
    """One model of the demo: how to build it, what to record and how it is trained."""

    name: str
    title: str
    build: Callable[[int, int], Any]  # (width, seed) -> nn.Module
    layers: tuple[str, ...]
    augment: str | None  # spec of the group whose random elements augment each batch
    pooled: tuple[str, ...]  # layers recorded through BlockMeanPool(2)
    group: str = "C4"  # spec of the group whose orbit of the probe set is recorded


def model_specs() -> list[ModelSpec]:
    """The four models of the demo, in report order."""
    from latentgeo import models

    cnn_layers = ("conv1", "conv2", "conv3", "fc")
    return [
        ModelSpec(
            "cnn",
            "plain CNN",
            lambda w, s: models.SmallCNN(width=w, seed=s),
            cnn_layers,
            augment=None,
            pooled=("conv1", "conv2"),
        ),
        ModelSpec(
            "cnn_aug",
            "CNN + C4 augmentation",
            lambda w, s: models.SmallCNN(width=w, seed=s),
            cnn_layers,
            augment="C4",
            pooled=("conv1", "conv2"),
        ),
        ModelSpec(
            "cnn_flip",
            "CNN + flip augmentation (D4 orbit)",
            lambda w, s: models.SmallCNN(width=w, seed=s),
            cnn_layers,
            augment="D1",
            pooled=("conv1", "conv2"),
            group="D4",
        ),
        ModelSpec(
            "p4cnn",
            "P4CNN (C4 group conv)",
            lambda w, s: models.P4CNN(width=w, seed=s),
            ("lift", "gconv1", "pool", "fc"),
            augment=None,
            pooled=("lift", "gconv1"),
        ),
    ]


def checkpoint_steps(total: int, n: int) -> list[int]:
    """Log-spaced checkpoints in [0, total]: 0, then ~n geometric steps up to ``total``.

    Examples
    --------
    >>> checkpoint_steps(100, 5)
    [0, 1, 5, 22, 100]
    """
    if total < 1 or n < 2:
        raise ValueError(f"need total >= 1 and n >= 2, got total={total!r}, n={n!r}")
    geo = np.unique(np.round(np.geomspace(1, total, n - 1)).astype(int))
    return [0, *(int(s) for s in geo)]


@contextlib.contextmanager
def _isolated_rng(seed: int, device: Any) -> Iterator[None]:
    """Seed torch's global RNG for ops without a generator argument (dropout), then restore."""
    import torch

    devices = [device] if getattr(device, "type", "cpu") == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


def _accuracy(model: Any, x: Any, y: Any) -> float:
    from latentgeo._model_call import call_model

    # The one protected path: eval and back through the model's API, no grad, RNG kept.
    acc = (call_model(model, x).argmax(-1) == y).double().mean().item()
    return float(acc)


def _rotated_accuracy(model: Any, x: Any, y: Any) -> float:
    import torch

    return float(np.mean([_accuracy(model, torch.rot90(x, k, (-2, -1)), y) for k in range(4)]))


def train_and_record(
    spec: ModelSpec,
    data: dict[str, Any],
    store: Path,
    cfg: DemoConfig,
    seed: int,
    device: Any,
    progress: bool,
) -> dict[str, Any]:
    """Train ``spec``'s model with Adam, recording its layers at the log-spaced checkpoints.

    Returns the final test accuracy, upright and averaged over the four rotations, and the
    wall time of training and recording (seconds).
    """
    import torch

    from latentgeo import LatentRecorder
    from latentgeo._progress import progress_bar
    from latentgeo.actions import ImageRotations
    from latentgeo.groups import parse
    from latentgeo.reducers import BlockMeanPool

    t0 = time.perf_counter()
    model = spec.build(cfg.width, seed).to(device)
    gen = torch.Generator(device="cpu").manual_seed(seed + 1)
    x_train, y_train = data["x_train"].to(device), data["y_train"].to(device)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    loss_fn = torch.nn.CrossEntropyLoss()
    checkpoints = set(checkpoint_steps(cfg.train_steps, cfg.n_checkpoints))
    rec = LatentRecorder(
        model,
        layers=list(spec.layers),
        action=ImageRotations(parse(spec.group)),
        probe_inputs=data["x_probe"],
        labels=data["y_probe"],
        store=str(store),
        mode="w",
        reduce=dict.fromkeys(spec.pooled, BlockMeanPool(2)),
        dtype="float32",
        device=device,
    )
    augment = ImageRotations(parse(spec.augment)) if spec.augment else None
    n = x_train.shape[0]
    loss_value, acc_value = float("nan"), float("nan")
    with rec, _isolated_rng(seed, device):
        bar = progress_bar(
            range(cfg.train_steps + 1),
            desc=f"train {spec.name}",
            disable=not progress,
            leave=False,
            unit="step",
        )
        for step in bar:
            if step in checkpoints:
                metrics = {"loss": loss_value, "accuracy": acc_value}
                metrics["test_accuracy"] = _accuracy(model, data["x_test"], data["y_test"])
                rec.record(step, metrics=metrics)
            if step == cfg.train_steps:
                break
            idx = torch.randint(0, n, (cfg.batch_size,), generator=gen).to(device)
            xb, yb = x_train[idx], y_train[idx]
            if augment is not None:
                xb, _ = augment.sample(xb, generator=gen)
            model.train()
            logits = model(xb)
            loss = loss_fn(logits, yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            loss_value = float(loss.detach())
            acc_value = float((logits.argmax(-1) == yb).double().mean())
            bar.set_postfix(loss=f"{loss_value:.3f}")
    x_test, y_test = data["x_test"].to(device), data["y_test"].to(device)
    return {
        "test_accuracy": _accuracy(model, x_test, y_test),
        "test_accuracy_rotated": _rotated_accuracy(model, x_test, y_test),
        "train_time": time.perf_counter() - t0,
    }


def load_data(cfg: DemoConfig, seed: int) -> dict[str, Any]:
    """Digits split into train / held-out; the probe set is the first held-out digits."""
    from latentgeo.datasets import digits

    x_train, y_train = digits("train", seed=seed)
    x_test, y_test = digits("test", seed=seed)
    if cfg.n_probe > len(y_test):
        raise ValueError(f"n_probe={cfg.n_probe!r} exceeds the {len(y_test)} held-out digits")
    return {
        "x_train": x_train,
        "y_train": y_train,
        "x_test": x_test,
        "y_test": y_test,
        "x_probe": x_test[: cfg.n_probe],
        "y_probe": y_test[: cfg.n_probe],
    }
