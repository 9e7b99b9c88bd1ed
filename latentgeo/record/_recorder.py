"""The :class:`LatentRecorder`: record latents of chosen layers on a probe set's group orbit."""

from __future__ import annotations

import logging
import numbers
import os
import queue
import threading
import time
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from latentgeo._errors import LatentgeoError
from latentgeo._model_call import protected_call
from latentgeo._outputs import describe_selector, parse_selector, select_output
from latentgeo.record._dtypes import OverflowCheck, host_array, overflow_message
from latentgeo.record._environment import close_at_exit, dist_rank_world, model_device, probe_digest
from latentgeo.record._layers import collective_forward, layer_modules, resolve_layers, unwrap_model
from latentgeo.record._lockstep import Lockstep, LockstepError
from latentgeo.record._observer import LiveObserver, as_observer
from latentgeo.record._reducers import Reducer, as_reducer
from latentgeo.schedules import Schedule, as_schedule
from latentgeo.store._writer import count_nonfinite, storable_probe_array

__all__ = [
    "LatentRecorder",
    "NonFiniteLatentsWarning",
    "StorageOverflowWarning",
    "WriterError",
]

log = logging.getLogger(__name__)

_DTYPES = {
    "float16": torch.float16,
    "float32": torch.float32,
    "float64": torch.float64,
}
#: The orbit of the probe set is kept on the device between recordings when it fits in this.
_ORBIT_CACHE_BYTES = 512 * 2**20
#: Probe inputs are stored in the run by default when they are at most this big.
_STORE_INPUTS_BYTES = 64 * 2**20


class NonFiniteLatentsWarning(RuntimeWarning):
    """Some recorded latents are NaN or infinite (they are stored as they are)."""


class StorageOverflowWarning(NonFiniteLatentsWarning):
    """Finite latents beyond the storage dtype's range became infinite in the storage cast."""


class WriterError(LatentgeoError, RuntimeError):
    """The background writer failed; the original exception is the ``__cause__``."""


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
    >>> rec = LatentRecorder(model, ["conv1", "fc"], action, x, "runs/cnn.zarr")  # doctest: +SKIP
    >>> for step in range(1000):  # doctest: +SKIP
    ...     loss = train_step()
    ...     rec.maybe_record(step, metrics={"loss": loss})
    >>> rec.close()  # doctest: +SKIP
    """

    # Set in __init__; declared here for the type checker (read by _close_at_exit).
    store: str | os.PathLike[str]
    device: torch.device
    batch_size: int
    schedule: Schedule
    _x: torch.Tensor
    _order: int
    _lock: threading.Lock
    _live_failed: bool
    _closed: bool

    def __init__(
        self,
        model: torch.nn.Module,
        layers: str | Sequence[str],
        action: Any,
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
        # Resolve every name before anything else: a typo fails before any hook or file.
        self.layers = resolve_layers(self._module, layers)
        modules = layer_modules(self._module)
        self._hooked = {name: modules[name] for name in self.layers}
        for attr in ("orbit", "group", "to_spec"):
            if not hasattr(action, attr):
                raise TypeError(
                    f"action must be a latentgeo.actions.Action (with .{attr}), got {action!r}"
                )
        self.action = action
        self._reducers = self._make_reducers(reduce)
        self._selectors = self._make_selectors(select)
        if isinstance(dtype, torch.dtype):
            dtype = str(dtype).removeprefix("torch.")
        if dtype not in _DTYPES:
            raise ValueError(f"dtype must be one of {sorted(_DTYPES)}, got {dtype!r}")
        self.dtype = dtype
        if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral):
            raise TypeError(f"batch_size must be an int, got {batch_size!r}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size!r}")
        self.batch_size = int(batch_size)
        self.schedule = as_schedule(schedule)
        if mode not in ("w-", "w", "a"):
            raise ValueError(f"mode must be one of ('w-', 'w', 'a'), got {mode!r}")
        self.mode = mode
        self.device = torch.device(device) if device is not None else model_device(self._module)

        x = probe_inputs
        if isinstance(x, np.ndarray):
            x = torch.from_numpy(x)
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"probe_inputs must be a tensor or numpy array, got {type(x).__name__}")
        if x.ndim < 1 or x.shape[0] < 1:
            raise ValueError(
                f"probe_inputs must have shape (n_samples >= 1, ...), got {tuple(x.shape)}"
            )
        self._x = x.detach()
        labels_dtype = None
        if labels is not None:
            given, labels_dtype = host_array(labels, "labels")
            if given.ndim < 1 or given.shape[0] != x.shape[0]:
                raise ValueError(
                    f"labels must have shape (n_samples={x.shape[0]}, ...), got {given.shape!r}"
                )
            # Numbers and strings are stored; anything else is said so, and not claimed stored.
            labels = storable_probe_array(given)
            if labels is None:
                warnings.warn(
                    f"labels of dtype {given.dtype} are neither numbers nor strings and are not "
                    "stored (the store records has_labels=False)",
                    UserWarning,
                    stacklevel=2,
                )
        self.store = store
        self.rank, self.world_size = dist_rank_world()
        # A model whose forward gathers sharded parameters (FSDP...) records in lockstep.
        self.collective = collective_forward(self._module)
        self._lockstep = (
            Lockstep(self.collective, self.rank, self.world_size)
            if self.collective is not None and self.world_size > 1
            else None
        )

        group = action.group
        elements = list(getattr(action, "elements", None) or [str(e) for e in group.elements])
        self._order = len(elements)
        # A live observer (probes.LiveProbes) runs in the writer thread on the host latents.
        self.live: LiveObserver | None = as_observer(live)
        self._live_failed = False
        if self.live is not None:
            self.live.bind(group, action.element_values, n_samples=int(x.shape[0]))
        x_host, input_dtype = host_array(self._x, "probe_inputs")
        probe = {
            "n_samples": int(x.shape[0]),
            "input_shape": list(x.shape[1:]),
            "input_dtype": input_dtype,
            "sha256": probe_digest(x_host, input_dtype),
            "has_labels": labels is not None,
        }
        if str(x_host.dtype) != input_dtype:
            probe["stored_dtype"] = str(x_host.dtype)  # the exact wider copy hashed and stored
        if labels is not None and labels_dtype != str(labels.dtype):
            probe["labels_dtype"] = labels_dtype
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
        self._thread: threading.Thread | None = None
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=max(1, int(max_queue)))
        self._error: BaseException | None = None
        self._warnings: list[tuple[str, type[Warning]]] = []
        self._lock = threading.Lock()
        self._closed = False
        self._orbit_batches: list[torch.Tensor] | None = None
        # Host buffers the writer has finished with, reused by later recordings: fresh
        # allocations of this size cost more in page faults than the copy into them.
        self._free_host: dict[str, list[torch.Tensor]] = {}
        self._layers_defined = False
        self._feature_shapes: dict[str, tuple[int, ...]] = {}
        self._output_paths: dict[str, str] = {}
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
                    layers=self._partial_layer_specs(),
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
            self._thread = threading.Thread(
                target=self._write_loop, name="latentgeo-writer", daemon=True
            )
            self._thread.start()
            close_at_exit(self)
        self._recorded: list[int] = list(committed)

    # -- configuration helpers ----------------------------------------------------------------
    def _make_reducers(self, reduce: Any) -> dict[str, Reducer]:
        if isinstance(reduce, Mapping):
            unknown = [k for k in reduce if k not in self.layers]
            if unknown:
                raise ValueError(
                    f"reduce has entries for layers that are not recorded: {unknown!r}; "
                    f"recorded layers: {self.layers}"
                )
            return {name: as_reducer(reduce.get(name, "flatten")) for name in self.layers}
        reducer = as_reducer(reduce)
        return dict.fromkeys(self.layers, reducer)

    def _make_selectors(self, select: Any) -> dict[str, Any]:
        if isinstance(select, Mapping):
            unknown = [k for k in select if k not in self.layers]
            if unknown:
                raise ValueError(
                    f"select has entries for layers that are not recorded: {unknown!r}; "
                    f"recorded layers: {self.layers}"
                )
            return {name: parse_selector(select.get(name)) for name in self.layers}
        selector = parse_selector(select)
        return dict.fromkeys(self.layers, selector)

    def _partial_layer_specs(self) -> dict[str, dict[str, Any]]:
        """What is known of each layer's spec before the first forward."""
        return {
            name: {
                "dtype": self.dtype,
                "reducer": self._reducers[name].to_spec(),
                "select": describe_selector(self._selectors[name]),
            }
            for name in self.layers
        }

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
        if isinstance(step, bool) or not isinstance(step, numbers.Integral) or step < 0:
            raise ValueError(f"step must be a non-negative int, got {step!r}")
        step = int(step)
        if epoch is not None and (
            isinstance(epoch, bool) or not isinstance(epoch, numbers.Integral)
        ):
            raise TypeError(f"epoch must be an int, got {epoch!r}")
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
            self._forward(keep=False)  # every rank runs the forwards; rank 0 keeps the latents
        elif self.rank == 0:
            latents, counts, overflow, event = self._forward()
            if not self._layers_defined:
                # The writer thread is idle before the first checkpoint, so defining the
                # layers here (and failing loudly on a resume mismatch) is race-free.
                self._writer.ensure_layers(self._layer_specs(latents))
                self._layers_defined = True
            item = (step, epoch, time.time(), scalars, latents, counts, overflow, event)
            while True:
                try:
                    self._queue.put(item, timeout=0.5)
                    break
                except queue.Full:
                    self._raise_pending()
        self._recorded.append(step)
        return True

    def _layer_specs(self, latents: Mapping[str, torch.Tensor]) -> dict[str, dict[str, Any]]:
        return {
            name: {
                "feature_shape": list(self._feature_shapes[name]),
                "n_units": int(latents[name].shape[-1]),
                "dtype": self.dtype,
                "reducer": self._reducers[name].to_spec(),
                "select": describe_selector(self._selectors[name]),
                "output_path": self._output_paths[name],
            }
            for name in self.layers
        }

    def _orbits(self) -> list[torch.Tensor]:
        """Batches of the transformed probe set, each of shape (order * b, ...)."""
        if self._orbit_batches is not None:
            return self._orbit_batches
        per = max(1, self.batch_size // self._order)
        n = self._x.shape[0]
        batches = []
        for s0 in range(0, n, per):
            xb = self._x[s0 : s0 + per].to(self.device)
            if xb.is_floating_point() and xb.element_size() == 1:
                # float8: torch implements few ops on it (no flip on CPU).  Float32 holds every
                # float8 value, so the orbit is computed there and cast back: exact for actions
                # that move values (rotations by 90°, flips, shifts, permutations).
                orbit = self.action.orbit(xb.float())
                orbit = orbit.to(xb.dtype) if isinstance(orbit, torch.Tensor) else orbit
            else:
                orbit = self.action.orbit(xb)
            if not isinstance(orbit, torch.Tensor) or orbit.shape[:2] != (self._order, xb.shape[0]):
                raise ValueError(
                    f"action.orbit must return a tensor of shape (order={self._order}, "
                    f"{xb.shape[0]}, ...), got {getattr(orbit, 'shape', type(orbit))}"
                )
            batches.append(orbit.reshape(-1, *orbit.shape[2:]))
        if sum(b.numel() * b.element_size() for b in batches) <= _ORBIT_CACHE_BYTES:
            self._orbit_batches = batches
        return batches

    def _forward(
        self, keep: bool = True
    ) -> tuple[dict[str, torch.Tensor], dict[str, Any], dict[str, Any], Any]:
        """Run the probe orbit through the model.

        Returns host latents ``{layer: (order, n, units)}``, non-finite counts of the stored
        values (filled in by the writer thread when empty), storage-cast overflow
        ``{layer: (count, largest magnitude)}`` and the CUDA event of the copy (or None).
        """
        module = self._module
        dev = self.device
        n = self._x.shape[0]
        order = self._order
        target = _DTYPES[self.dtype]
        buffers: dict[str, torch.Tensor] = {}
        checks: dict[str, OverflowCheck] = {}
        seen: dict[str, int] = {}
        state: dict[str, Any] = {}

        def sink(name: str, output: Any) -> None:
            if seen.get(name, 0):
                raise ValueError(
                    f"layer {name!r} ran more than once in one forward pass (a module reused "
                    "inside the model); record a module that runs once"
                )
            seen[name] = 1
            out, path = select_output(output, self._selectors[name], what=f"layer {name!r}")
            if self._output_paths.setdefault(name, path) != path:
                raise ValueError(
                    f"the output of layer {name!r} changed structure: the tensor recorded was "
                    f"at path {self._output_paths[name]!r}, now at {path!r}; pass select="
                )
            b = state["b"]
            if out.ndim < 1 or out.shape[0] != order * b:
                raise ValueError(
                    f"layer {name!r} output has shape {tuple(out.shape)}, expected batch size "
                    f"{order * b} (order {order} x {b} samples) first: record modules whose "
                    "first axis is the batch, or pick another output with select="
                )
            feat = tuple(out.shape[1:])
            if self._feature_shapes.setdefault(name, feat) != feat:
                raise ValueError(
                    f"layer {name!r} changed its output shape from {self._feature_shapes[name]} "
                    f"to {feat}"
                )
            if out.is_floating_point() and out.element_size() == 1:
                out = out.float()  # float8: exact in float32, where reductions are implemented
            red = self._reducers[name](out)
            if not isinstance(red, torch.Tensor) or red.ndim != 2 or red.shape[0] != out.shape[0]:
                raise ValueError(
                    f"reducer {self._reducers[name]!r} of layer {name!r} must return a tensor of "
                    f"shape (batch={out.shape[0]}, n_units), got {getattr(red, 'shape', red)!r}"
                )
            if name not in buffers:
                shape = (order, n, red.shape[1])
                if dev.type == "cpu":
                    buffers[name] = self._host_buffer(name, shape, target, pinned=False)
                else:
                    buffers[name] = torch.empty(shape, dtype=target, device=dev)
            check = checks.setdefault(name, OverflowCheck(target))
            if check.needed(red.dtype):
                check.update(red)  # before the cast, on the device
            s0 = state["s0"]
            buffers[name][:, s0 : s0 + b] = red.reshape(order, b, -1).to(target)

        hooks = {
            mod: (lambda output, name=name: sink(name, output))
            for name, mod in self._hooked.items()
        }
        with protected_call(module, hooks=hooks, devices=[dev]):
            s0 = 0
            for batch in self._orbits():
                b = batch.shape[0] // order
                state["s0"], state["b"] = s0, b
                seen.clear()
                module(batch)
                missing = [name for name in self.layers if name not in seen]
                if missing:
                    raise ValueError(
                        f"layers {missing!r} did not run in the forward pass of "
                        f"{type(module).__name__}"
                    )
                s0 += b
        if not keep:
            return {}, {}, {}, None
        counts: dict[str, Any] = {}
        overflow: dict[str, Any] = {}
        cuda = dev.type == "cuda"
        for name, check in checks.items():
            if check.count is not None and check.peak is not None:
                overflow[name] = (
                    check.count.to("cpu", non_blocking=cuda),
                    check.peak.to("cpu", non_blocking=cuda),
                )
        event = None
        if cuda:
            host = {}
            for name, buf in buffers.items():
                counts[name] = (~torch.isfinite(buf)).sum().to("cpu", non_blocking=True)
                host[name] = self._host_buffer(name, tuple(buf.shape), buf.dtype, pinned=True)
                host[name].copy_(buf, non_blocking=True)
            event = torch.cuda.Event()
            event.record(torch.cuda.current_stream(dev))
            return host, counts, overflow, event
        return (
            {k: v if v.device.type == "cpu" else v.cpu() for k, v in buffers.items()},
            counts,
            overflow,
            None,
        )

    def _host_buffer(
        self, name: str, shape: tuple[int, ...], dtype: torch.dtype, *, pinned: bool
    ) -> torch.Tensor:
        with self._lock:
            free = self._free_host.get(name, [])
            while free:
                buf = free.pop()
                if tuple(buf.shape) == shape and buf.dtype == dtype:
                    return buf
        return torch.empty(shape, dtype=dtype, pin_memory=pinned)

    # -- the writer thread ---------------------------------------------------------------------
    def _write_loop(self) -> None:
        while True:
            item = self._queue.get()
            try:
                if item is None:
                    return
                if self._error is not None:
                    continue  # drain without writing after a failure
                step, epoch, wall, scalars, latents, counts, overflow, event = item
                if event is not None:
                    event.synchronize()
                arrays = {k: v.numpy() for k, v in latents.items()}
                stored_bad = {k: int(v) for k, v in counts.items()}
                for name, arr in arrays.items():
                    if name not in stored_bad:
                        stored_bad[name] = count_nonfinite(arr)
                # Values the storage cast sent to inf are not the model's own non-finite values.
                over = {k: int(overflow[k][0]) if k in overflow else 0 for k in arrays}
                nonfinite = {k: stored_bad[k] - over[k] for k in arrays}
                self._writer.append(
                    step,
                    arrays,
                    epoch=epoch,
                    wall_time=wall,
                    metrics=scalars,
                    nonfinite=nonfinite,
                    overflow=over,
                )
                if self.live is not None:
                    self._observe_live(step, arrays)  # before the buffers are handed back
                # append() returns once the store holds the data: the buffers are free.
                with self._lock:
                    for name, buf in latents.items():
                        free = self._free_host.setdefault(name, [])
                        if len(free) < 2:
                            free.append(buf)
                messages = []
                bad = {k: v for k, v in nonfinite.items() if v}
                if bad:
                    messages.append(
                        (
                            f"non-finite latents at step {step}: "
                            + ", ".join(f"{k!r}: {v} values" for k, v in bad.items())
                            + " (the model's own NaN/inf, stored as they are)",
                            NonFiniteLatentsWarning,
                        )
                    )
                for name, n_over in over.items():
                    if n_over:
                        messages.append(
                            (
                                overflow_message(self.dtype, step, name, n_over, overflow[name][1]),
                                StorageOverflowWarning,
                            )
                        )
                if messages:
                    with self._lock:
                        self._warnings.extend(messages)
            except BaseException as err:  # surfaced on the next record()/flush()/close()
                self._error = err
            finally:
                self._queue.task_done()

    def _observe_live(self, step: int, arrays: Mapping[str, np.ndarray]) -> None:
        # A failing live probe must not stop the recording: warn once, keep writing.
        live = self.live
        if live is None:
            return
        try:
            live.observe(step, arrays)
        except Exception as err:
            log.debug("live probes failed at step %d", step, exc_info=True)
            if not self._live_failed:
                self._live_failed = True
                with self._lock:
                    self._warnings.append(
                        (
                            f"live probes failed at step {step} ({err!r}); recording goes on, "
                            "later failures are logged at debug level",
                            RuntimeWarning,
                        )
                    )

    def _raise_pending(self) -> None:
        with self._lock:
            messages, self._warnings = self._warnings, []
        for msg, category in messages:
            warnings.warn(msg, category, stacklevel=3)
        if self._error is not None:
            err = self._error
            raise WriterError(f"writing to run store {str(self.store)!r} failed: {err!r}") from err

    def flush(self) -> None:
        """Wait until every recorded step is committed (raises a writer error if any)."""
        if self._thread is not None and self._thread.is_alive():
            self._queue.join()
        self._raise_pending()

    def close(self) -> None:
        """Drain the queue, commit, consolidate the store's metadata and release it.

        Idempotent.  Raises :class:`WriterError` if the writer failed.
        """
        if self._closed:
            return
        self._closed = True
        try:
            if self._thread is not None:
                self._queue.put(None)
                self._thread.join()
            self._raise_pending()
        finally:
            if self.live is not None:
                self.live.close()
            if self._writer is not None:
                self._writer.close(consolidate_metadata=self._error is None)

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
