"""Record latents offline, from checkpoints saved while a model trained.

``record_checkpoints`` walks saved weights in step order, loads each into the model and
records the same latents :class:`~latentgeo.LatentRecorder` would have recorded live at that
step. Checkpoints are loaded with ``torch.load(..., weights_only=True)``: a pickle that needs
arbitrary code to unpickle is refused, never executed.
"""

from __future__ import annotations

import logging
import numbers
import operator
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from latentgeo.store import Run

__all__ = ["parse_step", "record_checkpoints"]

logger = logging.getLogger("latentgeo.record")

CHECKPOINT_SUFFIXES = (".pt", ".pth", ".ckpt")

# Ordered from the most explicit to the loosest: "step=450" / "step_450" / "step-450" /
# "global_step450" first; a bare trailing integer ("ckpt_000123.pt") last.
_STEP_PATTERNS = (
    re.compile(r"(?:^|[^a-z0-9])(?:global_)?step[=_\-]?(\d+)(?![0-9])", re.IGNORECASE),
    re.compile(r"(\d+)$"),
)
_EPOCH_PATTERN = re.compile(r"(?:^|[^a-z0-9])epoch[=_\-]?(\d+)(?![0-9])", re.IGNORECASE)


def parse_step(name: str | os.PathLike[str]) -> int | None:
    """Parse the training step from a checkpoint's file name.

    Parameters
    ----------
    name : str or os.PathLike
        File name or path; only the name without its suffix is read.

    Returns
    -------
    int or None
        The step, or None when the name holds none.

    Examples
    --------
    >>> parse_step("epoch=3-step=450.ckpt"), parse_step("step_123.pt"), parse_step("ckpt-7.pth")
    (450, 123, 7)
    >>> parse_step("last.ckpt") is None
    True
    """
    stem = Path(os.fspath(name)).name
    for suffix in CHECKPOINT_SUFFIXES:
        if stem.lower().endswith(suffix):
            stem = stem[: -len(suffix)]
            break
    matches = _STEP_PATTERNS[0].findall(stem)
    if matches:
        return int(matches[-1])
    trailing = _STEP_PATTERNS[1].search(stem)
    if trailing is None:
        return None
    epoch = _EPOCH_PATTERN.search(stem)
    if epoch is not None and epoch.end() == len(stem):
        # "epoch=3.ckpt": the trailing number counts epochs, not steps.
        return None
    return int(trailing.group(1))


def _parse_epoch(name: str) -> int | None:
    matches = _EPOCH_PATTERN.findall(Path(name).name)
    return int(matches[-1]) if matches else None


def _natural_key(path: Path) -> list[Any]:
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", path.name)]


def _list_directory(directory: Path) -> list[Path]:
    files = [
        p for p in directory.iterdir() if p.is_file() and p.suffix.lower() in CHECKPOINT_SUFFIXES
    ]
    if not files:
        raise ValueError(
            f"no checkpoint files ({', '.join('*' + s for s in CHECKPOINT_SUFFIXES)}) in "
            f"directory {os.fspath(directory)!r}"
        )
    return sorted(files, key=_natural_key)


def _extract_state_dict(obj: Any, source: str) -> Mapping[str, torch.Tensor]:
    """The model weights inside a loaded checkpoint object."""
    if not isinstance(obj, Mapping):
        raise TypeError(
            f"checkpoint {source} holds a {type(obj).__name__}, expected a state dict "
            f"(mapping of parameter names to tensors) or a checkpoint dict with 'state_dict'"
        )
    # Lightning: {"state_dict": ..., "epoch": ..., "global_step": ...}; other trainers often
    # use "model" / "model_state_dict".
    for key in ("state_dict", "model_state_dict", "model"):
        inner = obj.get(key)
        if (
            isinstance(inner, Mapping)
            and inner
            and all(isinstance(v, torch.Tensor) for v in inner.values())
        ):
            return inner
    if obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        return obj
    raise ValueError(
        f"checkpoint {source} is a mapping but holds no state dict: its keys are "
        f"{sorted(map(str, obj))[:10]!r}; expected parameter names mapped to tensors, or one "
        f"of 'state_dict', 'model_state_dict', 'model'"
    )


def _match_keys(
    state: Mapping[str, torch.Tensor], expected: set[str], source: str
) -> dict[str, torch.Tensor]:
    """Map a checkpoint's keys onto the model's, stripping one common prefix if needed."""
    keys = set(state)
    if keys == expected:
        return dict(state)
    # Candidate prefixes: whatever precedes a model key in the checkpoint ("model.",
    # "module.", "net._orig_mod.", ...). Keys under the prefix must match the model's exactly;
    # keys outside it (a Lightning module's loss buffers, metrics) are ignored.
    probe = min(expected, key=len) if expected else ""
    candidates = sorted(
        {k[: len(k) - len(probe)] for k in keys if k.endswith("." + probe)},
        key=lambda p: (len(p), p),
    )
    matches = []
    for prefix in candidates:
        sub = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
        if set(sub) == expected:
            matches.append((prefix, sub))
    if len(matches) == 1:
        return matches[0][1]
    if len(matches) > 1:
        # e.g. a teacher and a student of one architecture: guessing would be wrong half the
        # time, so the caller chooses.
        raise ValueError(
            f"checkpoint {source} holds the model's parameters under several prefixes "
            f"{[p for p, _ in matches]!r}; pass the state dicts of the one to record instead"
        )
    missing = sorted(expected - keys)
    unexpected = sorted(keys - expected)
    raise ValueError(
        f"checkpoint {source} does not match the model's parameters: missing "
        f"{missing[:5]!r}{' ...' if len(missing) > 5 else ''}, unexpected "
        f"{unexpected[:5]!r}{' ...' if len(unexpected) > 5 else ''} (tried stripping the "
        f"prefixes {candidates!r})"
    )


def _load(source: Any, map_location: Any) -> tuple[Any, str]:
    if isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        try:
            try:
                # Memory-map: a training checkpoint's optimizer state is never read from disk.
                obj = torch.load(path, map_location=map_location, weights_only=True, mmap=True)
            except RuntimeError as exc:
                if "mmap" not in str(exc):
                    raise
                # Files in torch's legacy (non-zip) format cannot be memory-mapped.
                obj = torch.load(path, map_location=map_location, weights_only=True)
        except FileNotFoundError:
            raise
        except Exception as exc:
            # weights_only refuses pickles that would run code; say so instead of a raw
            # UnpicklingError, and never retry with weights_only=False.
            raise ValueError(
                f"could not load checkpoint {path!r} with torch.load(weights_only=True): {exc}. "
                f"Only tensors and plain containers are loaded (arbitrary pickles are refused "
                f"for safety): save the weights with torch.save(model.state_dict(), path), or "
                f"allow trusted extra types with torch.serialization.add_safe_globals([...])"
            ) from exc
        return obj, repr(path)
    if isinstance(source, Mapping):
        return source, "(in-memory state dict)"
    raise TypeError(
        f"each checkpoint must be a path (str or os.PathLike) or a state dict mapping, "
        f"got {type(source).__name__}: {source!r}"
    )


def _collect(checkpoints: Any, steps: Sequence[int] | None) -> list[tuple[int, Any, int | None]]:
    """(step, source, epoch) triples, validated and sorted by step."""
    if isinstance(checkpoints, (str, os.PathLike)):
        path = Path(os.fspath(checkpoints))
        if path.is_dir():
            sources: list[Any] = list(_list_directory(path))
        elif path.is_file():
            sources = [path]
        else:
            raise FileNotFoundError(f"checkpoints {os.fspath(checkpoints)!r} does not exist")
    elif isinstance(checkpoints, Mapping) and all(
        isinstance(k, numbers.Integral) and not isinstance(k, bool) for k in checkpoints
    ):
        if steps is not None:
            raise ValueError("steps must not be given when checkpoints maps steps to sources")
        steps = [int(k) for k in checkpoints]
        sources = list(checkpoints.values())
    elif isinstance(checkpoints, Iterable) and not isinstance(checkpoints, Mapping):
        sources = list(checkpoints)
    else:
        raise TypeError(
            f"checkpoints must be a directory, a file, a sequence of paths or state dicts, or "
            f"a mapping {{step: path or state dict}}, got {checkpoints!r}"
        )
    if not sources:
        raise ValueError("checkpoints is empty: there is nothing to record")

    if steps is not None:
        steps = list(steps)
        if len(steps) != len(sources):
            raise ValueError(
                f"steps has {len(steps)} entries but there are {len(sources)} checkpoints"
            )
        parsed = []
        for s in steps:
            try:
                if isinstance(s, bool):
                    raise TypeError
                value = operator.index(s)
            except TypeError:
                raise TypeError(f"steps must be integers, got {s!r}") from None
            if value < 0:
                raise ValueError(f"steps must be >= 0, got {s!r}")
            parsed.append(value)
    else:
        parsed = []
        for src in sources:
            if not isinstance(src, (str, os.PathLike)):
                raise ValueError(
                    "in-memory state dicts carry no file name to read a step from: pass steps= "
                    "or a mapping {step: state dict}"
                )
            step = parse_step(src)
            if step is None:
                raise ValueError(
                    f"cannot read a training step from the checkpoint name "
                    f"{Path(os.fspath(src)).name!r} (expected e.g. 'step=123', 'step_123', "
                    f"'epoch=3-step=450' or a trailing integer); pass steps= explicitly or "
                    f"remove the file from the list"
                )
            parsed.append(step)

    by_step: dict[int, Any] = {}
    for step, src in zip(parsed, sources):
        if step in by_step:
            raise ValueError(
                f"two checkpoints have step {step}: {_describe(by_step[step])} and "
                f"{_describe(src)}; keep one of them"
            )
        by_step[step] = src
    out = []
    for step in sorted(by_step):
        src = by_step[step]
        epoch = _parse_epoch(os.fspath(src)) if isinstance(src, (str, os.PathLike)) else None
        out.append((step, src, epoch))
    return out


def _describe(src: Any) -> str:
    return repr(os.fspath(src)) if isinstance(src, (str, os.PathLike)) else "an in-memory dict"


def record_checkpoints(
    model: torch.nn.Module,
    checkpoints: Any,
    layers: str | Sequence[str],
    action: Any,
    probe_inputs: torch.Tensor,
    store: str | os.PathLike[str],
    steps: Sequence[int] | None = None,
    map_location: Any = "cpu",
    **recorder_kwargs: Any,
) -> Run:
    """Record latents of saved checkpoints into a run store, in step order.

    Parameters
    ----------
    model : torch.nn.Module
        A model of the architecture the checkpoints were saved from (DDP or ``torch.compile``
        wrappers allowed: the weights go into the underlying module). Its own weights are put
        back when recording ends, also on error.
    checkpoints : str, os.PathLike, sequence or mapping
        A directory (its ``*.pt``, ``*.pth`` and ``*.ckpt`` files), one file, a sequence of
        paths or of in-memory state dicts, or a mapping ``{step: path or state dict}``. A file
        holds a state dict or a checkpoint dict with ``"state_dict"`` (Lightning),
        ``"model_state_dict"`` or ``"model"``; a common key prefix (``"model."`` of a
        LightningModule attribute, ``"module."`` of DDP, ``"_orig_mod."``) is stripped.
    layers, action, probe_inputs
        As for :class:`latentgeo.LatentRecorder`.
    store : str or os.PathLike
        Path or fsspec URL of the run store.
    steps : sequence of int, optional
        The training step of each checkpoint, in the order given (directories: file names in
        natural order). Default: parsed from the file names (``step=123``, ``step_123``,
        ``epoch=3-step=450``, or a trailing integer).
    map_location : str or torch.device, default "cpu"
        Passed to ``torch.load``.
    **recorder_kwargs
        Further arguments of :class:`latentgeo.LatentRecorder` (``labels``, ``mode``,
        ``reduce``, ``dtype``, ``batch_size``, ``device``). With ``mode="a"`` steps the store
        already holds are skipped without loading them.

    Returns
    -------
    latentgeo.store.Run
        The run store, opened for reading.

    Raises
    ------
    ValueError
        A name without a step (and no ``steps``), two checkpoints with one step, a checkpoint
        that does not fit the model, or a file ``torch.load(weights_only=True)`` refuses.

    Examples
    --------
    >>> run = latentgeo.record_checkpoints(model, "checkpoints/", ["conv1", "fc"], action,
    ...                                    x_probe, "runs/offline.zarr")  # doctest: +SKIP
    >>> run.steps  # doctest: +SKIP
    array([   0,  100,  200,  400])
    """
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    for reserved in ("schedule", "model"):
        if reserved in recorder_kwargs:
            raise TypeError(
                f"record_checkpoints() got {reserved}=: every checkpoint given is recorded, "
                f"choose them with checkpoints/steps instead"
            )
    entries = _collect(checkpoints, steps)

    from latentgeo.record import LatentRecorder, unwrap_model
    from latentgeo.store import open_run

    # The weights go where the recorder's hooks go: the module under DDP / torch.compile.
    target = unwrap_model(model)
    expected = set(target.state_dict())
    # Keep the caller's weights (on CPU, to not double device memory) and put them back.
    original = {k: v.detach().to("cpu", copy=True) for k, v in target.state_dict().items()}
    recorder = LatentRecorder(model, layers, action, probe_inputs, store, **recorder_kwargs)
    try:
        last = recorder.last_step
        for step, src, epoch in entries:
            if last is not None and step <= last:
                logger.debug("step %d is already in the store; skipped", step)
                continue
            obj, where = _load(src, map_location)
            state = _match_keys(_extract_state_dict(obj, where), expected, where)
            try:
                target.load_state_dict(state, strict=True)
            except RuntimeError as exc:  # e.g. size mismatch: name the file that caused it
                raise ValueError(f"checkpoint {where} does not fit the model: {exc}") from exc
            recorder.record(step, epoch=epoch)
            logger.info("recorded step %d from checkpoint %s", step, where)
        recorder.close()
    except BaseException:
        try:
            recorder.close()
        except Exception:  # the first error is the one to report
            logger.exception("closing the recorder after an error failed")
        raise
    finally:
        target.load_state_dict(original, strict=True)
    return open_run(store, storage_options=recorder_kwargs.get("storage_options"))
