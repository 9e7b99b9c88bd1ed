"""One writer per store where there is no ``flock``: a lease object beside the store.

A local store is locked with ``flock`` (:class:`latentgeo.store._schema.WriterLock`), which
the kernel drops when the writer dies.  Object stores (S3, GCS…) have no locks, so a writer
of a store at an fsspec URL ``<url>`` holds a *lease*: a small JSON object at
``<url>.lease`` (beside the store, not in it: zarr warns about foreign objects inside a
hierarchy, and ``mode="w"`` may clear the store's prefix) with

``{"owner": "<host>:<pid>:<random>", "expires": <unix time>, "ttl": <seconds>}``.

* Taking it is an *exclusive create* (``fsspec`` ``pipe_file(mode="create")``; on S3 a PUT
  with ``If-None-Match: *``, which S3 and S3-compatible servers refuse when the object
  exists).  Of two writers racing for a free store, one gets it; the other waits up to its
  timeout and is refused (:class:`~latentgeo.store.StoreLockedError`).
* The holder renews it every ``ttl / 3`` seconds from a daemon thread, and checks that it
  still owns it before every checkpoint it writes and before committing one.
* A killed writer stops renewing: its lease expires after at most ``ttl`` seconds, and the
  next writer deletes the expired object and takes a fresh one.  A writer that waits
  (``lock_timeout >= ttl``) therefore resumes a killed writer's store.
* Release (``RunWriter.close``) deletes the lease if it is still the owner's.

Limits: expiry compares wall clocks, so the writers' clocks must agree to well within ``ttl``;
breaking an expired lease is a read, a delete and an exclusive create, and two writers
breaking the *same* expired lease within milliseconds could both believe they won, until the
loser's next ownership check (before its next write) refuses it.  Filesystems whose
``pipe_file(mode="create")`` is not atomic (fsspec's generic fallback checks existence first)
make taking the lease racy in the same way.  This is a guard against the usual mistake (a
second job started on the same store), not a consensus protocol.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Mapping
from typing import Any

from latentgeo._validate import check_real
from latentgeo.store._schema import StoreLockedError

__all__ = ["LEASE_SUFFIX", "StoreLease"]

#: The lease of the store at ``<url>`` is the object ``<url>.lease``.
LEASE_SUFFIX = ".lease"


class StoreLease:
    """The writer lease of a store at an fsspec URL.

    Parameters
    ----------
    url : str
        fsspec URL of the store (``s3://bucket/run.zarr``); the lease is ``url + ".lease"``.
    storage_options : mapping, optional
        Passed to ``fsspec.core.url_to_fs`` (e.g. ``{"endpoint_url": ...}`` for s3fs).
    ttl : float
        Seconds a lease lives without renewal (renewed every ``ttl / 3``).
    suffix : str
        The lease object is ``url + suffix``: :data:`LEASE_SUFFIX` for the writer's lease,
        another suffix for an independent lease on the same store (the analysis cache's,
        ``latentgeo.store._analysis``).

    Raises
    ------
    ValueError
        For a store at the root of a bucket (the lease must sit beside the store) or a
        ``ttl`` that is not a positive number.
    """

    def __init__(
        self,
        url: str,
        storage_options: Mapping[str, Any] | None = None,
        ttl: float = 60.0,
        suffix: str = LEASE_SUFFIX,
    ) -> None:
        from fsspec.core import url_to_fs

        check_real(ttl, "lease ttl (seconds)", minimum=0, open_minimum=True)
        fs, path = url_to_fs(url, **dict(storage_options or {}))
        path = str(path).rstrip("/")
        if "/" not in path:
            raise ValueError(
                f"a run store on object storage must be a prefix inside a bucket (its lease "
                f"sits beside it), got {url!r}"
            )
        self.fs = fs
        self.url = url
        self.key = path + suffix
        self.ttl = float(ttl)
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"
        self._held = False
        self._lost: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._io = threading.Lock()

    # -- the object -------------------------------------------------------------------------
    def read(self) -> dict[str, Any] | None:
        """The current lease (``owner``, ``expires``, ``ttl``), or None when there is none."""
        try:
            raw = self.fs.cat_file(self.key)
        except FileNotFoundError:
            return None
        try:
            lease = json.loads(raw)
        except ValueError:  # a torn or foreign object: treat as expired
            return {"owner": None, "expires": 0.0}
        return lease if isinstance(lease, dict) else {"owner": None, "expires": 0.0}

    def _payload(self) -> bytes:
        return json.dumps(
            {"owner": self.owner, "expires": time.time() + self.ttl, "ttl": self.ttl}
        ).encode()

    @staticmethod
    def live(lease: Mapping[str, Any] | None) -> bool:
        """Whether ``lease`` (as :meth:`read` returns it) is held and not expired."""
        return lease is not None and float(lease.get("expires", 0.0)) > time.time()

    # -- taking and giving back -------------------------------------------------------------
    @property
    def held(self) -> bool:
        """Whether this object holds the lease (and has not found it lost)."""
        return self._held and self._lost is None

    def acquire(self, timeout: float = 0.0) -> bool:
        """Take the lease, waiting up to ``timeout`` seconds for a live one to go.

        Returns
        -------
        bool
            True when taken (a renewing thread then keeps it), False when another writer
            held a live lease for the whole timeout.
        """
        deadline = time.monotonic() + max(0.0, float(timeout))
        while True:
            try:
                self.fs.pipe_file(self.key, self._payload(), mode="create")
            except FileExistsError:
                current = self.read()
                if current is not None and not self.live(current):
                    # A dead writer's lease: break it (only if it is still that one).
                    if self.read() == current:
                        with contextlib.suppress(FileNotFoundError):
                            self.fs.rm_file(self.key)
                    continue
                if time.monotonic() >= deadline:
                    return False
                time.sleep(min(0.1, self.ttl / 10))
                continue
            self._held, self._lost = True, None
            self._stop.clear()
            self._thread = threading.Thread(
                target=self._renew_loop, name="latentgeo-lease", daemon=True
            )
            self._thread.start()
            return True

    def _renew_loop(self) -> None:
        while not self._stop.wait(self.ttl / 3):
            try:
                self.renew()
            except StoreLockedError:
                return
            except OSError as err:  # a network hiccup: try again at the next beat
                self._lost = None if self.live(self._safe_read()) else f"renewal failed: {err}"

    def _safe_read(self) -> dict[str, Any] | None:
        try:
            return self.read()
        except OSError:
            return None

    def renew(self) -> None:
        """Extend the lease by ``ttl`` after checking it is still ours.

        Raises
        ------
        StoreLockedError
            When the lease is no longer this writer's (expired and taken by another).
        """
        with self._io:
            self.check()
            self.fs.pipe_file(self.key, self._payload())

    def check(self) -> None:
        """Raise :class:`StoreLockedError` unless this writer still holds the lease."""
        if not self._held:
            raise StoreLockedError(f"the writer does not hold the lease of {self.url!r}")
        if self._lost is None:
            current = self.read()
            if current is None or current.get("owner") != self.owner:
                holder = None if current is None else current.get("owner")
                self._lost = f"now held by {holder!r}" if holder else "it was removed"
        if self._lost is not None:
            raise StoreLockedError(
                f"this writer lost its lease on run store {self.url!r} ({self._lost}); "
                "another writer may be writing it, so nothing more is written"
            )

    def release(self) -> None:
        """Stop renewing and delete the lease if it is still ours (idempotent)."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5.0)
        if not self._held:
            return
        self._held = False
        with self._io, contextlib.suppress(OSError):
            current = self.read()
            if current is not None and current.get("owner") == self.owner:
                self.fs.rm_file(self.key)


def lease_is_live(
    url: str, storage_options: Mapping[str, Any] | None = None, suffix: str = LEASE_SUFFIX
) -> bool:
    """Whether a writer holds a live lease (``url + suffix``) on the store at ``url``."""
    try:
        lease = StoreLease(url, storage_options, suffix=suffix)
    except ValueError:
        return False
    return StoreLease.live(lease.read())
