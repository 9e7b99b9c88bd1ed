"""The run-store schema: names, dims, store resolution, stale-file cleaning, the writer lock.

A run store is a zarr v3 group.  Everything a reader needs to interpret it lives in the root
attribute ``"latentgeo"`` (see ``docs/interfaces.md``); the arrays carry ``dimension_names`` so
that plain ``xarray.open_zarr`` understands them without latentgeo installed.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from latentgeo._errors import LatentgeoError

__all__ = [
    "ELEMENT_VALUES",
    "PER_STEP_FIXED",
    "RESERVED_NAMES",
    "ROOT_KEY",
    "SCHEMA_VERSION",
    "CorruptStoreError",
    "StoreBusyError",
    "StoreLockedError",
    "WriterLock",
    "clean_partials",
    "dimension_names",
    "is_url",
    "local_path",
    "nonfinite_name",
    "open_zarr_store",
    "overflow_name",
    "root_meta",
    "unit_dim",
    "validate_metric_name",
    "validate_node_name",
]

#: Bumped whenever the layout changes in a way old readers cannot follow.
SCHEMA_VERSION = 1
#: Root attribute holding latentgeo's metadata (and ``committed_steps``).
ROOT_KEY = "latentgeo"
#: Per-step arrays every store has, besides the caller's metrics.
PER_STEP_FIXED = ("step", "epoch", "wall_time")
#: Names that neither a layer nor a metric may take.
#: The group elements along the ``element`` axis (indices, or values of a continuous group).
ELEMENT_VALUES = "element_values"
RESERVED_NAMES = frozenset(
    {*PER_STEP_FIXED, "inputs", "labels", ELEMENT_VALUES, "analysis", "element", "sample"}
)
_NONFINITE_PREFIX = "nonfinite_"
_OVERFLOW_PREFIX = "overflow_"
#: zarr's LocalStore writes ``<name>.<uuid4 hex>.partial`` and renames it into place.
_PARTIAL_SUFFIX = ".partial"


class StoreBusyError(LatentgeoError, RuntimeError):
    """The store is busy: another writer holds it (its ``flock`` on local folders, its lease at
    fsspec URLs, see ``latentgeo.store._lease``), a writer lost its lease, the analysis cache
    stayed locked past the timeout, or an analysis was asked of a store still being recorded.

    The one busy-store error of latentgeo; ``StoreLockedError`` (the store's) and
    ``latentgeo.pipeline.StoreBusyError`` are the same class.
    """


#: The former name of :class:`StoreBusyError` (kept: it is public in ``latentgeo.store``).
StoreLockedError = StoreBusyError


class CorruptStoreError(LatentgeoError, ValueError):
    """The path holds something that is not a readable latentgeo run store (no root
    attribute, a node of the wrong kind, arrays of inconsistent lengths).

    The one corrupt-store error of latentgeo (``latentgeo.pipeline.CorruptStoreError`` is the
    same class); a ``ValueError``, as these errors were before it existed.
    """


def unit_dim(layer: str) -> str:
    """Name of the unit dimension of ``layer``'s latents (sizes differ between layers)."""
    return f"{layer}/unit"


def nonfinite_name(layer: str) -> str:
    """Name of the per-step array that counts non-finite latents of ``layer``."""
    return f"{_NONFINITE_PREFIX}{layer}"


def overflow_name(layer: str) -> str:
    """Name of the per-step array counting latents of ``layer`` the storage cast made inf."""
    return f"{_OVERFLOW_PREFIX}{layer}"


def validate_node_name(name: Any, what: str = "layer") -> str:
    """Check that ``name`` can name a zarr array at the root of a run store.

    Parameters
    ----------
    name : str
        Candidate array name.
    what : str
        What the name is for, used in error messages.

    Returns
    -------
    str
        ``name`` unchanged.
    """
    if not isinstance(name, str):
        raise TypeError(f"{what} name must be a str, got {name!r} ({type(name).__name__})")
    if not name or name in {".", ".."} or "/" in name or name.startswith("__"):
        raise ValueError(
            f"{what} name {name!r} cannot name a zarr array: expected a non-empty string "
            "without '/', not '.' or '..', not starting with '__'"
        )
    if name in RESERVED_NAMES or name.startswith((_NONFINITE_PREFIX, _OVERFLOW_PREFIX)):
        raise ValueError(
            f"{what} name {name!r} is reserved by the run store "
            f"(reserved: {sorted(RESERVED_NAMES)} and names starting with {_NONFINITE_PREFIX!r} "
            f"or {_OVERFLOW_PREFIX!r})"
        )
    return name


def validate_metric_name(name: Any, layers: Any = ()) -> str:
    """Check a metric name: a valid node name that is not also a layer's name."""
    validate_node_name(name, "metric")
    if name in layers:
        raise ValueError(f"metric name {name!r} collides with the recorded layer {name!r}")
    return name


def root_meta(attrs: Mapping[str, Any], store: Any) -> dict[str, Any]:
    """latentgeo's root metadata (the ``"latentgeo"`` attribute) of the store ``store``.

    Raises
    ------
    ValueError
        When the attribute is missing (a zarr store that is not a run store) or not a mapping.
    """
    if ROOT_KEY not in attrs:
        raise CorruptStoreError(
            f"{str(store)!r} is a zarr store but not a latentgeo run store "
            f"(no {ROOT_KEY!r} root attribute)"
        )
    meta = attrs[ROOT_KEY]
    if not isinstance(meta, Mapping):
        raise CorruptStoreError(
            f"run store {str(store)!r} is corrupted: its {ROOT_KEY!r} root attribute is "
            f"{type(meta).__name__}, not a mapping"
        )
    return dict(meta)


def dimension_names(arr: Any) -> tuple[str, ...]:
    """The ``dimension_names`` of a zarr v3 array (empty when it has none)."""
    return tuple(getattr(arr.metadata, "dimension_names", None) or ())


def is_url(store: str) -> bool:
    """Whether ``store`` is an fsspec URL (``s3://…``, ``memory://…``) rather than a path."""
    return "://" in store and not store.startswith("file://")


def local_path(store: str | os.PathLike[str]) -> Path | None:
    """The local folder of ``store``, or None when it is a remote fsspec URL."""
    if isinstance(store, os.PathLike):
        return Path(store)
    if store.startswith("file://"):
        return Path(store[len("file://") :])
    return None if is_url(store) else Path(store)


def open_zarr_store(
    store: Any, *, read_only: bool, storage_options: Mapping[str, Any] | None = None
) -> Any:
    """Turn a path or fsspec URL into a zarr store object.

    Local folders use :class:`zarr.storage.LocalStore`, which (zarr >= 3.0.7) writes every key
    to ``<key>.<uuid>.partial`` and renames it into place: a write is atomic on POSIX, which the
    commit protocol relies on.  URLs go through :class:`zarr.storage.FsspecStore` (with
    ``storage_options``, e.g. ``{"endpoint_url": ...}`` for s3fs), whose object stores replace
    whole objects atomically.
    """
    import zarr.storage

    if isinstance(store, (str, os.PathLike)):
        path = local_path(store)
        if path is not None:
            return zarr.storage.LocalStore(path, read_only=read_only)
        return zarr.storage.FsspecStore.from_url(
            str(store), storage_options=dict(storage_options or {}), read_only=read_only
        )
    raise TypeError(
        f"store must be a local path or an fsspec URL string, got {store!r} "
        f"({type(store).__name__})"
    )


def clean_partials(root: Path) -> list[Path]:
    """Remove temporary ``*.partial`` files a killed writer left inside the store ``root``.

    Only call this while holding the :class:`WriterLock`: a live writer's temporary file must
    not be removed under it.

    Returns
    -------
    list of Path
        The files removed.
    """
    removed = []
    for dirpath, _dirnames, filenames in os.walk(root):
        for fname in filenames:
            if fname.endswith(_PARTIAL_SUFFIX):
                p = Path(dirpath) / fname
                with contextlib.suppress(FileNotFoundError):
                    p.unlink()
                    removed.append(p)
    return removed


class WriterLock:
    """An exclusive advisory lock on a local store folder (``flock`` on the folder itself).

    Locking the folder, not a file inside it, keeps the zarr hierarchy free of foreign files
    (zarr warns about them when listing a group).  The kernel drops the lock when the process
    dies, so a SIGKILLed writer never leaves a stale lock.  On platforms without ``fcntl`` the
    lock is a no-op.

    Parameters
    ----------
    path : Path
        The store folder; it must exist.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        """Whether this object holds the lock."""
        return self._fd is not None

    def acquire(self, timeout: float = 0.0) -> bool:
        """Try to take the lock, retrying for up to ``timeout`` seconds; return success."""
        try:
            import fcntl
        except ImportError:  # pragma: no cover - Windows: no advisory locks
            self._fd = -1
            return True
        fd = os.open(self.path, os.O_RDONLY)
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    os.close(fd)
                    return False
                time.sleep(0.02)
            else:
                self._fd = fd
                return True

    def release(self) -> None:
        """Release the lock (idempotent)."""
        fd, self._fd = self._fd, None
        if fd is not None and fd >= 0:
            os.close(fd)  # closing the descriptor releases the flock

    @contextlib.contextmanager
    def try_hold(self) -> Iterator[bool]:
        """Hold the lock for the block if it is free; yield whether it was taken."""
        got = self.acquire()
        try:
            yield got
        finally:
            if got:
                self.release()
