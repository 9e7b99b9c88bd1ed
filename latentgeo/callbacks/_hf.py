"""Record latents from inside a Hugging Face ``transformers.Trainer``."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import torch
from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments

from latentgeo.callbacks._base import RecordingSession, SessionView, hf_epoch_index

if TYPE_CHECKING:
    from latentgeo.actions import Action

__all__ = ["HFRecorder"]


class HFRecorder(SessionView, TrainerCallback):
    """A ``transformers.TrainerCallback`` that records latents while a ``Trainer`` trains.

    The recorder is built on the Trainer's model in ``on_train_begin`` (the probe inputs go to
    the model's device) and records at ``state.global_step``, the number of optimizer steps
    taken: the latents at step ``s`` are those of the weights after ``s`` optimizer steps
    (step 0, the initial weights, is recorded when training begins). Only the world process
    zero (``state.is_world_process_zero``) records; the others do nothing -- except when the
    model's forward is a collective (FSDP, DeepSpeed ZeRO-3: the Trainer hands callbacks its
    FSDP wrapper), where every process records in lockstep and process zero writes (see
    :class:`latentgeo.LatentRecorder`, *Distributed*).

    Parameters
    ----------
    layers : str or sequence of str
        Names or glob patterns of ``model.named_modules()`` to record.
    action : latentgeo.actions.Action
        How the group acts on the probe inputs.
    probe_inputs : torch.Tensor of shape (n_samples, ...)
        The fixed probe set (what the model's ``forward`` takes as its first argument).
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
        Further arguments of :class:`latentgeo.LatentRecorder` (``live`` among them).

    Notes
    -----
    *Live metrics.* With ``live=`` (a :class:`probes.LiveProbes`, e.g.
    ``probes.LiveProbes(["invariance", "spectrum", "r2"])``) the recorder computes the cheap
    symmetry probes of every recorded step in its writer thread.  On the world process zero
    the callback appends each finished step's results to ``state.log_history`` as
    ``{"latentgeo/<layer>/invariance": ..., "latentgeo/<layer>/spectrum/<irrep>": ...,
    "latentgeo/<layer>/r2": ..., "step": recorded_step}``: collected in ``on_log`` and
    ``on_step_end`` (a step's results usually arrive a few steps later, under the step they
    describe) and in ``on_train_end`` after the recorder is flushed, so every recorded step
    is there.  To see them in TensorBoard as well, give the :class:`~probes.LiveProbes`
    a ``SummaryWriter`` (``tensorboard=``).

    *Analyses' scalars.* The scalar summary of each ``analyses=`` result (see
    :class:`latentgeo.callbacks._analyses.StepAnalyses`: ``latentgeo/<name>/<layer>``,
    ``latentgeo/<name>/rest`` and ``latentgeo/<name>/total`` for an attribution,
    ``latentgeo/<name>/loss`` and ``latentgeo/<name>/excluded_loss/<irrep>`` for an irrep
    ablation,
    ``latentgeo/<name>/invariant_dimension`` and ``.../equivariant_dimension`` for a
    discovery) is appended to ``state.log_history`` the same way, ``{..., "step":
    recorded_step}``; the full results go to the store.

    Metrics come from ``on_log``. The Trainer logs and evaluates a step *after*
    ``on_step_end``, with the weights unchanged, so when a due step is also a logging (or
    evaluation) step the recording waits for that ``on_log`` (or ``on_evaluate``) and stores
    the step's own loss (and evaluation metrics); it is flushed at the latest before the next
    optimizer step (``on_step_begin``), at epoch end and at train end. Only values logged at
    the recorded step itself are stored (the store holds NaN for a metric at other steps): a
    loss logged ten steps ago is not this step's loss.

    A run resumed with ``trainer.train(resume_from_checkpoint=...)`` (``global_step > 0`` at
    ``on_train_begin``) continues the same store in mode ``"a"``; steps already committed are
    never written again. The store is closed in ``on_train_end``; the Trainer has no hook for
    exceptions, so call :meth:`close` in your own ``except``/``finally`` if training may fail.

    Examples
    --------
    >>> # Not run here: needs a Hugging Face model, training arguments and data.
    >>> rec = HFRecorder(["encoder.layer.*"], action, x_probe, "runs/tf.zarr")  # doctest: +SKIP
    >>> Trainer(model, args, train_dataset=ds, callbacks=[rec]).train()  # doctest: +SKIP
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
        self._session = RecordingSession(
            layers, action, probe_inputs, store, labels, schedule, recorder_kwargs, analyses
        )
        self._metrics: dict[str, Any] = {}  # values logged at self._metrics_step
        self._metrics_step: int | None = None
        self._pending: int | None = None  # a due step waiting for its own logs
        self._wait_for = "log"  # or "evaluate": the last hook of the step with metrics
        self._live: Any = None  # the recorder's LiveProbes, kept after the recorder closes

    def close(self) -> None:
        """Close the store (drains the writer); safe to call more than once."""
        self._pending = None
        self._session.close()

    # -- helpers -----------------------------------------------------------------------------
    def _record(self, state: TrainerState, step: int) -> None:
        # Only values logged at this very step: a loss logged steps ago is not this step's.
        metrics = self._metrics if self._metrics_step == step else None
        self._session.record(step, metrics=metrics, epoch=hf_epoch_index(state.epoch))

    def _log_live(self, state: TrainerState) -> None:
        """Append the finished live results and the analyses' scalars to
        ``state.log_history`` (process zero), each under the step it describes."""
        results = [*(self._live.drain() if self._live is not None else ())]
        results += self._session.analyses.drain()
        if not state.is_world_process_zero:
            return
        for step, metrics in results:
            state.log_history.append({**metrics, "step": step})

    def _flush(self, state: TrainerState, event: str | None = None) -> None:
        # Weights only change at the optimizer step, so a pending step can be recorded in any
        # hook before the next one and still see exactly the weights of that step. ``event``
        # names the hook calling: "log" does not flush a step waiting for its evaluation.
        if self._pending is None:
            return
        if self._pending != state.global_step:
            self._pending = None  # unreachable in the Trainer's event order; never record stale
            return
        if event is not None and self._wait_for == "evaluate" and event == "log":
            return
        step, self._pending = self._pending, None
        self._record(state, step)

    # -- hooks -------------------------------------------------------------------------------
    def on_train_begin(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        model: torch.nn.Module | None = None,
        **kwargs: Any,
    ) -> None:
        if model is None:
            raise ValueError("HFRecorder needs the Trainer's model in on_train_begin, got None")
        from latentgeo.record._layers import collective_forward

        # Under FSDP the Trainer hands callbacks its FSDP wrapper, whose forward is a
        # collective: every rank then records in lockstep (rank 0 writes).
        if not state.is_world_process_zero and collective_forward(model) is None:
            return
        self._metrics, self._metrics_step = {}, None
        self._pending = None
        self._session.build(model, resume=state.global_step > 0)
        from latentgeo.record._observer import LoggedObserver

        live = getattr(self._session.recorder, "live", None)
        # Only an observer that queues results (probes.LiveProbes) has anything to log.
        self._live = live if isinstance(live, LoggedObserver) else None
        self._record(state, state.global_step)

    def on_step_begin(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        self._flush(state)

    def on_step_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        session = self._session
        if session.recorder is None:
            return
        self._flush(state)
        step = state.global_step
        if not session.is_due(step):
            self._log_live(state)
            return
        # DefaultFlowCallback (always first in the handler) has just decided whether this
        # step is logged and evaluated; if so, wait for those metrics of the same step.
        if control.should_evaluate or control.should_log:
            self._pending = step
            self._wait_for = "evaluate" if control.should_evaluate else "log"
        else:
            self._record(state, step)
        self._log_live(state)

    def on_log(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        logs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        if self._session.recorder is None:
            return
        if self._metrics_step != state.global_step:
            self._metrics, self._metrics_step = {}, state.global_step
        if logs:
            # Training logs and evaluation logs of one step arrive in separate calls.
            self._metrics.update(logs)
        self._flush(state, "log")
        self._log_live(state)

    def on_evaluate(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        self._flush(state, "evaluate")

    def on_save(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        self._flush(state)

    def on_epoch_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        self._flush(state)

    def on_train_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        try:
            self._flush(state)
        finally:
            self.close()
        self._log_live(state)  # close() waited for the writer: every recorded step is in
