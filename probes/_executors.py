"""Where the (layer, step) tasks of :func:`probes.run` execute: in process, or on a client.

A task reads one block through :meth:`latentgeo.store.Run.read_block`, converts it to a
private tensor and runs :func:`probes._kinds.probe_block`.  In process the tasks run one
at a time (peak memory: one block); on a client (``dask.distributed`` or any
``concurrent.futures.Executor``, threads or processes) every task carries what its worker
needs and nothing is looked up there: the run's open-spec (:class:`latentgeo.store.RunSpec`:
path or URL *and* the caller's ``storage_options``), the group the caller resolved (its
override, or the stored one: a worker never re-parses the stored spec, so a user's group
needs no registration there) and the settings.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import importlib
import pickle
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from probes import _kinds
from probes._span import data_eps

if TYPE_CHECKING:
    from latentgeo.groups import Group
    from latentgeo.store import Run
    from probes._settings import RunSettings

__all__ = ["GroupPayload", "Task", "executor", "run_tasks"]

#: One task: (layer position, step position, layer name, index along ``run.steps``).
Task = tuple[int, int, str, int]


def _trim_memory() -> None:
    """Give freed heap pages back to the OS between tasks (glibc only; no-op elsewhere).

    Blocks of a few MB freed by one task land in glibc's heap and fragment it, so without this
    the resident size creeps up task after task; dask.distributed trims its workers the same way.
    """
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def probe_stored(
    run: Run, layer: str, index: int, group: Group, settings: RunSettings, device: Any
) -> dict[str, Any]:
    """Read one (layer, step) of ``run`` and probe it (the block is freed before returning)."""
    dtype = getattr(torch, settings.dtype)
    block = run.read_block(layer, index)
    Zt = _kinds.private_tensor(block, dtype, device)
    eps = data_eps(block, dtype)  # the stored precision sets the span's tolerance
    del block  # the computation-dtype copy is all the probes need from here on
    out = _kinds.probe_block(Zt, group, settings, device, eps)
    del Zt
    _trim_memory()
    return out


@dataclass(frozen=True)
class GroupPayload:
    """A group as a task carries it: its pickle and the module that defines its class.

    Groups pickle as their spec, which a worker rebuilds through the group registry; a
    user's group is registered when its module is imported, so the worker imports that
    module first (it must be importable there, as for any class a task uses).
    """

    module: str
    blob: bytes

    @classmethod
    def of(cls, group: Any) -> GroupPayload:
        return cls(type(group).__module__, pickle.dumps(group))

    def load(self) -> Any:
        """The group, on the worker.

        Raises
        ------
        latentgeo.MissingExtensionError
            (a ``ValueError``) When the group's class is registered by a module this worker
            cannot import (a class defined in a script's ``__main__``); the message says which.
        """
        from latentgeo._registry import MissingExtensionError

        if self.module != "__main__":
            with contextlib.suppress(ImportError):
                importlib.import_module(self.module)
        try:
            return pickle.loads(self.blob)
        except MissingExtensionError as err:
            raise MissingExtensionError(
                f"a probes.run worker cannot rebuild the run's group: {err}; the module "
                f"{self.module!r} that registers it must be importable by the workers"
            ) from None


def _remote_task(
    spec: Any, layer: str, index: int, group: GroupPayload, settings: RunSettings, device: Any
) -> dict[str, Any]:
    """Worker side: open the store from its open-spec, probe one (layer, step)."""
    return probe_stored(spec.open(), layer, index, group.load(), settings, device)


def executor(client: Any) -> tuple[Any, Any]:
    """The object to submit tasks to and the matching ``as_completed``.

    Raises
    ------
    ImportError
        For an address string without ``dask.distributed`` installed.
    TypeError
        For anything but a ``distributed.Client``, its address or a
        ``concurrent.futures.Executor``.
    """
    if isinstance(client, str):
        try:
            import distributed
        except ImportError:
            raise ImportError(
                "client given as an address needs dask.distributed, which is not installed; "
                "install it with `pip install 'latentgeo[distributed]'`"
            ) from None
        client = distributed.Client(client)
        return client, distributed.as_completed
    if type(client).__module__.split(".")[0] == "distributed":
        try:
            import distributed
        except ImportError:  # pragma: no cover - a Client object implies the package
            raise ImportError(
                "dask.distributed is not installed; install it with "
                "`pip install 'latentgeo[distributed]'`"
            ) from None
        return client, distributed.as_completed
    if isinstance(client, concurrent.futures.Executor):
        return client, concurrent.futures.as_completed
    raise TypeError(
        f"client must be a dask.distributed.Client, its address, or a "
        f"concurrent.futures.Executor, got {client!r}"
    )


def run_tasks(
    run: Any,
    tasks: Sequence[Task],
    group: Any,
    settings: RunSettings,
    device: Any = None,
    client: Any = None,
) -> Iterator[tuple[int, int, dict[str, Any]]]:
    """Yield ``(layer position, step position, results)`` for every task, as they finish.

    Raises
    ------
    TypeError
        With a client, for a run object that cannot say how to reopen it (no
        ``open_spec()``, as :class:`latentgeo.store.Run` has).
    """
    if client is None:
        for li, si, layer, index in tasks:
            yield li, si, probe_stored(run, layer, index, group, settings, device)
        return
    open_spec = getattr(run, "open_spec", None)
    if not callable(open_spec):
        raise TypeError(
            f"a client needs a latentgeo Run whose workers can reopen it (open_spec()), "
            f"got {type(run).__name__}"
        )
    spec = open_spec()
    payload = GroupPayload.of(group)
    pool, as_completed = executor(client)
    futures = {
        pool.submit(_remote_task, spec, layer, index, payload, settings, device): (li, si)
        for li, si, layer, index in tasks
    }
    for fut in as_completed(futures):
        li, si = futures[fut]
        yield li, si, fut.result()
