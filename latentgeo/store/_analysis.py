"""The analysis cache of a run store: ``analysis/<name>`` groups, written whole or not at all.

Analyses (``probes.run``'s results, ``latentgeo analyze``'s geometry) are cached inside the
store they analyse, and several processes may analyse one store at once (two terminals, a
notebook and a job).  Two rules keep the cache whole:

* **Writes are serialised** by the store's *analysis lock*, independent of the recorder's
  writer lock (an analysis may be cached while a recorder appends): on a local folder a
  ``flock`` on the ``analysis`` group's folder (dropped by the kernel when the process dies),
  at an fsspec URL a lease object ``<url>.analysis.lease`` beside the store
  (:class:`~latentgeo.store._lease.StoreLease`, with its documented limits: object stores
  have no ``flock``).  A writer waits for the lock up to a timeout, then raises
  :class:`~latentgeo.store.StoreBusyError`.
* **A write is marked complete last**: the previous result's mark is withdrawn first, the
  dataset is written, then one attribute (``latentgeo_write``, a fresh random token) is set
  on its group, one atomic object write.
  A reader reads the token, the dataset, then the token again; it returns the dataset only
  when both reads give the same token, so it never returns a mixture of two writes.  While a
  write is in progress it waits for it (old or new, never a part); a write torn by a killed
  process has no token and reads as no cache (the next analysis recomputes and replaces it).

Nothing here is part of :class:`~latentgeo.store.Run`'s read path: a ``Run`` is read-only and
calls these functions for its ``save_analysis``/``load_analysis`` methods.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from latentgeo.store._lease import StoreLease, lease_is_live
from latentgeo.store._schema import StoreBusyError, WriterLock, local_path, open_zarr_store

if TYPE_CHECKING:
    import xarray as xr

__all__ = [
    "ANALYSIS",
    "ANALYSIS_LEASE_SUFFIX",
    "LOCK_TIMEOUT",
    "WRITE_TOKEN",
    "analysis_lock",
    "analysis_names",
    "analysis_path",
    "load_analysis",
    "save_analysis",
    "writing",
]

#: The group holding every cached analysis.
ANALYSIS = "analysis"
#: The analysis lease of a store at ``<url>`` is the object ``<url>.analysis.lease``.
ANALYSIS_LEASE_SUFFIX = ".analysis.lease"
#: Group attribute set last by a complete write (a random token per write).
WRITE_TOKEN = "latentgeo_write"
#: Seconds a writer (or a reader of a cache being written) waits for the analysis lock.
LOCK_TIMEOUT = 300.0
#: Lease lifetime for stores at URLs (renewed every third of it while held).
_LEASE_TTL = 30.0


def analysis_path(name: Any) -> str:
    """The group path ``analysis/<name>`` of a cached analysis.

    Raises
    ------
    ValueError
        For a name that is not a non-empty relative name.
    """
    if not isinstance(name, str) or not name or name.startswith("/") or ".." in name:
        raise ValueError(
            f"analysis name must be a non-empty relative name like 'probes', got {name!r}"
        )
    return f"{ANALYSIS}/{name}"


def _ensure_group(writable: Any) -> None:
    """Create the ``analysis`` group if missing (its folder carries the local lock)."""
    import zarr

    try:
        zarr.open_group(writable, path=ANALYSIS, mode="r", use_consolidated=False)
    except (FileNotFoundError, KeyError, zarr.errors.GroupNotFoundError):
        with contextlib.suppress(zarr.errors.ContainsGroupError):
            zarr.create_group(writable, path=ANALYSIS)


@contextlib.contextmanager
def analysis_lock(
    path: str,
    storage_options: Mapping[str, Any] | None = None,
    timeout: float = LOCK_TIMEOUT,
    writable: Any = None,
) -> Iterator[None]:
    """Hold the analysis lock of the store at ``path`` for the block.

    Raises
    ------
    StoreBusyError
        When another process held it for the whole ``timeout`` (seconds).
    """
    local = local_path(path)
    if local is None:
        lease = StoreLease(path, storage_options, ttl=_LEASE_TTL, suffix=ANALYSIS_LEASE_SUFFIX)
        if not lease.acquire(timeout=timeout):
            raise StoreBusyError(
                f"the analysis cache of run store {path!r} stayed locked by another analysis "
                f"for {timeout:g} s (lease {lease.key!r})"
            )
        try:
            yield
        finally:
            lease.release()
        return
    if writable is None:
        writable = open_zarr_store(path, read_only=False)
    _ensure_group(writable)
    lock = WriterLock(local / ANALYSIS)
    if not lock.acquire(timeout=timeout):
        raise StoreBusyError(
            f"the analysis cache of run store {path!r} stayed locked by another analysis "
            f"for {timeout:g} s"
        )
    try:
        yield
    finally:
        lock.release()


def writing(path: str, storage_options: Mapping[str, Any] | None = None) -> bool:
    """Whether another process holds the analysis lock of the store at ``path`` right now."""
    local = local_path(path)
    if local is None:
        return lease_is_live(path, storage_options, suffix=ANALYSIS_LEASE_SUFFIX)
    if not (local / ANALYSIS).is_dir():
        return False
    with WriterLock(local / ANALYSIS).try_hold() as free:
        return not free


def _prepared(ds: xr.Dataset) -> xr.Dataset:
    """A shallow copy of ``ds`` that zarr v3 can store."""
    import xarray as xr

    if not isinstance(ds, xr.Dataset):
        raise TypeError(f"ds must be an xarray.Dataset, got {type(ds).__name__}")
    ds = ds.copy()  # shallow: new Variable objects, so the caller's encodings stay
    ds.attrs.pop(WRITE_TOKEN, None)
    for key in list(ds.variables):
        var = ds.variables[key]
        if var.dtype.kind == "U":  # zarr v3 has no specification for fixed-width unicode
            as_object = var.astype(object)
            if key in ds.coords:
                ds = ds.assign_coords({key: as_object})
            else:
                ds = ds.assign({key: as_object})
    for var in ds.variables.values():
        # Encodings inherited from another store (chunks, compressors) do not apply here.
        var.encoding = {}
    return ds


def save_analysis(
    path: str,
    storage_options: Mapping[str, Any] | None,
    name: str,
    ds: xr.Dataset,
    timeout: float = LOCK_TIMEOUT,
) -> None:
    """Write ``ds`` as ``analysis/<name>`` of the store at ``path``, replacing it whole.

    Parameters
    ----------
    path : str
        Local folder or fsspec URL of the store.
    storage_options : mapping or None
        fsspec options for a URL.
    name : str
        Result name, e.g. ``"probes"``.
    ds : xarray.Dataset
        The result.  Fixed-width string variables are stored as variable-length strings.
    timeout : float
        Seconds to wait for another analysis's write to finish.

    Raises
    ------
    TypeError
        When ``ds`` is not a Dataset.
    ValueError
        For an invalid name.
    StoreBusyError
        When the analysis lock stayed taken for ``timeout`` seconds.
    """
    import zarr

    group = analysis_path(name)
    ds = _prepared(ds)
    writable = open_zarr_store(path, read_only=False, storage_options=storage_options)
    with analysis_lock(path, storage_options, timeout, writable):
        # First: withdraw the completion mark, so a reader that read the old token before
        # this write started sees it change (the old group's files go in no fixed order).
        with contextlib.suppress(FileNotFoundError, KeyError, zarr.errors.GroupNotFoundError):
            old = zarr.open_group(writable, path=group, mode="r+", use_consolidated=False)
            if WRITE_TOKEN in old.attrs:
                old.attrs[WRITE_TOKEN] = None
        ds.to_zarr(writable, group=group, mode="w", consolidated=False, zarr_format=3)
        # Last: the mark that the write is whole (one object, replaced atomically).
        node = zarr.open_group(writable, path=group, mode="r+", use_consolidated=False)
        node.attrs[WRITE_TOKEN] = uuid.uuid4().hex
        _reconsolidate(path, storage_options, writable)


def _reconsolidate(path: str, storage_options: Mapping[str, Any] | None, writable: Any) -> None:
    # A closed store carries consolidated metadata; bring it up to date so plain readers
    # see the new group.  While a recorder holds the store it has none: leave root alone.
    import zarr

    from latentgeo.store._writer import consolidate

    if zarr.open_group(writable, mode="r").metadata.consolidated_metadata is None:
        return
    local = local_path(path)
    if local is None:
        if not lease_is_live(path, storage_options):
            consolidate(writable)
        return
    with WriterLock(local).try_hold() as free:
        if free:
            consolidate(writable)


def _forget_listings(zstore: Any) -> None:
    """Drop an fsspec store's cached directory listings (s3fs keeps them per instance), so
    the group's members are listed as they are now, not as a past write left them."""
    fs = getattr(zstore, "fs", None)
    invalidate = getattr(fs, "invalidate_cache", None)
    if callable(invalidate):
        invalidate()


def _token(zstore: Any, group: str) -> str | None:
    """The completion token of ``group``; None when absent or not (yet) whole."""
    import zarr

    try:
        node = zarr.open_group(zstore, path=group, mode="r", use_consolidated=False)
    except (FileNotFoundError, KeyError, zarr.errors.GroupNotFoundError):
        return None
    token = node.attrs.get(WRITE_TOKEN)
    return token if isinstance(token, str) else None


def load_analysis(
    zstore: Any,
    path: str,
    storage_options: Mapping[str, Any] | None,
    name: str,
    timeout: float = LOCK_TIMEOUT,
) -> xr.Dataset | None:
    """The cached ``analysis/<name>``, whole, or None when there is none.

    Reads the completion token before and after the data and retries when they differ (a
    write landed in between); while another process writes the group it waits (up to
    ``timeout`` seconds) and returns what that write left.  A group without a token (torn
    by a killed writer, or written before tokens existed) reads as None.

    Raises
    ------
    StoreBusyError
        When a write kept the cache changing for ``timeout`` seconds.
    """
    import xarray as xr

    group = analysis_path(name)
    deadline = time.monotonic() + timeout
    while True:
        _forget_listings(zstore)
        before = _token(zstore, group)
        if before is not None:
            try:
                ds = xr.open_zarr(zstore, group=group, consolidated=False).load()
            except (FileNotFoundError, KeyError, ValueError):
                ds = None  # removed under the read by a new write: read again
            if ds is not None and _token(zstore, group) == before:
                ds.attrs.pop(WRITE_TOKEN, None)
                return ds
        elif not writing(path, storage_options) and _token(zstore, group) is None:
            return None  # no cache, or a torn one no live process is finishing
        if time.monotonic() >= deadline:
            raise StoreBusyError(
                f"the analysis {name!r} of run store {path!r} kept changing under the read "
                f"for {timeout:g} s (another analysis is writing it)"
            )
        time.sleep(0.05)


def analysis_names(zstore: Any) -> list[str]:
    """Names of the cached analyses (whole or not)."""
    import zarr

    _forget_listings(zstore)
    try:
        g = zarr.open_group(zstore, path=ANALYSIS, mode="r", use_consolidated=False)
    except (FileNotFoundError, KeyError, zarr.errors.GroupNotFoundError):
        return []
    return sorted(name for name, _ in g.groups())
