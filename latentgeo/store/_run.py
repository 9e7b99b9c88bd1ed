"""Read a run store: :func:`open_run` and the read-only :class:`Run` view of its committed
prefix (the analysis cache it offers is written by :mod:`latentgeo.store._analysis`)."""

from __future__ import annotations

import copy
import os
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

import numpy as np

from latentgeo._validate import check_int
from latentgeo.store import _analysis
from latentgeo.store._lease import lease_is_live
from latentgeo.store._schema import (
    ELEMENT_VALUES,
    PER_STEP_FIXED,
    ROOT_KEY,
    SCHEMA_VERSION,
    WriterLock,
    dimension_names,
    local_path,
    nonfinite_name,
    open_zarr_store,
    overflow_name,
    root_meta,
)

if TYPE_CHECKING:
    import xarray as xr
    import zarr

    from latentgeo.actions import Action
    from latentgeo.groups import Group

__all__ = ["Run", "RunSpec", "open_run"]


@dataclass(frozen=True)
class RunSpec:
    """Everything needed to open a run store in another process: picklable, no open handles.

    What :func:`probes.run` sends to its workers (threads, processes, dask workers) so that
    each opens the store exactly as the caller did, with the caller's ``storage_options``
    (an S3 endpoint, credentials) rather than the worker's environment.

    Attributes
    ----------
    path : str
        Absolute local folder or fsspec URL.
    storage_options : dict
        fsspec options of the URL (empty for local folders).
    """

    path: str
    storage_options: dict[str, Any] = field(default_factory=dict)

    def open(self) -> Run:
        """Open the store (see :func:`open_run`)."""
        return Run(self.path, storage_options=self.storage_options)

    def __repr__(self) -> str:  # storage options may hold credentials: never print them
        keys = sorted(self.storage_options)
        return f"RunSpec({self.path!r}, storage_options keys={keys})"


def open_run(
    path: str | os.PathLike[str], *, storage_options: Mapping[str, Any] | None = None
) -> Run:
    """Open a run store for reading.

    Parameters
    ----------
    path : str or os.PathLike
        Local folder or fsspec URL of the store.
    storage_options : mapping, optional
        fsspec options for a URL (e.g. ``{"endpoint_url": ...}`` for an S3-compatible
        server); also used when the analysis cache writes to the store.

    Returns
    -------
    Run
        A snapshot of the store's committed checkpoints at the time of opening (call
        :meth:`Run.refresh` to see checkpoints committed since).

    Examples
    --------
    >>> # Not run here: needs a run store on disk.
    >>> run = latentgeo.open_run("runs/cnn.zarr")  # doctest: +SKIP
    >>> run.latents("fc").sel(element="r").isel(step=-1)  # doctest: +SKIP
    """
    return Run(path, storage_options=storage_options)


class Run:
    """Read-only view of the committed prefix of a run store.

    Parameters
    ----------
    path : str or os.PathLike
        Local folder or fsspec URL of the store.
    storage_options : mapping, optional
        fsspec options for a URL (see :func:`open_run`).

    Notes
    -----
    The root attribute ``committed_steps`` is read first and every array is cut to that many
    steps, so a store being appended to (or left behind by a killed writer) always reads as a
    consistent prefix.  Arrays are opened one by one rather than through
    ``xarray.open_zarr``, which would refuse the unequal ``step`` lengths of a half-written
    checkpoint.  Latents stay lazy (dask, one chunk per step).
    """

    def __init__(
        self, path: str | os.PathLike[str], *, storage_options: Mapping[str, Any] | None = None
    ) -> None:
        if not isinstance(path, (str, os.PathLike)):
            raise TypeError(
                f"path must be a local path or an fsspec URL string, got {path!r} "
                f"({type(path).__name__})"
            )
        self.path = path if isinstance(path, str) else os.fspath(path)
        self.storage_options = dict(storage_options or {})
        self._local = local_path(self.path)
        if self._local is not None and not (self._local / "zarr.json").exists():
            raise FileNotFoundError(f"no run store at {self.path!r} (no zarr.json)")
        self._open()

    def _open(self) -> None:
        import zarr

        # Read-only: a killed writer's temporary files are the next writer's to clean
        # (``RunWriter`` removes them under its lock); readers ignore them.
        self._zstore = open_zarr_store(
            self.path, read_only=True, storage_options=self.storage_options
        )
        group = zarr.open_group(self._zstore, mode="r")
        meta = root_meta(group.attrs.asdict(), self.path)
        if meta.get("schema_version") != SCHEMA_VERSION:
            raise ValueError(
                f"run store {self.path!r} has schema version {meta.get('schema_version')!r}; "
                f"this latentgeo reads {SCHEMA_VERSION}"
            )
        self._meta: dict[str, Any] = meta
        self._committed = int(meta.get("committed_steps", 0))
        # Consolidated metadata was written at a writer's close; when present it is a
        # consistent snapshot.  Without it, every array's metadata is read fresh, and
        # committed_steps was read before any of them, so each array has >= committed steps.
        self._group = group
        self._token = uuid.uuid4().hex[:12]
        for cached in (
            "steps",
            "metrics",
            "dataset",
            "nonfinite",
            "overflow",
            "inputs",
            "labels",
            "element_values",
        ):
            self.__dict__.pop(cached, None)

    def refresh(self) -> Run:
        """Re-read the store to see checkpoints committed since opening; returns ``self``."""
        self._open()
        return self

    # -- metadata -------------------------------------------------------------------------
    @property
    def attrs(self) -> dict[str, Any]:
        """A copy of the root ``"latentgeo"`` attribute."""
        return copy.deepcopy(self._meta)

    @property
    def writer_active(self) -> bool:
        """Whether a writer holds the store right now.

        Local stores: the writer's ``flock``, dropped by the kernel if the writer dies.  Stores
        at URLs: a live (unexpired) lease, which a killed writer stops renewing.  Either way a
        killed run does not count as active (for a URL, once its lease has expired).
        """
        if self._local is None:
            return lease_is_live(self.path, self.storage_options)
        with WriterLock(self._local).try_hold() as free:
            return not free

    @property
    def committed_steps(self) -> int:
        """Number of committed checkpoints seen by this view."""
        return self._committed

    @property
    def layers(self) -> list[str]:
        """Recorded layers, in recording order."""
        return list(self._meta.get("layers", {}))

    @property
    def elements(self) -> tuple[str, ...]:
        """Names of the group elements, in element order."""
        return tuple(self._meta["elements"])

    @cached_property
    def element_values(self) -> np.ndarray:
        """The group elements along the ``element`` axis, read-only.

        int64 element indices for a finite group (``arange(order)`` for a whole orbit, the
        chosen indices for an orbit over a subset), float64 values (e.g. rotation matrices,
        shape (n_elements, 3, 3)) for a continuous group.  Stores written before this array
        existed give ``arange(n_elements)``.
        """
        if ELEMENT_VALUES in self._group:
            values = np.asarray(self._array(ELEMENT_VALUES)[...])
        else:
            values = np.arange(len(self.elements), dtype=np.int64)
        values.flags.writeable = False
        return values

    @cached_property
    def group(self) -> Group | None:
        """The group (``latentgeo.groups.parse`` of the stored spec), None if not stored.

        Raises
        ------
        MissingExtensionError
            (a ``ValueError``) If the spec names a group class that is not registered in this
            process (a user's group whose module is not imported, or whose package is not
            installed); the message names the stored spec.  The store itself stays readable:
            latents, metrics, elements and element values need no group.
        """
        spec = self._meta.get("group")
        if spec is None:
            return None
        from latentgeo.groups import MissingExtensionError, parse

        try:
            return parse(spec)
        except MissingExtensionError as err:
            raise MissingExtensionError(f"run store {self.path!r}: {err}") from None

    @cached_property
    def action(self) -> Action | None:
        """The action (``latentgeo.actions.from_spec`` of the stored spec), None if not stored.

        Raises
        ------
        MissingExtensionError
            (a ``ValueError``) If the stored action (or its group) is of a class that is not
            registered in this process; the message names the stored spec.  The raw latents
            stay readable.
        """
        spec = self._meta.get("action")
        if spec is None:
            return None
        from latentgeo.actions import MissingExtensionError, from_spec

        try:
            return from_spec(spec)
        except MissingExtensionError as err:
            raise MissingExtensionError(f"run store {self.path!r}: {err}") from None

    def layer_attrs(self, layer: str) -> dict[str, Any]:
        """Stored spec of ``layer``: ``feature_shape``, ``n_units``, ``dtype``, ``reducer``…"""
        self._check_layer(layer)
        return copy.deepcopy(self._meta["layers"][layer])

    def feature_shape(self, layer: str) -> tuple[int, ...]:
        """Shape of one sample's output of ``layer`` before reduction (e.g. ``(C, H, W)``)."""
        return tuple(int(s) for s in self.layer_attrs(layer)["feature_shape"])

    def _check_layer(self, layer: Any) -> None:
        if layer not in self._meta.get("layers", {}):
            raise KeyError(
                f"layer {layer!r} is not in run store {self.path!r}; layers: {self.layers}"
            )

    # -- data -----------------------------------------------------------------------------
    def _array(self, name: str) -> zarr.Array:
        """The zarr array ``name`` of the store (ValueError if it is a group)."""
        import zarr

        node = self._group[name]
        if not isinstance(node, zarr.Array):
            raise ValueError(
                f"run store {self.path!r} is corrupted: {name!r} is a {type(node).__name__}, "
                "not an array"
            )
        return node

    def _dask(self, name: str) -> Any:
        import dask.array as da

        arr = self._array(name)
        d = da.from_array(
            arr,
            chunks=arr.chunks,
            name=f"latentgeo-{name}-{self._token}",
            lock=False,
            asarray=True,
            inline_array=True,
        )
        dims = dimension_names(arr)
        if dims[0] == "step":
            d = d[: self._committed]
        return d, dims, arr.attrs.asdict()

    @cached_property
    def steps(self) -> np.ndarray:
        """Training steps of the committed checkpoints: int64 array of shape (n_steps,)."""
        return np.asarray(self._array("step")[: self._committed], dtype=np.int64)

    def latents(self, layer: str) -> xr.DataArray:
        """Latents of ``layer``, lazily.

        Returns
        -------
        xarray.DataArray of shape (n_steps, n_elements, n_samples, n_units)
            dims ``("step", "element", "sample", "unit")``, coords ``step`` and ``element``
            (element names), dask-backed with one chunk per step.
        """
        import xarray as xr

        self._check_layer(layer)
        data, _dims, attrs = self._dask(layer)
        return xr.DataArray(
            data,
            dims=("step", "element", "sample", "unit"),
            coords={"step": self.steps, "element": list(self.elements)},
            name=layer,
            attrs=attrs,
        )

    def read_block(self, layer: str, step_index: int) -> np.ndarray:
        """Latents of ``layer`` at one committed checkpoint, read eagerly into memory.

        One read of the step's chunks into one array: the streaming path for code that
        works on one ``(layer, step)`` at a time (the probe runner).  The lazy
        :meth:`latents` view costs about three copies of the block at peak.

        Parameters
        ----------
        layer : str
            A recorded layer.
        step_index : int
            Position along ``steps`` (not the training step), ``-len(steps) <= i < len(steps)``.

        Returns
        -------
        numpy.ndarray of shape (n_elements, n_samples, n_units)
            In the stored dtype, elements in element order.

        Raises
        ------
        KeyError
            If ``layer`` is not in the store.
        IndexError
            If ``step_index`` is not the position of a committed checkpoint.
        TypeError
            If ``step_index`` is not an int.
        """
        from latentgeo.store._zarr_compat import read_step

        self._check_layer(layer)
        i = check_int(step_index, "step_index (a position along run.steps)")
        if not -self._committed <= i < self._committed:
            raise IndexError(
                f"step_index {i} is out of range for run store {self.path!r} with "
                f"{self._committed} committed steps"
            )
        return read_step(self._group[layer], i % self._committed)

    @cached_property
    def metrics(self) -> xr.Dataset:
        """Per-step scalars (``epoch``, ``wall_time`` and the caller's metrics) as an
        ``xarray.Dataset`` along ``step``."""
        import xarray as xr

        skip = {"step", *(nonfinite_name(layer) for layer in self.layers)}
        skip |= {overflow_name(layer) for layer in self.layers}
        data = {}
        for name, arr in self._group.arrays():
            dims = dimension_names(arr)
            if dims == ("step",) and name not in skip:
                data[name] = ("step", np.asarray(arr[: self._committed]))
        order = [*PER_STEP_FIXED[1:], *sorted(k for k in data if k not in PER_STEP_FIXED)]
        return xr.Dataset({k: data[k] for k in order if k in data}, coords={"step": self.steps})

    @cached_property
    def overflow(self) -> xr.DataArray:
        """Counts of finite latents the storage cast made infinite (beyond the storage dtype's
        range, e.g. float16's 65504): int64 ``xarray.DataArray`` of dims ``(step, layer)``;
        -1 where unknown (stores written before these counts existed)."""
        import xarray as xr

        counts = np.full((self._committed, len(self.layers)), -1, dtype=np.int64)
        for j, layer in enumerate(self.layers):
            if overflow_name(layer) in self._group:
                counts[:, j] = np.asarray(self._array(overflow_name(layer))[: self._committed])
        return xr.DataArray(
            counts,
            dims=("step", "layer"),
            coords={"step": self.steps, "layer": np.array(self.layers, dtype=object)},
            name="overflow",
        )

    @cached_property
    def nonfinite(self) -> xr.DataArray:
        """Counts of the model's own non-finite latents (NaN/inf it produced; values the
        storage cast made infinite are in :attr:`overflow`): int64 ``xarray.DataArray`` of dims
        ``(step, layer)``."""
        import xarray as xr

        counts = np.zeros((self._committed, len(self.layers)), dtype=np.int64)
        for j, layer in enumerate(self.layers):
            counts[:, j] = np.asarray(self._array(nonfinite_name(layer))[: self._committed])
        return xr.DataArray(
            counts,
            dims=("step", "layer"),
            coords={"step": self.steps, "layer": np.array(self.layers, dtype=object)},
            name="nonfinite",
        )

    def _probe_array(self, name: str) -> xr.DataArray | None:
        import xarray as xr

        if name not in self._group:
            return None
        arr = self._array(name)
        return xr.DataArray(np.asarray(arr[...]), dims=dimension_names(arr), name=name)

    @cached_property
    def inputs(self) -> xr.DataArray | None:
        """The stored probe inputs, ``xarray.DataArray`` of shape (n_samples, ...), or None."""
        return self._probe_array("inputs")

    @cached_property
    def labels(self) -> xr.DataArray | None:
        """The stored probe labels, ``xarray.DataArray`` of shape (n_samples, ...), or None."""
        return self._probe_array("labels")

    @cached_property
    def dataset(self) -> xr.Dataset:
        """The whole committed store as one lazy ``xarray.Dataset`` (the layout plain
        ``xarray.open_zarr`` shows, cut to the committed steps)."""
        import xarray as xr

        variables = {}
        for layer in self.layers:
            data, dims, attrs = self._dask(layer)
            variables[layer] = xr.Variable(dims, data, attrs)
            nf = nonfinite_name(layer)
            variables[nf] = xr.Variable(("step",), self.nonfinite.sel(layer=layer).values)
        for metric, values in self.metrics.data_vars.items():
            variables[str(metric)] = values.variable
        ev = self._probe_array(ELEMENT_VALUES)
        if ev is not None:
            variables[ELEMENT_VALUES] = ev.variable
        for name in ("inputs", "labels"):
            probe = getattr(self, name)
            if probe is not None:
                variables[name] = probe.variable
        ds = xr.Dataset(variables, coords={"step": self.steps})
        ds.attrs[ROOT_KEY] = self.attrs
        return ds

    # -- analysis cache (written by latentgeo.store._analysis, never by the Run) ----------
    def save_analysis(self, name: str, ds: xr.Dataset) -> None:
        """Cache an analysis result in the store under ``analysis/<name>`` (replacing it).

        The write is serialised with other processes' analysis writes by the store's
        analysis lock and marked complete last, so a concurrent :meth:`load_analysis` sees
        the previous result or this one, never a mixture (see
        ``latentgeo.store._analysis``).  The run's own latents are not touched.

        Parameters
        ----------
        name : str
            Result name, e.g. ``"probes"`` or ``"geometry"``.
        ds : xarray.Dataset
            The result.  Fixed-width string variables are stored as variable-length strings
            (zarr v3 has no specification for fixed-width unicode).

        Raises
        ------
        TypeError
            When ``ds`` is not an ``xarray.Dataset``.
        ValueError
            For a name that is not a non-empty relative name.
        StoreBusyError
            When another analysis held the store's analysis lock for
            ``latentgeo.store._analysis.LOCK_TIMEOUT`` seconds.
        """
        _analysis.save_analysis(self.path, self.storage_options, name, ds)

    def load_analysis(self, name: str) -> xr.Dataset | None:
        """The cached result ``analysis/<name>`` as an ``xarray.Dataset``, or None if absent.

        A result another process is writing right now is waited for; one whose write was
        torn (a killed process) reads as None.
        """
        return _analysis.load_analysis(self._zstore, self.path, self.storage_options, name)

    def analyses(self) -> list[str]:
        """Names of the cached analysis results."""
        return _analysis.analysis_names(self._zstore)

    def open_spec(self) -> RunSpec:
        """What another process needs to open this store as this view does (picklable)."""
        local = self._local
        path = str(local.resolve()) if local is not None else self.path
        return RunSpec(path, dict(self.storage_options))

    def __repr__(self) -> str:
        return (
            f"Run({self.path!r}, group={self._meta.get('group')!r}, layers={self.layers}, "
            f"steps={self._committed})"
        )
