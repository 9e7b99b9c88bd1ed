"""The background writer: one thread appends queued checkpoints to the run store.

The training thread only enqueues (:meth:`AsyncWriter.put`); the thread appends, counts the
model's own non-finite values apart from the storage cast's overflow, lets an observer see
the host latents, and hands the buffers back.  A failure is kept and raised as
:class:`WriterError` on the training thread's next call; warnings are deferred the same way.
"""

from __future__ import annotations

import queue
import threading
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from latentgeo._errors import LatentgeoError
from latentgeo.record._dtypes import overflow_message
from latentgeo.store._writer import count_nonfinite

__all__ = [
    "AsyncWriter",
    "NonFiniteLatentsWarning",
    "QueueItem",
    "StorageOverflowWarning",
    "WriterError",
]


class NonFiniteLatentsWarning(RuntimeWarning):
    """Some recorded latents are NaN or infinite (they are stored as they are)."""


class StorageOverflowWarning(NonFiniteLatentsWarning):
    """Finite latents beyond the storage dtype's range became infinite in the storage cast."""


class WriterError(LatentgeoError, RuntimeError):
    """The background writer failed; the original exception is the ``__cause__``."""


@dataclass(frozen=True)
class QueueItem:
    """One recorded checkpoint on its way to the store.

    Attributes
    ----------
    step, epoch : int, int or None
    wall_time : float
        ``time.time()`` when it was recorded.
    metrics : dict of str to float
    latents : dict of str to torch.Tensor
        Host buffers ``(order, n, units)`` in the storage dtype.
    counts : dict
        Non-finite counts computed on the device (CUDA), else empty.
    overflow : dict
        ``{layer: (count, largest magnitude)}`` of the storage cast's overflow.
    event : torch.cuda.Event or None
        The device-to-host copy to wait for.
    """

    step: int
    epoch: int | None
    wall_time: float
    metrics: dict[str, float]
    latents: dict[str, torch.Tensor]
    counts: dict[str, Any]
    overflow: dict[str, Any]
    event: Any = None


class AsyncWriter:
    """The writer thread of one recorder (rank 0).

    Parameters
    ----------
    writer : RunWriter
        The open store (its ``append`` is called from the thread).
    store : str or path
        For messages.
    dtype : str
        The storage dtype's name, for overflow messages.
    max_queue : int
        Checkpoints that may wait (each holds one host copy of the latents).
    observe : callable, optional
        ``observe(step, arrays)`` after each append, before the buffers are handed back.
    release : callable
        ``release(latents)``: the host buffers are free again.
    """

    def __init__(
        self,
        writer: Any,
        store: Any,
        dtype: str,
        max_queue: int,
        release: Callable[[Mapping[str, torch.Tensor]], None],
        observe: Callable[[int, Mapping[str, np.ndarray]], None] | None = None,
    ) -> None:
        self.writer = writer
        self.store = store
        self.dtype = dtype
        self._release = release
        self._observe = observe
        self._queue: queue.Queue[QueueItem | None] = queue.Queue(maxsize=max(1, int(max_queue)))
        self.error: BaseException | None = None
        self._warnings: list[tuple[str, type[Warning]]] = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._loop, name="latentgeo-writer", daemon=True)
        self._thread.start()

    def put(self, item: QueueItem) -> None:
        """Enqueue ``item``, surfacing a failure of the thread while the queue is full."""
        while True:
            try:
                self._queue.put(item, timeout=0.5)
                return
            except queue.Full:
                self.raise_pending()

    def defer_warning(self, message: str, category: type[Warning]) -> None:
        """Warn on the training thread's next call (warnings from a thread go unseen)."""
        with self._lock:
            self._warnings.append((message, category))

    def raise_pending(self, stacklevel: int = 4) -> None:
        """Issue deferred warnings; raise :class:`WriterError` if the thread failed."""
        with self._lock:
            messages, self._warnings = self._warnings, []
        for msg, category in messages:
            warnings.warn(msg, category, stacklevel=stacklevel)
        if self.error is not None:
            err = self.error
            raise WriterError(f"writing to run store {str(self.store)!r} failed: {err!r}") from err

    def join(self) -> None:
        """Wait until every queued checkpoint is written."""
        if self._thread.is_alive():
            self._queue.join()

    def stop(self) -> None:
        """Write what is queued and end the thread."""
        self._queue.put(None)
        self._thread.join()

    def _loop(self) -> None:
        while True:
            item = self._queue.get()
            try:
                if item is None:
                    return
                if self.error is not None:
                    continue  # drain without writing after a failure
                self._write(item)
            except BaseException as err:  # surfaced on the next record()/flush()/close()
                self.error = err
            finally:
                self._queue.task_done()

    def _write(self, item: QueueItem) -> None:
        if item.event is not None:
            item.event.synchronize()
        arrays = {k: v.numpy() for k, v in item.latents.items()}
        stored_bad = {k: int(v) for k, v in item.counts.items()}
        for name, arr in arrays.items():
            if name not in stored_bad:
                stored_bad[name] = count_nonfinite(arr)
        # Values the storage cast sent to inf are not the model's own non-finite values.
        overflow = item.overflow
        over = {k: int(overflow[k][0]) if k in overflow else 0 for k in arrays}
        nonfinite = {k: stored_bad[k] - over[k] for k in arrays}
        self.writer.append(
            item.step,
            arrays,
            epoch=item.epoch,
            wall_time=item.wall_time,
            metrics=item.metrics,
            nonfinite=nonfinite,
            overflow=over,
        )
        if self._observe is not None:
            self._observe(item.step, arrays)  # before the buffers are handed back
        # append() returns once the store holds the data: the buffers are free.
        self._release(item.latents)
        bad = {k: v for k, v in nonfinite.items() if v}
        if bad:
            self.defer_warning(
                f"non-finite latents at step {item.step}: "
                + ", ".join(f"{k!r}: {v} values" for k, v in bad.items())
                + " (the model's own NaN/inf, stored as they are)",
                NonFiniteLatentsWarning,
            )
        for name, n_over in over.items():
            if n_over:
                self.defer_warning(
                    overflow_message(self.dtype, item.step, name, n_over, overflow[name][1]),
                    StorageOverflowWarning,
                )
