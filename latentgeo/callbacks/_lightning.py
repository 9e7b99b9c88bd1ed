"""Record latents from inside a Lightning ``Trainer.fit``."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.utilities import rank_zero_info

from latentgeo.callbacks._base import RecordingSession, SessionView

__all__ = ["LightningRecorder"]


class LightningRecorder(SessionView, pl.Callback):
    """A Lightning callback that records latents into a run store while a model trains.

    The recorder is built on the ``LightningModule`` when fitting starts (the probe inputs go to
    the module's device) and records after training batches at ``trainer.global_step``, the
    number of optimizer steps taken: the latents stored at step ``s`` are those of the weights
    after ``s`` optimizer steps (step 0, the initial weights, is recorded when training
    starts). Under gradient accumulation several batches share one global step; it is recorded
    once. Sanity-check and ``fast_dev_run`` runs record nothing.

    Parameters
    ----------
    layers : str or sequence of str
        Names or glob patterns of ``pl_module.named_modules()`` to record.
    action : latentgeo.actions.Action
        How the group acts on the probe inputs.
    probe_inputs : torch.Tensor of shape (n_samples, ...)
        The fixed probe set.
    store : str or os.PathLike
        Path or fsspec URL of the run store.
    labels : array-like of shape (n_samples,), optional
        Labels of the probe set, stored with it.
    schedule : latentgeo.schedules schedule, optional
        Which global steps to record; default: the recorder's default schedule.
    **recorder_kwargs
        Further arguments of :class:`latentgeo.LatentRecorder` (``mode``, ``reduce``,
        ``dtype``, ``batch_size``, ``device``).

    Notes
    -----
    Metrics are the scalars of ``trainer.callback_metrics`` at the recorded step (tensors
    converted to floats, ``/`` in names turned into ``_``). Lightning keeps epoch-level
    metrics (e.g. ``val_loss``) in ``callback_metrics`` until they are next logged, so they
    describe the last validation, not necessarily the recorded step.

    The callback's ``state_dict`` holds the last recorded step and the store path (the writer
    is flushed first, so a checkpoint never claims an uncommitted step): a ``Trainer`` resumed
    with ``ckpt_path=`` continues the same store in mode ``"a"``. The store's committed steps
    decide what is recorded next, so no step is written twice; steps the store holds past the
    checkpoint (the first run went on after saving it) are kept, not rewritten.

    Under DDP every rank calls the recorder, which writes from rank 0 only and calls no
    collective.  Under a strategy that shards parameters (``FSDPStrategy``,
    ``ModelParallelStrategy`` with ``fully_shard``, DeepSpeed stage 3) every forward is a
    collective, so every rank runs the recording forwards in lockstep (the callback is called
    on every rank at the same global steps) and rank 0 writes.  Lightning's ``FSDPStrategy``
    wraps the whole LightningModule in FSDP; the recorder then forwards through that wrapper
    (layer names stay the LightningModule's).

    The store is closed at the end of ``fit``, at ``teardown`` and when training raises
    (``on_exception``; a writer error then is logged, not raised over the original).

    Examples
    --------
    >>> rec = LightningRecorder(["net.conv1", "net.fc"], action, x_probe, "runs/cnn.zarr",
    ...                         schedule=latentgeo.schedules.EveryN(50))  # doctest: +SKIP
    >>> pl.Trainer(callbacks=[rec]).fit(module, loader)  # doctest: +SKIP
    """

    def __init__(
        self,
        layers: str | Sequence[str],
        action: Any,
        probe_inputs: torch.Tensor,
        store: str | os.PathLike[str],
        labels: Any = None,
        schedule: Any = None,
        **recorder_kwargs: Any,
    ) -> None:
        super().__init__()
        self._session = RecordingSession(
            layers, action, probe_inputs, store, labels, schedule, recorder_kwargs
        )

    @property
    def state_key(self) -> str:
        # Unique per store so that several recorders can live in one Trainer and each gets its
        # own state back from a checkpoint.
        return self._generate_state_key(store=self._session.store)

    # -- helpers -----------------------------------------------------------------------------
    @staticmethod
    def _disabled(trainer: pl.Trainer) -> bool:
        return bool(trainer.fast_dev_run) or bool(trainer.sanity_checking)

    def _build(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.fast_dev_run:
            return
        from latentgeo.record._layers import collective_forward

        # Lightning's FSDP strategy wraps the whole LightningModule in FSDP1: its parameters
        # are flat shards that only the wrapper's forward gathers, so the recorder forwards
        # through the wrapper (names are the LightningModule's, wrapper segments dropped).
        wrapper = trainer.strategy.model
        model = pl_module
        if (
            isinstance(wrapper, torch.nn.Module)
            and wrapper is not pl_module
            and collective_forward(wrapper) is not None
        ):
            model = wrapper
        self._session.build(model, resume=trainer.global_step > 0, device=pl_module.device)

    def _record(self, trainer: pl.Trainer) -> None:
        session = self._session
        step = trainer.global_step
        if session.recorder is None or not session.is_due(step):
            return
        session.record(step, metrics=trainer.callback_metrics, epoch=trainer.current_epoch)

    # -- hooks -------------------------------------------------------------------------------
    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.fast_dev_run:
            rank_zero_info("LightningRecorder: fast_dev_run, no latents are recorded")
            return
        # Strategies that restore checkpoints after setup (DeepSpeed, FSDP) load this callback's
        # state only after on_fit_start; building then would miss the resume, so wait.
        if not trainer.strategy.restore_checkpoint_after_setup:
            self._build(trainer, pl_module)

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._disabled(trainer):
            return
        self._build(trainer, pl_module)
        # The weights before the first optimizer step of this fit (step 0 of a fresh run).
        self._record(trainer)

    def on_train_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        if self._disabled(trainer):
            return
        self._record(trainer)

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._session.close()

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self._session.close()

    def on_exception(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException
    ) -> None:
        # Everything committed so far stays readable; close drains the writer.
        self._session.close(quiet=True)

    def state_dict(self) -> dict[str, Any]:
        return self._session.state_dict()

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._session.load_state_dict(state_dict)
