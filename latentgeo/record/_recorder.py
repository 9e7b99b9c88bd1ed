"""The :class:`LatentRecorder`: record latents of chosen layers on a probe set's group orbit.

The recorder coordinates three parts, each in its own module: the checked configuration
(:mod:`latentgeo.record._config`), the capture on the device (hooks, orbit cache, host-buffer
pool: :mod:`latentgeo.record._capture`) and the background writer
(:mod:`latentgeo.record._async_writer`); it adds the distributed protocol (rank 0 writes, every
rank runs the forwards in lockstep when the model needs it) and the live observer.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from latentgeo._validate import check_int
from latentgeo.record._async_writer import (
    AsyncWriter,
    NonFiniteLatentsWarning,
    QueueItem,
    StorageOverflowWarning,
    WriterError,
)
from latentgeo.record._capture import Capture
from latentgeo.record._config import RecorderConfig
from latentgeo.record._dtypes import host_array
from latentgeo.record._environment import close_at_exit, dist_rank_world, probe_digest
from latentgeo.record._layers import collective_forward, unwrap_model
from latentgeo.record._lockstep import Lockstep, LockstepError
from latentgeo.record._observer import LiveObserver, as_observer
from latentgeo.schedules import Schedule

if TYPE_CHECKING:
    from latentgeo.actions import Action

__all__ = [
    "LatentRecorder",
    "NonFiniteLatentsWarning",
    "StorageOverflowWarning",
    "WriterError",
]

log = logging.getLogger(__name__)

#: Probe inputs are stored in the run by default when they are at most this big.
_STORE_INPUTS_BYTES = 64 * 2**20


class LatentRecorder:
    """Record the latents of chosen layers on a probe set and its group orbit into a run store.

    At every recorded step the probe set ``x`` is transformed by every group element
    (``action.orbit(x)``), pushed through the model in eval mode, and the outputs of the
    hooked layers are reduced, cast and written as one checkpoint of the store.

    Parameters
    ----------
    model : torch.nn.Module
        The model; DDP / DataParallel / ``torch.compile`` wrappers are looked through; FSDP
        and other sharded models record in lockstep (see *Distributed*).
    layers : str or sequence of str
        Module names or ``fnmatch`` patterns over ``named_modules()``.
    action : latentgeo.actions.Action
        How the group acts on inputs (``action.orbit``, ``action.group``, ``action.to_spec``).
    probe_inputs : tensor or array of shape (n_samples, ...)
        The fixed probe set, in any dtype (bfloat16 and float8 are hashed and stored through
        an exact float32 copy).
    store : str or os.PathLike
        Path or fsspec URL of the run store.
    labels : tensor or array of shape (n_samples, ...), optional
        Labels of the probe set, stored with it.
    mode : {"w-", "w", "a"}
        ``"w-"`` refuses an existing store, ``"w"`` overwrites, ``"a"`` resumes: steps up to
        the last committed one are skipped, never written twice.
    reduce : str, Reducer, callable or mapping
        Reducer for every layer, or ``{layer: reducer}`` (unlisted layers are flattened).
    dtype : {"float32", "float16", "float64"}
        Storage dtype; the cast happens on the device.  Finite values beyond its range (float16:
        65504) are counted before the cast, stored in ``overflow_<layer>`` apart from the
        model's own non-finite values, and reported by a :class:`StorageOverflowWarning`.
    batch_size : int
        Number of transformed inputs per forward pass (``batch_size // order`` probe samples,
        with all their group transforms).
    schedule : Schedule, int, iterable of int or None
        Steps :meth:`maybe_record` records (default: :func:`latentgeo.schedules.default_schedule`).
    device : torch.device or str, optional
        Where to run the forward passes (default: the model's device).
    select : str, sequence, callable or mapping, optional
        Which tensor of a layer's output to record, for every layer or ``{layer: selector}``:
        a path such as ``"hidden_states.-1"`` or ``"0.1"``, or a callable ``output -> tensor``.
        Default: the first tensor in reading order, depth-first through tuples, lists,
        mappings (``ModelOutput``), dataclasses and tensor wrappers (``.tensor``).  The
        selector and the path taken are stored in the layer's attributes (``select``,
        ``output_path``).
    store_inputs : bool or "auto"
        Store the probe inputs in the run ("auto": when they take at most 64 MiB).
    compressors : optional
        zarr compressors for the latents (default none, see :class:`latentgeo.store.RunWriter`).
    storage_options : mapping, optional
        fsspec options for a store at a URL, e.g. ``{"endpoint_url": ...}`` for an
        S3-compatible server (see :class:`latentgeo.store.RunWriter`).
    max_queue : int
        Checkpoints waiting for the background writer before :meth:`record` blocks.
    live : LiveObserver, optional
        An observer (:class:`latentgeo.record.LiveObserver`: ``bind``, ``observe``,
        ``close``) of every recorded step's latents already in host memory, called in the
        writer thread after the step is written; :class:`probes.LiveProbes` computes the
        symmetry metrics there: results in ``live.history``, queued for the callbacks
        (``live.drain()``) and written to its TensorBoard writer.  A failing live
        probe warns once (a ``RuntimeWarning`` raised by a later :meth:`record` /
        :meth:`flush`) and recording goes on; :meth:`flush` waits for the live probes too.
        ``ValueError`` here for what the orbit cannot give (from ``live.bind``).

    Notes
    -----
    *Observer effect.* Every forward runs inside latentgeo's protected model-call path
    (``latentgeo._model_call.protected_call``): eval entered and left through the model's own
    ``train()``, then every module's own flag restored; ``torch.no_grad()`` (never
    ``inference_mode``, so a cache the model builds during the call stays trainable); torch,
    CUDA, Python and numpy random state restored; hooks only for the duration of a recording.
    Training with and without the recorder gives bit-identical weights.

    *Threads.* Reduction and the cast run on the device; the result is copied once to (pinned,
    on CUDA) host memory, a CUDA event marks the copy, and a bounded queue hands it to a
    writer thread that waits on the event and appends to the store.  An error in the writer
    is raised by the next :meth:`record`, :meth:`flush` or :meth:`close`.

    *Distributed.* Under DDP only rank 0 records, forwarding through the unwrapped module (so
    DDP's buffer broadcast is not triggered); other ranks keep track of the steps and do
    nothing else.  The recorder then calls no collective, so it may be created on every rank
    or on rank 0 only.  Every rank holds the same weights under DDP, so rank 0's recording is
    the recording.

    A model whose forward is itself a collective -- FSDP1 ``FullyShardedDataParallel``, FSDP2
    ``fully_shard``, DTensor (tensor-parallel) parameters, DeepSpeed ZeRO-3 -- is detected at
    construction (:attr:`collective` says why) and recorded **in lockstep**: the recorder must
    be constructed on every rank with the same arguments (checked by one collective;
    :class:`~latentgeo.record.LockstepError` on every rank otherwise), and :meth:`record` /
    :meth:`maybe_record` called on every rank at the same steps (checked at each recording).
    Every rank runs the orbit forwards; rank 0 writes.

    *Resuming.* ``mode="a"`` on a store recorded with other layers, group, action, probe
    set, storage dtype, reducer or selector raises
    :class:`~latentgeo.store.ResumeMismatchError` here, at construction.

    Examples
    --------
    >>> # Not run here: needs your model, action, probe set and training step.
    >>> rec = LatentRecorder(model, ["conv1", "fc"], action, x, "runs/cnn.zarr")  # doctest: +SKIP
    >>> for step in range(1000):  # doctest: +SKIP
    ...     loss = train_step()
    ...     rec.maybe_record(step, metrics={"loss": loss})
    >>> rec.close()  # doctest: +SKIP
    """

    # Set in __init__; declared here for the type checker (read by _close_at_exit).
    store: str | os.PathLike[str]
    _live_failed: bool
    _closed: bool

    def __init__(
        self,
        model: torch.nn.Module,
        layers: str | Sequence[str],
        action: Action,
        probe_inputs: Any,
        store: str | os.PathLike[str],
        labels: Any = None,
        mode: str = "w-",
        reduce: Any = "flatten",
        dtype: str = "float32",
        batch_size: int = 256,
        schedule: Schedule | int | Sequence[int] | None = None,
        device: torch.device | str | None = None,
        *,
        select: Any = None,
        store_inputs: bool | str = "auto",
        compressors: Any = None,
        storage_options: Mapping[str, Any] | None = None,
        max_queue: int = 2,
        live: Any = None,
    ) -> None:
        from latentgeo.store import RunWriter

        self._model = model
        self._module = unwrap_model(model)
        config = RecorderConfig.build(
            self._module,
            layers,
            action,
            probe_inputs,
            labels,
            mode,
            reduce,
            dtype,
            batch_size,
            schedule,
            device,
            select,
        )
        self.config = config
        self.action = action
        self.store = store
        self._capture = Capture(self._module, config, action)
        self.rank, self.world_size = dist_rank_world()
        # A model whose forward gathers sharded parameters (FSDP...) records in lockstep.
        self.collective = collective_forward(self._module)
        self._lockstep = (
            Lockstep(self.collective, self.rank, self.world_size)
            if self.collective is not None and self.world_size > 1
            else None
        )

        group = action.group
        elements = config.elements
        x, labels = config.x, config.labels
        # A live observer (probes.LiveProbes) runs in the writer thread on the host latents.
        self.live: LiveObserver | None = as_observer(live)
        self._live_failed = False
        if self.live is not None:
            self.live.bind(group, action.element_values, n_samples=int(x.shape[0]))
        x_host, input_dtype = host_array(x, "probe_inputs")
        probe = {
            "n_samples": int(x.shape[0]),
            "input_shape": list(x.shape[1:]),
            "input_dtype": input_dtype,
            "sha256": probe_digest(x_host, input_dtype),
            "has_labels": labels is not None,
        }
        if str(x_host.dtype) != input_dtype:
            probe["stored_dtype"] = str(x_host.dtype)  # the exact wider copy hashed and stored
        if labels is not None and config.labels_dtype != str(labels.dtype):
            probe["labels_dtype"] = config.labels_dtype
        meta = {
            "group": getattr(group, "spec", None) or repr(group),
            "elements": elements,
            "action": action.to_spec(),
            "probe": probe,
            "model": {
                "class": f"{type(self._module).__module__}.{type(self._module).__qualname__}",
                "n_parameters": int(sum(p.numel() for p in self._module.parameters())),
            },
            "recorder": {
                "batch_size": self.batch_size,
                "world_size": self.world_size,
                "lockstep": self._lockstep is not None,
            },
        }
        self._writer: Any = None
        self._async: AsyncWriter | None = None
        self._closed = False
        self._layers_defined = False
        if self._lockstep is not None:
            self._lockstep.agree(
                "the recorder's settings",
                {
                    "layers": self.layers,
                    "probe": probe,
                    "batch_size": self.batch_size,
                    "elements": elements,
                    "dtype": self.dtype,
                    "mode": self.mode,
                },
            )
        committed: list[int] = []
        failure: BaseException | None = None
        if self.rank == 0:
            try:
                # A resumed store recorded otherwise fails here, before training resumes and
                # before anything in it changes.
                self._writer = RunWriter(
                    store,
                    mode,
                    meta=meta,
                    compressors=compressors,
                    storage_options=storage_options,
                    layers={name: config.layer_spec(name) for name in config.layers},
                )
                try:
                    committed = self._writer.steps
                    self._writer.write_element_values(action.element_values)
                    if store_inputs == "auto":
                        store_inputs = x_host.nbytes <= _STORE_INPUTS_BYTES
                    if store_inputs and x_host.dtype.kind in "biuf":
                        self._writer.write_probe(x_host, labels)
                    elif labels is not None:
                        self._writer.write_probe(None, labels)
                except BaseException:
                    self._writer.close(consolidate_metadata=False)  # release the store's lock
                    raise
            except BaseException as err:
                failure = err
        if self._lockstep is not None:
            # Every rank must learn whether rank 0 opened the store (else the others would
            # wait in the first recording's collectives forever), and which steps it holds.
            state = self._lockstep.from_rank0(
                (committed, None if failure is None else f"{type(failure).__name__}: {failure}")
            )
            committed, message = state
            if failure is not None:
                raise failure
            if message is not None:
                raise LockstepError(f"rank 0 could not open the run store {store!r}: {message}")
        elif failure is not None:
            raise failure
        elif self.rank != 0 and mode == "a":
            # Non-zero ranks only learn which steps are already there, to answer like rank 0.
            from latentgeo.store import open_run

            try:
                committed = [int(s) for s in open_run(store, storage_options=storage_options).steps]
            except (FileNotFoundError, ValueError):
                committed = []
        if self.rank == 0:
            self._async = AsyncWriter(
                self._writer,
                store,
                config.dtype,
                max_queue,
                release=self._capture.release,
                observe=self._observe_live if self.live is not None else None,
            )
            close_at_exit(self)
        self._recorded: list[int] = list(committed)

    # -- configuration (read-only views of self.config) ---------------------------------------
    @property
    def layers(self) -> list[str]:
        """The recorded layers' names, in order."""
        return self.config.layers

    @property
    def dtype(self) -> str:
        """The storage dtype's name."""
        return self.config.dtype

    @property
    def batch_size(self) -> int:
        """Largest number of orbit inputs per forward pass."""
        return self.config.batch_size

    @property
    def schedule(self) -> Schedule:
        """Which steps :meth:`maybe_record` records."""
        return self.config.schedule

    @property
    def mode(self) -> str:
        """How the store was opened (``"w-"``, ``"w"``, ``"a"``)."""
        return self.config.mode

    @property
    def device(self) -> torch.device:
        """Where the forward passes run."""
        return self.config.device

    @property
    def _free_host(self) -> dict[str, list[torch.Tensor]]:
        # The capture's host-buffer pool (read by the CUDA tests).
        return self._capture.free_host

    # -- public state ---------------------------------------------------------------------------
    @property
    def last_step(self) -> int | None:
        """The last recorded step (committed once the writer catches up: see :meth:`flush`),
        or None before the first."""
        return self._recorded[-1] if self._recorded else None

    @property
    def recorded_steps(self) -> list[int]:
        """Every step in the store: those committed before a resume, then those recorded."""
        return list(self._recorded)

    # -- recording ------------------------------------------------------------------------------
    def maybe_record(
        self, step: int, metrics: Mapping[str, Any] | None = None, *, epoch: int | None = None
    ) -> bool:
        """Record ``step`` if the schedule says so; return whether it was recorded."""
        if not self.schedule(step):
            return False
        return self.record(step, metrics, epoch=epoch)

    def record(
        self, step: int, metrics: Mapping[str, Any] | None = None, *, epoch: int | None = None
    ) -> bool:
        """Record the latents at training step ``step``.

        Parameters
        ----------
        step : int
            Training step (>= 0).  A step not after :attr:`last_step` is skipped (resumed runs,
            gradient accumulation), never written twice.
        metrics : mapping of str to float, optional
            Scalars stored along ``step`` (``loss``, ``accuracy``…).
        epoch : int, optional
            Training epoch.

        Returns
        -------
        bool
            True if the step was recorded (on every rank), False if it was skipped.
        """
        self._check_open()
        self._raise_pending()
        step = check_int(step, "step", minimum=0)
        if epoch is not None:
            check_int(epoch, "epoch")
        from latentgeo.store._schema import validate_metric_name

        scalars = {}
        for key, value in (metrics or {}).items():
            # Checked here, not in the writer thread, so a bad name fails this call only.
            validate_metric_name(key, self.layers)
            try:
                scalars[str(key)] = float(value)
            except (TypeError, ValueError) as err:
                raise TypeError(f"metric {key!r} must be a real scalar, got {value!r}") from err
        if self._lockstep is not None:
            # One small collective turns ranks recording different steps into an error on
            # every rank instead of mismatched all-gathers (a hang under NCCL).
            self._lockstep.agree("the step to record", step)
        if self._recorded and step <= self._recorded[-1]:
            log.debug(
                "step %d skipped: not after the last recorded step %d", step, self._recorded[-1]
            )
            return False
        if self._lockstep is not None and self.rank != 0:
            # Every rank runs the forwards; rank 0 keeps the latents.
            self._capture.forward(keep=False)
        elif self.rank == 0 and self._async is not None:
            latents, counts, overflow, event = self._capture.forward()
            if not self._layers_defined:
                # The writer thread is idle before the first checkpoint, so defining the
                # layers here (and failing loudly on a resume mismatch) is race-free.
                self._writer.ensure_layers(self._capture.layer_specs(latents))
                self._layers_defined = True
            self._async.put(
                QueueItem(step, epoch, time.time(), scalars, latents, counts, overflow, event)
            )
        self._recorded.append(step)
        return True

    # -- the writer thread ---------------------------------------------------------------------
    def _observe_live(self, step: int, arrays: Mapping[str, np.ndarray]) -> None:
        # A failing live probe must not stop the recording: warn once, keep writing.
        live = self.live
        if live is None:
            return
        try:
            live.observe(step, arrays)
        except Exception as err:
            log.debug("live probes failed at step %d", step, exc_info=True)
            if not self._live_failed and self._async is not None:
                self._live_failed = True
                self._async.defer_warning(
                    f"live probes failed at step {step} ({err!r}); recording goes on, "
                    "later failures are logged at debug level",
                    RuntimeWarning,
                )

    def _raise_pending(self) -> None:
        if self._async is not None:
            self._async.raise_pending()

    def flush(self) -> None:
        """Wait until every recorded step is committed (raises a writer error if any)."""
        if self._async is not None:
            self._async.join()
        self._raise_pending()

    def close(self) -> None:
        """Drain the queue, commit, consolidate the store's metadata and release it.

        Idempotent.  Raises :class:`WriterError` if the writer failed.
        """
        if self._closed:
            return
        self._closed = True
        try:
            if self._async is not None:
                self._async.stop()
            self._raise_pending()
        finally:
            if self.live is not None:
                self.live.close()
            if self._writer is not None:
                failed = self._async is not None and self._async.error is not None
                self._writer.close(consolidate_metadata=not failed)

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError(f"the recorder of {str(self.store)!r} is closed")

    def __enter__(self) -> LatentRecorder:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            self.close()
            return
        try:
            self.close()
        except Exception:  # do not mask the exception that ended the block
            log.exception("closing the recorder after an error failed")

    def __repr__(self) -> str:
        return (
            f"LatentRecorder(store={str(self.store)!r}, layers={self.layers}, "
            f"group={getattr(self.action.group, 'spec', self.action.group)!r}, "
            f"last_step={self.last_step})"
        )
