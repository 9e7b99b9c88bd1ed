"""Framework-independent machinery shared by the training-framework callbacks.

A callback only translates a framework's events into three questions: *which step is it*,
*is it due* and *what were the metrics*. Everything else (building the
:class:`~latentgeo.LatentRecorder` once, never recording a step twice, resuming an existing
store, closing it exactly once) lives here so that the Lightning and Hugging Face callbacks
behave identically.
"""

from __future__ import annotations

import logging
import math
import numbers
import os
import warnings
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from latentgeo.record._environment import model_device
from latentgeo.schedules import as_schedule

if TYPE_CHECKING:
    from latentgeo.actions import Action
    from latentgeo.record import LatentRecorder

__all__ = [
    "RecordingSession",
    "hf_epoch_index",
    "resolve_store",
    "scalar_metrics",
    "storable_metrics",
]

logger = logging.getLogger("latentgeo.callbacks")

# Arguments the callback supplies itself; passing them through ``recorder_kwargs`` would be
# ambiguous (which model? which step?), so they are rejected up front with a clear message.
_RESERVED_KWARGS = ("model", "layers", "action", "probe_inputs", "store", "labels", "schedule")


def resolve_store(store: Any) -> str:
    """Return ``store`` as a string: an absolute local path or an unchanged fsspec URL.

    Parameters
    ----------
    store : str or os.PathLike
        Local path or fsspec URL of the run store.

    Returns
    -------
    str
        The path made absolute (so a resumed run finds the same store whatever the working
        directory), or the URL unchanged.
    """
    if not isinstance(store, (str, os.PathLike)):
        raise TypeError(
            f"store must be a path (str or os.PathLike) or an fsspec URL string, got {store!r}"
        )
    path = os.fspath(store)
    if isinstance(path, bytes):
        raise TypeError(f"store must be a str path or URL, got bytes {store!r}")
    if "://" in path:
        return path
    return os.path.abspath(os.path.expanduser(path))


def scalar_metrics(metrics: Mapping[str, Any] | None) -> dict[str, float]:
    """Keep the finite-or-not real scalars of a metrics mapping, as Python floats.

    Frameworks log tensors (Lightning's ``callback_metrics``), numpy scalars and plain numbers,
    and sometimes strings or vectors; only real scalars can be stored along ``step``, so the
    rest is dropped (with a debug message, because dropping is expected, not an error).

    Parameters
    ----------
    metrics : mapping of str to scalar, or None

    Returns
    -------
    dict of str to float
    """
    out: dict[str, float] = {}
    if not metrics:
        return out
    for name, value in metrics.items():
        if isinstance(value, torch.Tensor):
            if value.numel() != 1 or value.is_complex():
                logger.debug("metric %r is not a real scalar tensor; not stored", name)
                continue
            out[str(name)] = float(value.detach().reshape(()).item())
        elif isinstance(value, bool):
            out[str(name)] = float(value)
        elif isinstance(value, numbers.Real):
            out[str(name)] = float(value)
        elif hasattr(value, "item") and getattr(value, "size", None) == 1:
            try:
                out[str(name)] = float(value.item())
            except (TypeError, ValueError):
                logger.debug("metric %r is not a real scalar; not stored", name)
        else:
            logger.debug("metric %r of type %s is not a scalar; not stored", name, type(value))
    return out


def storable_metrics(metrics: Mapping[str, Any] | None, layers: Any = ()) -> dict[str, float]:
    """The scalar metrics under names the run store accepts.

    Frameworks name metrics ``"train/loss"``; a ``/`` would make a nested zarr group, so it
    becomes ``"_"`` (``"train_loss"``). Names the store reserves (``step``, ``epoch``,
    ``wall_time``, ...: Hugging Face logs a fractional ``epoch``, stored in its own array) and
    names of recorded layers are dropped, never allowed to stop a training run.

    Parameters
    ----------
    metrics : mapping of str to scalar, or None
    layers : collection of str
        Names of the recorded layers.

    Returns
    -------
    dict of str to float
    """
    from latentgeo.store._schema import validate_metric_name

    out: dict[str, float] = {}
    for name, value in scalar_metrics(metrics).items():
        key = name.replace("/", "_")
        try:
            validate_metric_name(key, layers)
        except (TypeError, ValueError) as exc:
            logger.debug("metric %r not stored: %s", name, exc)
            continue
        out[key] = value
    return out


def _check_recorder_kwargs(recorder_kwargs: Mapping[str, Any]) -> None:
    bad = sorted(k for k in recorder_kwargs if k in _RESERVED_KWARGS)
    if bad:
        raise TypeError(
            f"recorder_kwargs may not contain {bad!r}: the callback supplies the model itself "
            f"and takes {', '.join(_RESERVED_KWARGS[1:])} as its own arguments"
        )


class RecordingSession:
    """One recorder's life inside a training run, shared by the framework callbacks.

    Parameters
    ----------
    layers, action, probe_inputs, labels, schedule
        Passed to :class:`latentgeo.LatentRecorder`.
    store : str or os.PathLike
        Path or URL of the run store.
    recorder_kwargs : mapping
        Further keyword arguments of :class:`latentgeo.LatentRecorder` (``mode``, ``reduce``,
        ``dtype``, ``batch_size``, ``device``, ...).
    analyses : mapping of str to callable, optional
        ``{name: fn}``: at every recorded step ``fn(model)`` (the model being trained, with
        that step's weights) returns an ``xarray.Dataset``; see :class:`StepAnalyses`.

    Notes
    -----
    ``last_step`` is the last step this session recorded (or found committed in a resumed
    store); a step is recorded at most once, so gradient accumulation, repeated events at one
    step and resumed runs never write a step twice. ``resume`` switches the recorder to mode
    ``"a"``: set when a framework checkpoint says the store was already started, or when this
    session already built a recorder before (a second ``fit`` with the same callback).
    """

    def __init__(
        self,
        layers: str | Sequence[str],
        action: Action,
        probe_inputs: torch.Tensor,
        store: str | os.PathLike[str],
        labels: Any = None,
        schedule: Any = None,
        recorder_kwargs: Mapping[str, Any] | None = None,
        analyses: Mapping[str, Any] | None = None,
    ) -> None:
        recorder_kwargs = dict(recorder_kwargs or {})
        from latentgeo.callbacks._analyses import StepAnalyses

        self.analyses = StepAnalyses(analyses)
        _check_recorder_kwargs(recorder_kwargs)
        if not isinstance(probe_inputs, (torch.Tensor, np.ndarray)):
            raise TypeError(
                f"probe_inputs must be a torch.Tensor or numpy array of shape (n_samples, ...), "
                f"got {type(probe_inputs).__name__}"
            )
        # None -> the default schedule, an int -> EveryN, an iterable -> Explicit.
        schedule = as_schedule(schedule)
        mode = recorder_kwargs.get("mode", "w-")
        if mode not in ("w-", "w", "a"):
            raise ValueError(f"mode must be one of 'w-', 'w', 'a', got {mode!r}")
        self.layers = layers
        self.action = action
        self.probe_inputs = probe_inputs
        self.labels = labels
        self.schedule = schedule
        self.store = resolve_store(store)
        self.recorder_kwargs = recorder_kwargs
        self.recorder: Any = None
        self.model: torch.nn.Module | None = None  # what the recorder hooks, while it is open
        self.last_step: int | None = None
        self.resume = False
        self.started = False  # a recorder was built at least once (the store exists)

    # -- state carried in framework checkpoints ---------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """The state a resumed run needs: last recorded step and the store path.

        Waits for the writer first, so a framework checkpoint never claims a step that is not
        yet committed in the store.
        """
        if self.recorder is not None:
            self.recorder.flush()
        return {
            "last_step": self.last_step,
            "store": self.store,
            "started": self.started,
            "version": 1,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict` output; the next recorder resumes the store (mode "a")."""
        if not isinstance(state, Mapping):
            raise TypeError(f"expected the mapping saved by state_dict(), got {state!r}")
        saved_store = state.get("store")
        if saved_store is not None and saved_store != self.store:
            # The user's current argument wins (the store may have been moved), but silently
            # writing somewhere else than the run being resumed is a classic mistake.
            warnings.warn(
                f"resuming from a checkpoint whose latent store was {saved_store!r}; "
                f"continuing the store given to the callback, {self.store!r}",
                UserWarning,
                stacklevel=2,
            )
        last = state.get("last_step")
        self.last_step = None if last is None else int(last)
        # Only resume if the checkpointed run had created its store: otherwise the store may
        # legitimately not exist yet and mode "w-" must still protect an unrelated one.
        self.resume = bool(state.get("started", last is not None))

    # -- recorder life cycle ----------------------------------------------------------------
    def build(self, model: torch.nn.Module, *, resume: bool = False, device: Any = None) -> None:
        """Build the recorder on ``model`` (idempotent: a built recorder is kept).

        Parameters
        ----------
        model : torch.nn.Module
            The module whose layers are recorded (wrappers are unwrapped by the recorder).
        resume : bool
            The framework knows this is a resumed run (e.g. ``global_step > 0``).
        device : torch.device, optional
            Where the probe inputs go; default: the recorder's ``device=`` argument or the
            model's device.
        """
        if self.recorder is not None:
            return
        from latentgeo.record import LatentRecorder

        kwargs = dict(self.recorder_kwargs)
        if self.resume or resume or self.started:
            kwargs["mode"] = "a"
        if kwargs.get("device") is None:
            kwargs["device"] = device if device is not None else model_device(model)
        self.recorder = LatentRecorder(
            model,
            self.layers,
            self.action,
            self.probe_inputs,
            self.store,
            labels=self.labels,
            schedule=self.schedule,
            **kwargs,
        )
        self.model = model
        self.started = True
        # The store is the truth about what was recorded. A run that died after saving a
        # framework checkpoint but before the writer committed may have lost steps; the step of
        # the checkpoint itself is recorded again at train start. A store holding steps past
        # the checkpoint (the run went on after saving it) keeps them and is not rewritten.
        committed = self.recorder.last_step
        if self.last_step is not None and (committed is None or committed < self.last_step):
            warnings.warn(
                f"the training checkpoint says step {self.last_step} was recorded, but the run "
                f"store {self.store!r} holds steps only up to {committed}; the missing steps "
                f"are recorded again when training passes them",
                UserWarning,
                stacklevel=3,
            )
        self.last_step = committed

    def is_due(self, step: int) -> bool:
        """Whether ``step`` is new (after ``last_step``) and in the recorder's schedule."""
        if self.recorder is None:
            return False
        if self.last_step is not None and step <= self.last_step:
            return False
        return bool(self.schedule(step))

    def record(
        self, step: int, metrics: Mapping[str, Any] | None = None, epoch: Any = None
    ) -> bool:
        """Record ``step`` if it is due; return whether it was recorded."""
        step = int(step)
        if not self.is_due(step):
            return False
        epoch = None if epoch is None else int(epoch)
        layers = getattr(self.recorder, "layers", ())
        self.recorder.record(step, metrics=storable_metrics(metrics, layers), epoch=epoch)
        self.last_step = step
        if self.analyses and self.model is not None:
            self.analyses.run(self.model, step)
        return True

    def close(self, *, quiet: bool = False) -> None:
        """Close the recorder (drains its writer); safe to call more than once.

        With ``quiet=True`` (training already failed) a writer error is logged instead of
        raised, so it cannot hide the exception that stopped training.
        """
        recorder, self.recorder = self.recorder, None
        self.model = None
        if recorder is None:
            return
        if not quiet:
            recorder.close()
            self._save_analyses(quiet=False)
            return
        try:
            recorder.close()
        except Exception:
            logger.exception("closing the latent recorder of %r failed", self.store)
        self._save_analyses(quiet=True)

    def _save_analyses(self, *, quiet: bool) -> None:
        """Write the analyses' results into the (closed) store, from global rank 0."""
        from latentgeo.record._environment import dist_rank_world

        if not self.analyses or dist_rank_world()[0] != 0:
            self.analyses.clear()
            return
        try:
            self.analyses.save(self.store, self.recorder_kwargs.get("storage_options"))
        except Exception:
            if not quiet:
                raise
            logger.exception("writing the analyses into %r failed", self.store)


class SessionView:
    """What both framework callbacks expose of their :class:`RecordingSession`.

    A mixin (before the framework's base class) so Lightning and Hugging Face callbacks share
    one definition of ``store``, ``last_step`` and ``recorder``.
    """

    _session: RecordingSession

    @property
    def store(self) -> str:
        """The run store's path or URL."""
        return self._session.store

    @property
    def last_step(self) -> int | None:
        """The last global step recorded (or found in a resumed store), or None."""
        return self._session.last_step

    @property
    def recorder(self) -> LatentRecorder | None:
        """The :class:`latentgeo.LatentRecorder` while training, else None."""
        return self._session.recorder


def hf_epoch_index(epoch: float | None) -> int | None:
    """The 0-based index of the epoch a Hugging Face fractional ``state.epoch`` is in.

    ``state.epoch`` is ``epoch + (batch + 1) / batches_per_epoch``, so the last step of
    epoch 0 reads 1.0: the epoch index is ``ceil(epoch) - 1`` (and 0 before any step).
    """
    if epoch is None:
        return None
    return max(0, math.ceil(float(epoch)) - 1)
