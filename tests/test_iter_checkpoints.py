"""latentgeo.checkpoints.iter_checkpoints: the checkpoint walk record_checkpoints records by."""

from __future__ import annotations

import contextlib

import pytest
import torch
from torch import nn

from latentgeo.checkpoints import LoadedCheckpoint, iter_checkpoints


def _model(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))


def _save_run(tmp_path, steps):
    """Checkpoints of distinct weights; Lightning-style dicts with a 'model.' prefix."""
    weights = {}
    for s in steps:
        sd = _model(s).state_dict()
        weights[s] = sd
        torch.save(
            {"state_dict": {f"model.{k}": v for k, v in sd.items()}, "global_step": s},
            tmp_path / f"epoch=0-step={s}.ckpt",
        )
    return weights


def test_walks_in_step_order_with_each_checkpoints_weights_and_restores(tmp_path):
    weights = _save_run(tmp_path, [200, 5, 40])
    # No step in its content or name: skipped with a log line.
    torch.save(_model(1).state_dict(), tmp_path / "last-v1.ckpt")
    model = _model(99)
    own = {k: v.clone() for k, v in model.state_dict().items()}
    seen = []
    for ckpt in iter_checkpoints(model, tmp_path):
        assert isinstance(ckpt, LoadedCheckpoint)
        seen.append(ckpt.step)
        for k, v in model.state_dict().items():
            torch.testing.assert_close(v, weights[ckpt.step][k], rtol=0, atol=0)
    assert seen == [5, 40, 200]
    for k, v in model.state_dict().items():
        torch.testing.assert_close(v, own[k], rtol=0, atol=0)


def test_closing_early_restores_and_after_skips_without_loading(tmp_path):
    _save_run(tmp_path, [1, 2, 3])
    (tmp_path / "epoch=0-step=1.ckpt").write_bytes(b"not a checkpoint")  # never loaded
    model = _model(7)
    own = {k: v.clone() for k, v in model.state_dict().items()}
    walk = iter_checkpoints(
        model,
        {
            1: tmp_path / "epoch=0-step=1.ckpt",
            2: tmp_path / "epoch=0-step=2.ckpt",
            3: tmp_path / "epoch=0-step=3.ckpt",
        },
        after=1,
    )
    with contextlib.closing(walk):
        first = next(walk)
        assert first.step == 2
        assert any(not torch.equal(v, own[k]) for k, v in model.state_dict().items())
    for k, v in model.state_dict().items():
        torch.testing.assert_close(v, own[k], rtol=0, atol=0)


def test_errors_name_the_checkpoint_and_restore(tmp_path):
    _save_run(tmp_path, [1])
    bad = {"0.weight": torch.zeros(5, 3)}  # a size that does not fit
    model = _model(3)
    own = {k: v.clone() for k, v in model.state_dict().items()}
    full = {**model.state_dict(), **bad}
    with pytest.raises(ValueError, match="does not fit the model"):
        list(iter_checkpoints(model, [tmp_path / "epoch=0-step=1.ckpt", full], steps=[1, 2]))
    for k, v in model.state_dict().items():
        torch.testing.assert_close(v, own[k], rtol=0, atol=0)
    with pytest.raises(TypeError, match=r"torch\.nn\.Module"):
        iter_checkpoints("not a model", tmp_path)  # type: ignore[arg-type]
    with pytest.raises(FileNotFoundError):
        iter_checkpoints(model, tmp_path / "missing")
