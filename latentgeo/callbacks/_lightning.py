"""Record latents from inside a Lightning ``Trainer.fit``."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.utilities import rank_zero_info

from latentgeo.callbacks._base import RecordingSession, SessionView

if TYPE_CHECKING:
    from latentgeo.actions import Action

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
    analyses : mapping of str to callable, optional
        ``{name: fn(model) -> xarray.Dataset}`` run on the model at every recorded step
        (after its latents are taken), e.g. ``{"attribution": functools.partial(
        probes.equivariance_attribution, action=action, inputs=x, layers=layers)}``; the
        results are written into the store when it closes, stacked along ``step`` under
        ``analysis/<name>`` as :func:`probes.attribution_over_training` writes them, which
        ``latentgeo analyze`` reports. An analysis failing at its first step stops training
        with its error; a later failure warns once and leaves that step out.
    **recorder_kwargs
        Further arguments of :class:`latentgeo.LatentRecorder` (``mode``, ``reduce``,
        ``dtype``, ``batch_size``, ``device``, ``live``).

    Notes
    -----
    *Live metrics.* With ``live=`` (a :class:`probes.LiveProbes`, e.g.
    ``probes.LiveProbes(["invariance", "spectrum", "r2"])``) the recorder computes the cheap
    symmetry probes of every recorded step in its writer thread.  The callback hands each
    finished step's results, on global rank 0, to every ``trainer.loggers``'
    ``log_metrics(metrics, step=recorded_step)`` and puts them into
    ``trainer.callback_metrics`` (float64 tensors, usable by ``ModelCheckpoint(monitor=...)``
    and ``EarlyStopping``), named ``latentgeo/<layer>/invariance``,
    ``latentgeo/<layer>/spectrum/<irrep>``, ``latentgeo/<layer>/r2``.  Results are collected
    after each training batch (a step's results usually arrive a few batches after the step,
    logged at the step they describe) and at train end, after the recorder's flush, so every
    recorded step is logged.  They are not stored back into the run store as metrics.

    *Analyses' scalars.* The scalar summary of each ``analyses=`` result (see
    :class:`latentgeo.callbacks._analyses.StepAnalyses`: ``latentgeo/<name>/<layer>``,
    ``latentgeo/<name>/rest`` and ``latentgeo/<name>/total`` for an attribution,
    ``latentgeo/<name>/loss`` and ``latentgeo/<name>/excluded_loss/<irrep>`` for an irrep
    ablation,
    ``latentgeo/<name>/invariant_dimension`` and ``.../equivariant_dimension`` for a
    discovery) goes the same way: to every logger at the recorded step and into
    ``callback_metrics``, right after the step is recorded; the full results go to the store.

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
    >>> # Not run here: needs a LightningModule and a data loader of your own.
    >>> rec = LightningRecorder(["net.conv1", "net.fc"], action, x_probe, "runs/cnn.zarr",
    ...                         schedule=latentgeo.schedules.EveryN(50))  # doctest: +SKIP
    >>> pl.Trainer(callbacks=[rec]).fit(module, loader)  # doctest: +SKIP
    """

    def __init__(
        self,
        layers: str | Sequence[str],
        action: Action,
        probe_inputs: torch.Tensor,
        store: str | os.PathLike[str],
        labels: Any = None,
        schedule: Any = None,
        analyses: Mapping[str, Callable[[torch.nn.Module], Any]] | None = None,
        **recorder_kwargs: Any,
    ) -> None:
        super().__init__()
        self._session = RecordingSession(
            layers, action, probe_inputs, store, labels, schedule, recorder_kwargs, analyses
        )
        self._live: Any = None  # the recorder's LiveProbes, kept after the recorder closes

    @property
    def state_key(self) -> str:
        # Unique per store so that several recorders can live in one Trainer and each gets its
        # own state back from a checkpoint.
        return self._generate_state_key(store=self._session.store)

    # -- helpers -----------------------------------------------------------------------------
    @staticmethod
    def _disabled(trainer: pl.Trainer) -> bool:
        return _fast_dev_run(trainer) or bool(trainer.sanity_checking)

    def _build(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if _fast_dev_run(trainer):
            return
        from latentgeo.record._layers import collective_forward

        # Lightning's FSDP strategy wraps the whole LightningModule in FSDP1: its parameters
        # are flat shards that only the wrapper's forward gathers, so the recorder forwards
        # through the wrapper (names are the LightningModule's, wrapper segments dropped).
        wrapper = trainer.strategy.model
        model: torch.nn.Module = pl_module
        if (
            isinstance(wrapper, torch.nn.Module)
            and wrapper is not pl_module
            and collective_forward(wrapper) is not None
        ):
            model = wrapper
        self._session.build(model, resume=trainer.global_step > 0, device=pl_module.device)
        from latentgeo.record._observer import LoggedObserver

        live = getattr(self._session.recorder, "live", None)
        # Only an observer that queues results (probes.LiveProbes) has anything to log.
        self._live = live if isinstance(live, LoggedObserver) else None

    def _record(self, trainer: pl.Trainer) -> None:
        session = self._session
        step = trainer.global_step
        if session.recorder is None or not session.is_due(step):
            return
        metrics = trainer.callback_metrics
        # Live results and analyses' scalars describe other steps: not this step's metrics.
        live, analyses = self._live, session.analyses
        metrics = {
            k: v
            for k, v in metrics.items()
            if not (live is not None and live.owns(k)) and not analyses.owns(k)
        }
        session.record(step, metrics=metrics, epoch=trainer.current_epoch)

    def _log_live(self, trainer: pl.Trainer, *, save: bool = False) -> None:
        """Hand the finished live results and the analyses' scalars to the trainer's loggers
        and callback_metrics, each at the step it describes."""
        results = [*(self._live.drain() if self._live is not None else ())]
        results += self._session.analyses.drain()
        if not trainer.is_global_zero:
            return
        for step, metrics in results:
            for logger in trainer.loggers:
                logger.log_metrics(metrics, step=step)
            trainer.callback_metrics.update(
                {k: torch.tensor(v, dtype=torch.float64) for k, v in metrics.items()}
            )
        if save and results:
            for logger in trainer.loggers:
                logger.save()  # after the Trainer finalized its loggers

    # -- hooks -------------------------------------------------------------------------------
    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if _fast_dev_run(trainer):
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
        self._log_live(trainer)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # The loggers are still open here (the Trainer finalizes them before on_fit_end).
        if self._session.recorder is not None and self._live is not None:
            self._session.recorder.flush()
        self._log_live(trainer)

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._session.close()
        self._log_live(trainer, save=True)

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


def _fast_dev_run(trainer: pl.Trainer) -> bool:
    """Whether ``trainer`` runs Lightning's ``fast_dev_run`` (an attribute set at run time)."""
    return bool(getattr(trainer, "fast_dev_run", False))
