"""Opening a run store for analysis, with errors a user can act on, and ``info``."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from latentgeo.pipeline._errors import CorruptStoreError, StoreBusyError, UsageError

if TYPE_CHECKING:  # pragma: no cover
    from latentgeo.store import Run

__all__ = ["check_device", "check_layers", "format_info", "info", "open_store"]


def check_device(device: Any) -> str:
    """Validate a torch device name before any work starts; returns it as a string.

    Raises
    ------
    UsageError
        For a malformed name, or a CUDA/MPS device this machine does not have.
    """
    import torch

    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise UsageError(
            f"invalid device {device!r}: expected e.g. 'cpu', 'cuda', 'cuda:1'"
        ) from err
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise UsageError(f"device {device!r} requested but CUDA is not available here")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise UsageError(
                f"device {device!r} requested but only {torch.cuda.device_count()} CUDA "
                "device(s) exist"
            )
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise UsageError(f"device {device!r} requested but MPS is not available here")
    return str(dev)


def _is_url(path: str) -> bool:
    return "://" in path


def open_store(path: str | os.PathLike[str], allow_busy: bool = False) -> Run:
    """Open a run store for analysis, turning failures into clear, one-line errors.

    Parameters
    ----------
    path : str or os.PathLike
        Local path or fsspec URL of the store.
    allow_busy : bool, default False
        Analyse a store even while a writer appends to it (only the committed prefix is
        read); by default that is refused so results are not silently partial.

    Returns
    -------
    latentgeo.store.Run

    Raises
    ------
    UsageError
        When no store exists at ``path``.
    CorruptStoreError
        When ``path`` exists but is not a readable latentgeo run store.
    StoreBusyError
        When a writer is still recording into the store.
    """
    from latentgeo.store import open_run

    spath = os.fspath(path)
    if not _is_url(spath) and not Path(spath).exists():
        raise UsageError(f"no run store at {spath!r} (the path does not exist)")
    if not _is_url(spath) and not Path(spath).is_dir():
        raise CorruptStoreError(f"{spath!r} is a file, not a run store (a zarr folder)")
    try:
        run = open_run(spath)
    except FileNotFoundError as err:
        raise UsageError(f"no run store at {spath!r}: {err}") from err
    except Exception as err:
        raise CorruptStoreError(
            f"cannot read {spath!r} as a latentgeo run store: {type(err).__name__}: {err}"
        ) from err
    if not allow_busy and run.writer_active:
        raise StoreBusyError(
            f"the store {spath!r} is still being written (a recorder holds it open); "
            "analyse it after the run closes"
        )
    return run


def check_layers(run: Run, layers: Sequence[str] | str | None) -> list[str]:
    """Validate a layer selection against the store; None selects every layer."""
    available = list(run.layers)
    if layers is None:
        return available
    if isinstance(layers, str):
        layers = [layers]
    unknown = [layer for layer in layers if layer not in available]
    if unknown:
        import difflib

        hints = {u: difflib.get_close_matches(u, available, n=3) for u in unknown}
        hint = "; ".join(f"{u!r}: did you mean {h!r}?" for u, h in hints.items() if h)
        raise UsageError(
            f"unknown layer(s) {unknown!r} in {str(run.path)!r}; the store holds "
            f"{available!r}" + (f" ({hint})" if hint else "")
        )
    return list(layers)


def _size_on_disk(path: str) -> int | None:
    if _is_url(path):
        try:
            import fsspec

            fs, root = fsspec.core.url_to_fs(path)
            return int(fs.du(root))
        except Exception:
            return None
    total = 0
    for dirpath, _, files in os.walk(path):
        for f in files:
            try:
                total += os.path.getsize(os.path.join(dirpath, f))
            except OSError:  # a file removed while walking (a writer's temp file)
                pass
    return total


def info(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Describe a run store without loading latents.

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    dict
        ``path``, ``group``, ``action``, ``layers`` ({name: {"shape", "feature_shape",
        "reducer", "dtype"}}), ``n_steps``, ``steps``, ``committed_steps``, ``metrics``,
        ``n_samples``, ``size_bytes``, ``writer_active``.
    """
    run = open_store(path, allow_busy=True)
    spath = os.fspath(path)
    attrs = run.attrs
    layer_attrs = attrs.get("layers", {}) if isinstance(attrs, dict) else {}
    layers: dict[str, Any] = {}
    n_samples = None
    for name in run.layers:
        da = run.latents(name)
        shape = dict(zip(da.dims, (int(s) for s in da.shape)))
        n_samples = shape.get("sample", n_samples)
        meta = layer_attrs.get(name, {}) if isinstance(layer_attrs, dict) else {}
        layers[name] = {
            "shape": shape,
            "feature_shape": list(meta.get("feature_shape", []) or []),
            "reducer": meta.get("reducer"),
            "dtype": str(da.dtype),
        }
    steps = [int(s) for s in run.steps]
    metric_vars = run.metrics.data_vars if hasattr(run, "metrics") else {}
    metrics = sorted(str(v) for v in metric_vars if str(v) not in ("step",))
    action = getattr(run, "action", None)
    return {
        "path": spath,
        "group": getattr(run.group, "spec", str(run.group)),
        "action": repr(action) if action is not None else None,
        "layers": layers,
        "n_steps": len(steps),
        "steps": steps,
        "committed_steps": len(steps),
        "metrics": metrics,
        "n_samples": n_samples,
        "size_bytes": _size_on_disk(spath),
        "writer_active": run.writer_active,
    }


def _human_bytes(n: int | None) -> str:
    if n is None:
        return "unknown"
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"  # pragma: no cover


def _steps_text(steps: list[int]) -> str:
    if len(steps) <= 12:
        return ", ".join(map(str, steps)) or "none"
    head = ", ".join(map(str, steps[:6]))
    tail = ", ".join(map(str, steps[-3:]))
    return f"{head}, ..., {tail}"


def _reducer_text(spec: Any) -> str:
    """Reducer spec as text, e.g. ``random_projection(k=64, seed=0)``."""
    if not isinstance(spec, dict):
        return str(spec)
    if spec.get("name") == "callable" and "callable" in spec:
        return str(spec["callable"])
    params = ", ".join(f"{k}={v!r}" for k, v in spec.items() if k != "name")
    name = spec.get("name", "?")
    return f"{name}({params})" if params else str(name)


def format_info(d: dict[str, Any]) -> str:
    """Human-readable text of :func:`info`'s dict."""
    lines = [
        f"store:     {d['path']}",
        f"group:     {d['group']}",
        f"action:    {d['action']}",
        f"samples:   {d['n_samples']}",
        f"steps:     {d['committed_steps']} committed ({_steps_text(d['steps'])})",
        f"metrics:   {', '.join(d['metrics']) or 'none'}",
        f"size:      {_human_bytes(d['size_bytes'])}",
        f"writer:    {'ACTIVE (a recorder is writing)' if d['writer_active'] else 'closed'}",
        "layers:",
    ]
    width = max((len(n) for n in d["layers"]), default=0)
    for name, meta in d["layers"].items():
        shape = " x ".join(f"{k}={v}" for k, v in meta["shape"].items())
        feature = "x".join(map(str, meta["feature_shape"])) or "?"
        reducer = f", reducer {_reducer_text(meta['reducer'])}" if meta["reducer"] else ""
        lines.append(f"  {name:<{width}}  ({shape})  {meta['dtype']}, features {feature}{reducer}")
    return "\n".join(lines)
