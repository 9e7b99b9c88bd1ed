"""The one place latentgeo touches zarr's internals (``zarr.core``, ``AsyncArray``, codecs).

The store is written and read through zarr's public API everywhere else.  Three fast paths
need more than the public API, and they live here so that a zarr release that moves its
internals breaks one module with one version test (``tests/test_store_zarr_compat.py``),
as the geomstats bridge does for geomstats:

* :func:`write_step` grows every per-step array and writes its chunks for one step as one
  batch of concurrent store operations (``AsyncArray.resize``/``setitem`` under
  ``zarr.core.sync.sync``) instead of one blocking round trip per array;
* :func:`raw_chunks` encodes chunks of uncompressed arrays itself: with the ``bytes`` codec
  alone a chunk is the C-ordered little-endian bytes of its block, so a block that is
  contiguous in the caller's array is handed to the store with no copy;
* :func:`delete_chunks_from` lists and deletes chunks past a step (a resumed store holds
  no bytes of a killed writer's half-written checkpoint).

Tested against zarr 3.1.4 (the first with the public ``Array.async_array`` used below; 3.1.2
brought ``zarr.errors.ZarrUserWarning``, which the writer filters; its ``LocalStore`` writes
every key by temporary file and rename, which the commit protocol relies on) up to the 3.1
series; :data:`ZARR_SUPPORTED`.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import Any

import numpy as np

__all__ = [
    "ZARR_SUPPORTED",
    "check_zarr_version",
    "delete_chunks_from",
    "raw_chunks",
    "read_step",
    "write_step",
]

#: Oldest zarr release supported and the first major release known not to be.
ZARR_SUPPORTED = ((3, 1, 4), (4, 0, 0))


def _version_tuple(version: str) -> tuple[int, ...]:
    parts = []
    for piece in version.split(".")[:3]:
        digits = "".join(ch for ch in piece if ch.isdigit()) or "0"
        parts.append(int(digits))
        if not piece.isdigit():
            break
    return tuple(parts + [0] * (3 - len(parts)))


def check_zarr_version(version: str | None = None) -> tuple[int, ...]:
    """Check that ``version`` (default: the installed zarr's) is one this module supports.

    Returns
    -------
    tuple of int
        The parsed ``(major, minor, patch)``.

    Raises
    ------
    ImportError
        When the version lies outside :data:`ZARR_SUPPORTED`, naming it and the range.
    """
    if version is None:
        import zarr

        version = zarr.__version__
    parsed = _version_tuple(version)
    low, high = ZARR_SUPPORTED
    if not (low <= parsed < high):
        raise ImportError(
            f"latentgeo's run store needs zarr >= {'.'.join(map(str, low))} and < "
            f"{'.'.join(map(str, high))}; zarr {version} is installed"
        )
    return parsed


_CHECKED: list[bool] = []


def _check_once() -> None:
    # The fast paths below check the installed zarr once per process, on first use.
    if not _CHECKED:
        check_zarr_version()
        _CHECKED.append(True)


def read_step(arr: Any, index: int) -> np.ndarray:
    """Step ``index`` of a step-major zarr array, as one numpy array (one read, one copy).

    Parameters
    ----------
    arr : zarr.Array
        An array whose first dimension is ``step``.
    index : int
        Step index, ``0 <= index < arr.shape[0]``.

    Returns
    -------
    numpy.ndarray of shape ``arr.shape[1:]``
    """
    _check_once()
    # zarr decodes every chunk of the step straight into one output buffer (the lazy dask
    # view costs about three copies of the block at peak).
    return np.asarray(arr[index])


def raw_chunks(arr: Any, i: int, value: np.ndarray) -> list[tuple[str, Any]] | None:
    """Encoded chunks of step ``i`` of ``arr`` as ``(key, Buffer)``, or None to let zarr encode.

    With no compressor and no filter, zarr v3's only codec is ``bytes`` (little-endian): a
    chunk is the C-ordered bytes of its block, padded to the full chunk shape at the edge.
    The latent chunks are laid out so that every block ``value[e, s0:s1]`` is contiguous in
    the array handed over, so the writer passes it to the store without the copies zarr's
    indexing machinery would make.  Anything else takes zarr's own path.
    """
    _check_once()
    from zarr.codecs import BytesCodec
    from zarr.core.buffer import default_buffer_prototype

    meta = arr.metadata
    codecs: tuple[Any, ...] = tuple(getattr(meta, "codecs", ()))
    if len(codecs) != 1 or not isinstance(codecs[0], BytesCodec) or sys.byteorder != "little":
        return None
    endian: Any = codecs[0].endian
    if getattr(endian, "value", endian) not in (None, "little"):
        return None
    chunks = meta.chunk_grid.chunk_shape
    if chunks[0] != 1 or any(c != s for c, s in zip(chunks[3:], arr.shape[3:])):
        return None
    dtype = np.dtype(arr.dtype)
    value = np.asarray(value)
    if value.dtype != dtype or value.shape != arr.shape[1:]:
        value = value.astype(dtype, copy=False).reshape(arr.shape[1:])
    value = value.astype(dtype.newbyteorder("<"), copy=False)
    prototype = default_buffer_prototype()
    out = []
    if value.ndim == 0 or len(chunks) == 1:
        block = np.ascontiguousarray(value).reshape(-1)
        return [
            (meta.encode_chunk_key((i,)), prototype.buffer.from_array_like(block.view(np.uint8)))
        ]
    if len(chunks) != 4 or chunks[1] != 1:
        return None
    sc = chunks[2]
    n = value.shape[1]
    for e in range(value.shape[0]):
        for j, s0 in enumerate(range(0, n, sc)):
            block = value[e, s0 : s0 + sc]
            if block.shape[0] < sc:  # edge chunk: zarr stores it padded to the full shape
                full = np.full((sc, *block.shape[1:]), meta.fill_value, dtype=dtype)
                full[: block.shape[0]] = block
                block = full
            block = np.ascontiguousarray(block)
            out.append(
                (
                    meta.encode_chunk_key((i, e, j, 0)),
                    prototype.buffer.from_array_like(block.reshape(-1).view(np.uint8)),
                )
            )
    return out


def write_step(i: int, targets: Iterable[tuple[Any, np.ndarray]]) -> None:
    """Grow every array of ``targets`` to ``i + 1`` steps and write its step ``i``.

    One batch of concurrent store operations.  Growing an array (a metadata write) and
    writing its raw chunks for step ``i`` may land in any order: a chunk past an array's
    shape is invisible, nothing is visible to readers before the caller commits, and every
    write covers *every* chunk of its step, so a chunk orphaned by a crash before its array
    grew is overwritten by the next write of that step.  Arrays that go through zarr's own
    encoding grow first, then write.

    Parameters
    ----------
    i : int
        Step index to write.
    targets : iterable of (zarr.Array, numpy.ndarray)
        Each array (step-major) and its value at step ``i`` (shape ``arr.shape[1:]``).
    """
    import asyncio

    _check_once()
    from zarr.core.sync import sync

    async def grow(arr: Any) -> None:
        await arr.async_array.resize((i + 1, *arr.shape[1:]))

    async def grow_then_set(arr: Any, value: np.ndarray) -> None:
        await grow(arr)
        await arr.async_array.setitem(i, value)

    async def batch() -> None:
        ops = []
        for arr, value in targets:
            chunks = raw_chunks(arr, i, value)
            if chunks is None:
                ops.append(grow_then_set(arr, value))
            else:
                ops.append(grow(arr))
                ops.extend((arr.async_array.store_path / key).set(buf) for key, buf in chunks)
        await asyncio.gather(*ops)

    sync(batch())


def delete_chunks_from(arr: Any, first_step: int) -> None:
    """Delete every stored chunk of the step-major array ``arr`` at step index >= ``first_step``."""
    _check_once()
    from zarr.core.sync import sync

    store = arr.async_array.store_path.store
    path = arr.async_array.store_path.path
    prefix = f"{path}/c" if path else "c"  # an array at the root of its store has no path

    async def run() -> None:
        stale = [k async for k in store.list_dir(prefix) if k.isdigit() and int(k) >= first_step]
        for k in stale:
            if arr.ndim == 1:
                await store.delete(f"{prefix}/{k}")
            else:
                await store.delete_dir(f"{prefix}/{k}")

    sync(run())
