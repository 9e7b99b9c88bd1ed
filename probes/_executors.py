"""Where the (layer, step) tasks of :func:`probes.run` execute: in process, or on a client.

A task reads one block through :meth:`latentgeo.store.Run.read_block`, converts it to a
private tensor and runs :func:`probes._kinds.probe_block`.  In process the tasks run one
at a time (peak memory: one block); on a client (``dask.distributed`` or any
``concurrent.futures.Executor``) each worker opens the store by path.
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import torch

from probes import _kinds
from probes._span import data_eps

if TYPE_CHECKING:
    from latentgeo.groups import Group
    from latentgeo.store import Run
    from probes._settings import RunSettings

__all__ = ["Task", "executor", "run_tasks"]

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


def _remote_task(
    path: str, layer: str, index: int, group: Any, settings: RunSettings, device: Any
) -> dict[str, Any]:
    """Worker side: open the store by path, probe one (layer, step)."""
    from latentgeo.store import open_run

    return probe_stored(open_run(path), layer, index, group, settings, device)


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
    ValueError
        With a client, for a run not opened from a path the workers can open.
    """
    if client is None:
        for li, si, layer, index in tasks:
            yield li, si, probe_stored(run, layer, index, group, settings, device)
        return
    path = getattr(run, "path", None)
    if path is None:
        raise ValueError("a client needs a run opened from a path the workers can open")
    pool, as_completed = executor(client)
    futures = {
        pool.submit(_remote_task, str(path), layer, index, group, settings, device): (li, si)
        for li, si, layer, index in tasks
    }
    for fut in as_completed(futures):
        li, si = futures[fut]
        yield li, si, fut.result()
