"""Create, resume and append to a run store with a crash-safe commit protocol.

Commit protocol
---------------
zarr appends are not atomic: growing an array writes its new shape before any data, and every
array grows separately.  A checkpoint (one training step) is therefore written in three phases:

1. grow every per-step array (latents of every layer, ``step``, ``epoch``, ``wall_time``,
   metrics, non-finite counts) by one entry along ``step``;
2. write every one of those entries (each latent chunk holds exactly one step, so no earlier
   chunk is ever rewritten);
3. only then bump ``committed_steps`` in the root attribute ``"latentgeo"``.

Phases 1 and 2 run as one concurrent batch (see ``RunWriter._grow_and_write`` for why the
order within it does not matter); phase 3 starts only when all of it has landed.

Readers (:func:`latentgeo.open_run`) read ``committed_steps`` first and look only at that
prefix.  A writer resuming a store (mode ``"a"``) shrinks every per-step array back to
``committed_steps``, which deletes the chunks of a half-written checkpoint, so a step is never
written twice and no reader ever sees a torn one; chunks a killed writer left past an
array's shape are deleted too.

Where the committed state lives
-------------------------------
``committed_steps`` lives in one place only: the root ``zarr.json`` attributes, the place a
plain zarr/xarray user looks.  A second copy in a side file could disagree with it after a
crash, and would be a foreign file in the zarr hierarchy.  A torn ``zarr.json`` is impossible:
zarr's ``LocalStore`` (>= 3.0.7) writes every key to ``<key>.<uuid>.partial`` and renames it
into place, which is atomic on POSIX, and object stores reached through fsspec replace whole
objects atomically.  What a SIGKILL can leave behind is a ``*.partial`` file; the writer removes
them when it opens a store, and :func:`open_run` does too when no writer holds the store.

Only one writer may hold a store: local stores are locked with ``flock`` on the store folder
(released by the kernel if the writer dies); stores at fsspec URLs (S3…), where there is no
``flock``, by a lease object ``<url>.lease`` that the writer renews and that expires when it
dies (see ``latentgeo.store._lease``).

Chunk layout and speed
----------------------
A latent chunk holds one step, one element, a block of samples (up to 32 MiB) and all units,
so the block ``latents[e, s0:s1, :]`` of the array the recorder hands over is contiguous.
Latents are stored uncompressed by default (activations compress poorly), so a chunk's
encoding is just its bytes: the writer hands those bytes to the zarr store directly, all
chunks of a checkpoint concurrently, instead of going through zarr's indexing (which copies).
Compressed arrays take zarr's own path.  Per-step arrays (``step``, metrics…) have chunks of
one entry, so an append never rewrites an earlier chunk.
"""

from __future__ import annotations

import copy
import logging
import math
import os
import shutil
import time
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from latentgeo.store._lease import StoreLease
from latentgeo.store._resume import (
    ResumeMismatchError,
    check_identity,
    check_layer_specs,
    difference,
    jsonable,
)
from latentgeo.store._schema import (
    ELEMENT_VALUES,
    PER_STEP_FIXED,
    ROOT_KEY,
    SCHEMA_VERSION,
    CorruptStoreError,
    StoreLockedError,
    WriterLock,
    clean_partials,
    dimension_names,
    local_path,
    nonfinite_name,
    open_zarr_store,
    overflow_name,
    root_meta,
    unit_dim,
    validate_metric_name,
    validate_node_name,
)
from latentgeo.store._zarr_compat import delete_chunks_from, write_step

__all__ = [
    "LATENT_DTYPES",
    "ResumeMismatchError",
    "RunWriter",
    "consolidate",
    "count_nonfinite",
    "storable_probe_array",
]

log = logging.getLogger(__name__)

#: Storage dtypes allowed for latents (numpy has no bfloat16).
LATENT_DTYPES = ("float16", "float32", "float64")
_MODES = ("w-", "w", "a")
#: Largest size of one latent chunk.  A chunk holds one step, one element, all units and as
#: many samples as fit: ``latents[e, s0:s1, :]`` is then a contiguous block of the array the
#: recorder hands over, written to the store as it is (no copy, see
#: ``latentgeo.store._zarr_compat.raw_chunks``).
_CHUNK_BYTES = 32 * 2**20


def _version() -> str:
    try:
        from latentgeo import __version__
    except ImportError:  # pragma: no cover
        return "unknown"
    return __version__


def consolidate(zarr_store: Any) -> None:
    """Consolidate the metadata of the run store (one read of ``zarr.json`` opens it).

    zarr warns that consolidated metadata is not yet part of the v3 specification; latentgeo
    uses it deliberately (zarr and xarray both read it) and writes it only when a writer closes.
    """
    import zarr
    from zarr.errors import ZarrUserWarning

    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore",
            message="Consolidated metadata is currently not part",
            category=ZarrUserWarning,
        )
        zarr.consolidate_metadata(zarr_store)


class RunWriter:
    """The single writer of a run store.

    Parameters
    ----------
    store : str or os.PathLike
        Local folder (conventionally ``*.zarr``) or fsspec URL.
    mode : {"w-", "w", "a"}
        ``"w-"`` creates and refuses an existing store, ``"w"`` overwrites, ``"a"`` resumes an
        existing store (creating it if missing), discarding anything past its committed steps.
    meta : mapping, optional
        Root metadata: at least ``"elements"`` (element names) and ``"probe"`` (a mapping with
        ``"n_samples"``); usually also ``"group"`` (group spec), ``"action"`` (action spec) and
        ``"model"``.  On resume, ``group``, ``elements``, ``action`` and ``probe`` must equal the
        stored ones.
    compressors : optional
        zarr v3 compressors for the latent arrays.  None (default) stores them raw: activations
        compress poorly and compression would dominate the writer's time; ``"auto"`` uses zarr's
        default (zstd).
    lock_timeout : float
        Seconds to wait for another writer to release the store (its lock, or its lease).
    storage_options : mapping, optional
        fsspec options for a store at a URL (e.g. ``{"endpoint_url": ...}`` for s3fs).
    lease_ttl : float
        Lifetime in seconds of the lease that guards a store at a URL (renewed every
        ``lease_ttl / 3`` while the writer lives): how long a killed writer's store stays
        refused to the next writer.
    layers : mapping of str to mapping, optional
        On resume, what is known of the layers before the first forward (names in order,
        and per layer e.g. ``dtype``, ``reducer``, ``select``): compared with the stored
        layers before anything in the store changes (see :meth:`check_layers`).

    Raises
    ------
    StoreLockedError
        When another writer holds the store for all of ``lock_timeout``.
    FileExistsError
        For ``mode="w-"`` on an existing store.
    ResumeMismatchError
        On resume, when the store was recorded with another group, elements, action, probe
        set or (given ``layers``) other layers.

    Examples
    --------
    >>> # Not run here: it would write run.zarr into the current folder.
    >>> w = RunWriter("run.zarr", meta={"elements": ["e", "r"], "probe": {"n_samples": 3}})
    ... # doctest: +SKIP
    >>> w.ensure_layers({"fc": {"feature_shape": [5], "n_units": 5, "dtype": "float32"}})
    ... # doctest: +SKIP
    >>> w.append(0, {"fc": np.zeros((2, 3, 5), np.float32)})  # doctest: +SKIP
    >>> w.close()  # doctest: +SKIP
    """

    def __init__(
        self,
        store: str | os.PathLike[str],
        mode: str = "w-",
        *,
        meta: Mapping[str, Any] | None = None,
        compressors: Any = None,
        lock_timeout: float = 2.0,
        storage_options: Mapping[str, Any] | None = None,
        lease_ttl: float = 60.0,
        layers: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> None:
        import zarr

        if mode not in _MODES:
            raise ValueError(f"mode must be one of {_MODES}, got {mode!r}")
        if not isinstance(store, (str, os.PathLike)):
            raise TypeError(
                f"store must be a local path or an fsspec URL string, got {store!r} "
                f"({type(store).__name__})"
            )
        root: dict[str, Any] = jsonable(dict(meta or {}))
        if "elements" not in root or "probe" not in root or "n_samples" not in root["probe"]:
            raise ValueError(
                "meta must hold 'elements' (element names) and 'probe' with 'n_samples', "
                f"got keys {sorted(root)!r}"
            )
        self.store = store
        self.mode = mode
        self._compressors = compressors
        self._lock: WriterLock | None = None
        self._lease: StoreLease | None = None
        self._closed = False
        self._storage_options = dict(storage_options or {})
        path = local_path(store) if isinstance(store, str) else Path(store)
        self.path = path

        if path is None:
            # No flock on object storage: take the store's lease before looking at it.
            self._lease = StoreLease(str(store), self._storage_options, ttl=lease_ttl)
            if not self._lease.acquire(timeout=lock_timeout):
                holder = (self._lease.read() or {}).get("owner")
                self._lease = None
                raise StoreLockedError(
                    f"run store {str(store)!r} is being written by another writer (lease held "
                    f"by {holder!r}; it expires {lease_ttl:g} s after that writer stops)"
                )
        try:
            exists = self._exists(store, path, self._storage_options)
        except BaseException:
            self._release()
            raise
        if mode == "w-" and exists:
            raise FileExistsError(
                f"run store {str(store)!r} already exists; pass mode='w' to overwrite it or "
                "mode='a' to resume it"
            )
        if path is not None:
            path.mkdir(parents=True, exist_ok=True)
            self._lock = WriterLock(path)
            if not self._lock.acquire(timeout=lock_timeout):
                self._lock = None
                raise StoreLockedError(
                    f"run store {str(store)!r} is being written by another writer"
                )
        try:
            if mode == "w" and exists:
                self._clear(store, path, self._storage_options)
                exists = False
            if path is not None:
                removed = clean_partials(path)
                if removed:
                    log.info("removed %d stale temporary files from %s", len(removed), path)
            self._zstore = open_zarr_store(
                store, read_only=False, storage_options=self._storage_options
            )
            if exists:
                self._group = zarr.open_group(self._zstore, mode="r+", use_consolidated=False)
                self._resume(root, layers)
            else:
                self._create(root)
        except BaseException:
            self._release()
            raise

    # -- opening --------------------------------------------------------------------------
    @staticmethod
    def _exists(store: Any, path: Path | None, storage_options: Mapping[str, Any]) -> bool:
        if path is not None:
            return path.exists() and any(path.iterdir())
        import zarr

        try:
            zarr.open_group(
                open_zarr_store(store, read_only=True, storage_options=storage_options), mode="r"
            )
        except (FileNotFoundError, KeyError, zarr.errors.GroupNotFoundError):
            return False
        return True

    @staticmethod
    def _clear(store: Any, path: Path | None, storage_options: Mapping[str, Any]) -> None:
        if path is None:
            import zarr

            zarr.open_group(
                open_zarr_store(store, read_only=False, storage_options=storage_options),
                mode="w",
            )
            return
        # Empty the folder but keep it: the writer lock is held on the folder itself.
        for child in path.iterdir():
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child)
            else:
                child.unlink()

    def _create(self, meta: dict[str, Any]) -> None:
        import zarr

        self._meta = {
            **meta,
            "schema_version": SCHEMA_VERSION,
            "version": _version(),
            "layers": {},
            "committed_steps": 0,
        }
        # No overwrite=True: zarr would delete and recreate the folder, losing the writer lock
        # held on it.  The folder is empty here (new, or emptied by mode "w").
        self._group = zarr.create_group(
            self._zstore, zarr_format=3, attributes={ROOT_KEY: self._meta}
        )
        self._per_step_arrays: dict[str, Any] = {}
        self._per_step_arrays["step"] = self._new_per_step("step", "int64", -1, 0)
        self._per_step_arrays["epoch"] = self._new_per_step("epoch", "int64", -1, 0)
        self._per_step_arrays["wall_time"] = self._new_per_step("wall_time", "float64", np.nan, 0)
        self._layer_arrays: dict[str, Any] = {}
        self._steps: list[int] = []

    def _resume(self, meta: dict[str, Any], layers: Mapping[str, Any] | None = None) -> None:
        stored = copy.deepcopy(root_meta(self._group.attrs.asdict(), self.store))
        if stored.get("schema_version") != SCHEMA_VERSION:
            raise ValueError(
                f"run store {str(self.store)!r} has schema version "
                f"{stored.get('schema_version')!r}; this latentgeo writes {SCHEMA_VERSION}"
            )
        check_identity(str(self.store), stored, meta)
        committed = int(stored.get("committed_steps", 0))
        if layers is not None and committed:
            check_layer_specs(str(self.store), stored.get("layers", {}), layers)
        self._meta = {**stored, **{k: v for k, v in meta.items() if k not in stored}}
        members = dict(self._group.arrays())
        self._per_step_arrays = {}
        self._layer_arrays = {}
        for name, arr in members.items():
            dims = dimension_names(arr)
            if not dims or dims[0] != "step":
                continue
            if arr.shape[0] < committed:
                raise CorruptStoreError(
                    f"run store {str(self.store)!r} is corrupted: array {name!r} has "
                    f"{arr.shape[0]} steps but {committed} are committed"
                )
            if arr.shape[0] > committed:
                # Discard a half-written checkpoint; zarr deletes the chunks past the new shape.
                log.info("discarding %d uncommitted steps of %r", arr.shape[0] - committed, name)
                arr.resize((committed, *arr.shape[1:]))
            # Chunks of a checkpoint whose array had not grown yet when the writer died lie
            # past the shape: invisible, and overwritten by the next append, but removed here
            # so a resumed store holds no stale bytes.
            delete_chunks_from(arr, committed)
            if name in self._meta["layers"]:
                self._layer_arrays[name] = arr
            elif len(dims) == 1:
                self._per_step_arrays[name] = arr
        for name in PER_STEP_FIXED:
            if name not in self._per_step_arrays:
                raise CorruptStoreError(
                    f"run store {str(self.store)!r} is corrupted: no {name!r} array"
                )
        for layer in self._meta["layers"]:
            if (
                layer not in self._layer_arrays
                or nonfinite_name(layer) not in self._per_step_arrays
            ):
                raise CorruptStoreError(
                    f"run store {str(self.store)!r} is corrupted: layer {layer!r} lost"
                )
            if overflow_name(layer) not in self._per_step_arrays:
                # A store written before overflow counts existed: unknown (-1) so far.
                self._per_step_arrays[overflow_name(layer)] = self._new_per_step(
                    overflow_name(layer), "int64", -1, committed
                )
        self._steps = [int(s) for s in self._per_step_arrays["step"][:committed]]
        # Rewriting the root metadata drops consolidated metadata written by an earlier close:
        # while this writer appends, readers must read each array's own (fresh) metadata.
        self._write_meta()

    def _new_per_step(self, name: str, dtype: str, fill: Any, length: int) -> Any:
        return self._group.create_array(
            name,
            shape=(length,),
            chunks=(1,),
            dtype=dtype,
            fill_value=fill,
            compressors=None,  # 8-byte chunks: compression only costs time
            dimension_names=("step",),
            overwrite=True,
        )

    def _write_meta(self) -> None:
        self._group.attrs.update({ROOT_KEY: self._meta})

    # -- properties -----------------------------------------------------------------------
    @property
    def meta(self) -> dict[str, Any]:
        """A copy of the root metadata (the ``"latentgeo"`` root attribute)."""
        return copy.deepcopy(self._meta)

    @property
    def committed_steps(self) -> int:
        """Number of complete checkpoints in the store."""
        return len(self._steps)

    @property
    def steps(self) -> list[int]:
        """Training steps of the committed checkpoints, increasing."""
        return list(self._steps)

    @property
    def last_step(self) -> int | None:
        """The last committed training step, or None for an empty store."""
        return self._steps[-1] if self._steps else None

    @property
    def layers(self) -> dict[str, dict[str, Any]]:
        """Layer specs ``{name: {"feature_shape", "n_units", "dtype", "reducer", ...}}``."""
        return copy.deepcopy(self._meta["layers"])

    # -- schema ---------------------------------------------------------------------------
    def check_layers(self, specs: Mapping[str, Mapping[str, Any]]) -> None:
        """Refuse to resume a store whose committed steps were recorded with other layers.

        Called when a recorder is constructed, before training resumes, with what is known
        before the first forward (layer names in order, and per layer e.g. ``dtype``,
        ``reducer``, ``select``); keys a stored spec lacks are not compared.  A store with no
        committed step accepts anything (its layers are redefined at the first append).

        Raises
        ------
        ResumeMismatchError
            Naming every difference.
        """
        self._check_open()
        if self._steps:
            check_layer_specs(str(self.store), self._meta["layers"], specs)

    def ensure_layers(self, specs: Mapping[str, Mapping[str, Any]]) -> None:
        """Create the latent arrays of ``specs``, or check them against an existing store.

        Parameters
        ----------
        specs : mapping of str to mapping
            ``{layer: {"feature_shape": tuple, "n_units": int, "dtype": str, "reducer": ...}}``,
            in recording order.  Extra keys are stored as they are.
        """
        self._check_open()
        specs = {validate_node_name(k): jsonable(dict(v)) for k, v in specs.items()}
        for name, spec in specs.items():
            if spec.get("dtype") not in LATENT_DTYPES:
                raise ValueError(
                    f"dtype of layer {name!r} must be one of {LATENT_DTYPES}, got "
                    f"{spec.get('dtype')!r}"
                )
            if not isinstance(spec.get("n_units"), int) or spec["n_units"] < 1:
                raise ValueError(f"n_units of layer {name!r} must be a positive int, got {spec!r}")
        if specs == self._meta["layers"]:
            return
        if self._steps:
            raise ResumeMismatchError(
                f"cannot resume run store {str(self.store)!r} with different layers: "
                f"{difference(self._meta['layers'], specs)}"
            )
        for old in self._meta["layers"]:
            for name in (old, nonfinite_name(old), overflow_name(old)):
                if name in self._group:
                    del self._group[name]
                self._per_step_arrays.pop(name, None)
        n_el = len(self._meta["elements"])
        n_samples = int(self._meta["probe"]["n_samples"])
        self._layer_arrays = {}
        for name, spec in specs.items():
            itemsize = np.dtype(spec["dtype"]).itemsize
            per_sample = spec["n_units"] * itemsize
            sample_chunk = max(1, min(n_samples, _CHUNK_BYTES // max(per_sample, 1)))
            self._layer_arrays[name] = self._group.create_array(
                name,
                shape=(0, n_el, n_samples, spec["n_units"]),
                chunks=(1, 1, sample_chunk, spec["n_units"]),
                dtype=spec["dtype"],
                fill_value=np.nan,
                compressors=self._compressors,
                dimension_names=("step", "element", "sample", unit_dim(name)),
                attributes={"layer": name, **spec},
                overwrite=True,
            )
            for counter in (nonfinite_name(name), overflow_name(name)):
                self._per_step_arrays[counter] = self._new_per_step(counter, "int64", -1, 0)
        self._meta["layers"] = specs
        self._write_meta()

    def write_probe(self, inputs: Any = None, labels: Any = None) -> None:
        """Store the probe set's inputs and/or labels once (skipped if already stored).

        Parameters
        ----------
        inputs : array of shape (n_samples, ...), optional
        labels : array of shape (n_samples, ...), optional
            Numbers, booleans or strings; strings are stored as zarr v3 variable-length
            UTF-8 (``"string"`` data type), which plain ``xarray.open_zarr`` reads back.

        Raises
        ------
        TypeError
            For values that are neither numeric, boolean nor strings (see
            :func:`storable_probe_array`).
        ValueError
            For a leading dimension other than ``n_samples``.
        """
        self._check_open()
        n = int(self._meta["probe"]["n_samples"])
        for name, value in (("inputs", inputs), ("labels", labels)):
            if value is None or name in self._group:
                continue
            arr = storable_probe_array(value)
            if arr is None:
                raise TypeError(
                    f"{name} must be numeric, boolean or strings to be stored, got dtype "
                    f"{np.asarray(value).dtype}"
                )
            if arr.ndim == 0 or arr.shape[0] != n:
                raise ValueError(f"{name} must have shape (n_samples={n}, ...), got {arr.shape!r}")
            dims = ("sample", *(f"{name}/dim_{i}" for i in range(1, arr.ndim)))
            z = self._group.create_array(
                name,
                shape=arr.shape,
                chunks=arr.shape,
                dtype=arr.dtype,
                dimension_names=dims,
            )
            z[...] = arr

    def write_element_values(self, values: Any) -> None:
        """Store the group elements along the ``element`` axis once (array ``element_values``).

        Finite groups give int64 element indices of shape (n_elements,); continuous groups
        float64 values such as rotation matrices, shape (n_elements, ...).  Plain
        ``xarray.open_zarr`` readers see it as a variable with dims
        ``("element", "element_values/dim_1", ...)``.

        Raises
        ------
        ValueError
            If the first axis does not have one entry per element, or the store already holds
            different values (a resumed run acted through other elements).
        TypeError
            If the values are not numeric.
        """
        self._check_open()
        arr = np.asarray(values)
        n_el = len(self._meta["elements"])
        if arr.ndim == 0 or arr.shape[0] != n_el:
            raise ValueError(
                f"element_values must have shape (n_elements={n_el}, ...), got {arr.shape!r}"
            )
        if arr.dtype.kind not in "biuf":
            raise TypeError(f"element_values must be numeric, got dtype {arr.dtype}")
        arr = arr.astype(np.int64 if arr.dtype.kind in "biu" else np.float64)
        import zarr

        if ELEMENT_VALUES in self._group:
            node = self._group[ELEMENT_VALUES]
            stored = np.asarray(node[...]) if isinstance(node, zarr.Array) else np.empty(0)
            if stored.shape != arr.shape or not np.array_equal(stored, arr):
                raise ValueError(
                    f"cannot resume run store {str(self.store)!r}: it was recorded with other "
                    f"element values (shape {stored.shape!r}) than the writer was given "
                    f"(shape {arr.shape!r})"
                )
            return
        dims = ("element", *(f"{ELEMENT_VALUES}/dim_{i}" for i in range(1, arr.ndim)))
        z = self._group.create_array(
            ELEMENT_VALUES,
            shape=arr.shape,
            chunks=arr.shape,
            dtype=arr.dtype,
            dimension_names=dims,
        )
        z[...] = arr

    # -- appending ------------------------------------------------------------------------
    def append(
        self,
        step: int,
        latents: Mapping[str, np.ndarray],
        *,
        epoch: int | None = None,
        wall_time: float | None = None,
        metrics: Mapping[str, float] | None = None,
        nonfinite: Mapping[str, int] | None = None,
        overflow: Mapping[str, int] | None = None,
    ) -> None:
        """Write one checkpoint and commit it.

        Parameters
        ----------
        step : int
            Training step; must be greater than :attr:`last_step`.
        latents : mapping of str to array of shape (n_elements, n_samples, n_units)
            One array per layer of :attr:`layers`.
        epoch : int, optional
            Stored as -1 when unknown.
        wall_time : float, optional
            Seconds since the epoch; defaults to now.
        metrics : mapping of str to float, optional
            Scalars for this step; a metric first seen now is NaN at earlier steps.
        nonfinite : mapping of str to int, optional
            Number of the model's own non-finite latents per layer (when missing: the
            non-finite values of ``latents`` less ``overflow``).
        overflow : mapping of str to int, optional
            Number of finite latents per layer that the cast to the storage dtype made
            infinite (when missing: -1, unknown).
        """
        self._check_open()
        step = int(step)
        if self._steps and step <= self._steps[-1]:
            raise ValueError(
                f"step {step!r} is not after the last committed step {self._steps[-1]!r}"
            )
        layers = self._meta["layers"]
        if set(latents) != set(layers):
            raise ValueError(
                f"latents must hold exactly the layers {sorted(layers)!r}, got {sorted(latents)!r}"
            )
        n_el = len(self._meta["elements"])
        n_samples = int(self._meta["probe"]["n_samples"])
        arrays = {}
        for name, value in latents.items():
            arr = np.asarray(value)
            want = (n_el, n_samples, layers[name]["n_units"])
            if arr.shape != want:
                raise ValueError(
                    f"latents of layer {name!r} must have shape {want}, got {arr.shape}"
                )
            arrays[name] = arr
        metrics = dict(metrics or {})
        scalars: dict[str, Any] = {}
        for key, number in metrics.items():
            validate_metric_name(key, layers)
            scalars[key] = float(number)
        overflow = dict(overflow or {})
        nonfinite = dict(nonfinite or {})
        for name, arr in arrays.items():
            if name not in nonfinite:
                nonfinite[name] = count_nonfinite(arr) - max(0, int(overflow.get(name, 0)))

        i = len(self._steps)
        # Phase 0: arrays for metrics seen for the first time (NaN at earlier steps).
        for key in scalars:
            if key not in self._per_step_arrays:
                self._per_step_arrays[key] = self._new_per_step(key, "float64", np.nan, i)
        values: dict[str, Any] = {
            "step": step,
            "epoch": -1 if epoch is None else int(epoch),
            "wall_time": time.time() if wall_time is None else float(wall_time),
        }
        for name in layers:
            values[nonfinite_name(name)] = int(nonfinite[name])
            values[overflow_name(name)] = int(overflow.get(name, -1))
        per_step = {
            key: np.asarray([values.get(key, scalars.get(key, math.nan))], arr.dtype)
            for key, arr in self._per_step_arrays.items()
        }
        targets = [
            *((self._layer_arrays[name], arrays[name]) for name in layers),
            *((self._per_step_arrays[key], value) for key, value in per_step.items()),
        ]
        # Phases 1 and 2 as one batch of concurrent store operations.  A missing metric is
        # written as NaN rather than left to the fill value, so no stale chunk can show through.
        if self._lease is not None:
            self._lease.check()  # never write a checkpoint into a store another writer took
        write_step(i, targets)
        # Phase 3: commit (only while the store is still ours).
        if self._lease is not None:
            self._lease.check()
        self._meta["committed_steps"] = i + 1
        self._write_meta()
        self._steps.append(step)

    # -- closing --------------------------------------------------------------------------
    def close(self, consolidate_metadata: bool = True) -> None:
        """Consolidate the metadata and release the store (idempotent)."""
        if self._closed:
            return
        self._closed = True
        try:
            if consolidate_metadata:
                consolidate(self._zstore)
        finally:
            self._release()

    def _release(self) -> None:
        if self._lock is not None:
            self._lock.release()
            self._lock = None
        if self._lease is not None:
            self._lease.release()
            self._lease = None

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError(f"the writer of {str(self.store)!r} is closed")

    def __enter__(self) -> RunWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"RunWriter({str(self.store)!r}, mode={self.mode!r}, "
            f"committed_steps={self.committed_steps})"
        )

    def __del__(self) -> None:
        # Never consolidate from a finaliser; only make sure the lock is not leaked.
        lock = getattr(self, "_lock", None)
        if lock is not None:
            lock.release()
        lease = getattr(self, "_lease", None)
        if lease is not None:
            lease.release()


def storable_probe_array(value: Any) -> np.ndarray | None:
    """``value`` as an array the run store can hold, or None when it cannot be stored.

    Numbers and booleans are kept as they are; strings (numpy ``U``/``S``/``StringDType``
    arrays, or object arrays of ``str``) become numpy's variable-length ``StringDType``,
    stored as zarr v3's ``"string"`` data type (variable-length UTF-8; zarr v3 has no
    settled specification for fixed-width unicode). Anything else (objects, dates) is None.
    """
    arr = np.asarray(value)
    if arr.dtype.kind in "biuf":
        return arr
    if arr.dtype.kind == "S":
        try:
            return np.char.decode(arr, "utf-8").astype(np.dtypes.StringDType())
        except UnicodeDecodeError:
            return None
    if arr.dtype.kind in "UT":
        return arr.astype(np.dtypes.StringDType())
    if arr.dtype.kind == "O" and arr.size and all(isinstance(v, str) for v in arr.flat):
        return arr.astype(np.dtypes.StringDType())
    return None


def count_nonfinite(arr: np.ndarray) -> int:
    """Number of NaN/inf entries of ``arr``.

    The common case (all finite) is answered by one matrix-vector product with a vector of
    ones (BLAS, memory-bound, no mask allocated): NaN and inf propagate into the row sums, so
    finite sums prove finite entries.  Only a non-finite (or overflowing) result pays for the
    exact count.
    """
    if arr.dtype.kind != "f" or arr.size == 0:
        return 0
    if arr.dtype in (np.float32, np.float64) and arr.ndim >= 1:
        rows = arr.reshape(-1, arr.shape[-1])
        with np.errstate(over="ignore", invalid="ignore"):
            sums = rows @ np.ones(rows.shape[1], dtype=arr.dtype)
            if np.isfinite(sums).all():
                return 0
    return int(arr.size - np.count_nonzero(np.isfinite(arr)))
