"""Which checkpoints to record, and at which training step: discovery, steps, order.

A checkpoint's step is read, in this order of precedence:

1. ``steps=`` given by the caller (or the keys of a ``{step: source}`` mapping);
2. the checkpoint's content: ``global_step`` (then ``step``) of a checkpoint dict, as
   Lightning's ``Trainer.save_checkpoint`` writes it, or ``global_step`` of the
   ``trainer_state.json`` in a Hugging Face ``Trainer`` checkpoint folder (``checkpoint-N/``);
3. the file name, by the documented patterns of :func:`parse_step` only. A name without one
   of them (``last.ckpt``, ``last-v1.ckpt``, ``resnet18.pt``, ``model_v2.pt``, ``epoch=3.ckpt``)
   has no step: such a file is skipped with a log line when it was found in a directory, and
   refused when it was named explicitly. A number that is not a step (a model's depth, a
   version counter, an epoch) is never read as one.

Two checkpoints with one step are refused with both names, unless they hold identical weights
(Lightning's ``last.ckpt`` next to the step checkpoint it copies): then the one whose name
holds the step is kept and the other skipped with a log line.

Files are read by :mod:`latentgeo.checkpoints._files` (``torch.load(weights_only=True,
mmap=True)``): reading a step does not read the tensors' data.
"""

from __future__ import annotations

import json
import logging
import numbers
import operator
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from latentgeo.checkpoints._files import (
    CHECKPOINT_SUFFIXES,
    HF_TRAINER_STATE,
    extract_state_dict,
    is_hf_checkpoint_dir,
    load_checkpoint,
)

__all__ = [
    "CheckpointEntry",
    "collect_checkpoints",
    "content_step",
    "parse_epoch",
    "parse_step",
]

logger = logging.getLogger("latentgeo.record")


# Name patterns, most specific first. A keyword starts the name or follows a character that is
# not a letter or digit ("epoch=0-step=4", "model-step-77"); the number ends the name or is
# followed by a non-digit. Keywords other than "step" need a separator before the number, so
# "resnet18" / "model_v2" / "ckpt_epoch_3" never match.
_STEP_RULES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("step", re.compile(r"(?:^|[^a-z0-9])(?:global[_\-]?)?step[=_\-.]?(\d+)(?!\d)", re.I)),
    ("iteration", re.compile(r"(?:^|[^a-z0-9])iter(?:ation)?[=_\-.](\d+)(?!\d)", re.I)),
    ("checkpoint", re.compile(r"(?:^|[^a-z0-9])(?:checkpoint|ckpt)[=_\-.](\d+)(?!\d)", re.I)),
)
_EPOCH_PATTERN = re.compile(r"(?:^|[^a-z0-9])epoch[=_\-]?(\d+)(?!\d)", re.I)
# Lightning's ModelCheckpoint appends "-v1", "-v2", ... when a file name is taken.
_VERSION_SUFFIX = re.compile(r"-v\d+$", re.I)


def _stem(name: str | os.PathLike[str]) -> str:
    stem = Path(os.fspath(name)).name
    for suffix in CHECKPOINT_SUFFIXES:
        if stem.lower().endswith(suffix):
            return stem[: -len(suffix)]
    return stem


def parse_step(name: str | os.PathLike[str]) -> int | None:
    """Parse the training step from a checkpoint's file or folder name.

    Only these patterns are read (case-insensitive; a Lightning version suffix ``-vN`` is
    dropped first):

    * ``step=N``, ``step_N``, ``step-N``, ``stepN``, ``global_stepN``, ``global_step=N``
      (Lightning's ``epoch=E-step=N``, DeepSpeed's ``global_stepN``);
    * ``iter_N``, ``iter-N``, ``iteration_N`` (mmengine / detectron-style loops);
    * ``checkpoint-N``, ``checkpoint_N``, ``ckpt_N``, ``ckpt.N`` (Hugging Face ``Trainer``
      folders, Orbax, plain loops).

    When several keywords occur, ``step`` wins over ``iter`` over ``checkpoint``. Any other
    number (``resnet18``, ``model_v2``, ``last-v1``, ``epoch=3``) is not a step.

    Parameters
    ----------
    name : str or os.PathLike
        File name or path; only the last component without its suffix is read.

    Returns
    -------
    int or None
        The step, or None when the name holds none.

    Examples
    --------
    >>> parse_step("epoch=3-step=450.ckpt"), parse_step("step_123.pt"), parse_step("checkpoint-7")
    (450, 123, 7)
    >>> [parse_step(n) for n in ("last-v1.ckpt", "resnet18.pt", "model_v2.pt", "epoch=3.ckpt")]
    [None, None, None, None]
    """
    stem = _VERSION_SUFFIX.sub("", _stem(name))
    for _, pattern in _STEP_RULES:
        matches = pattern.findall(stem)
        if matches:
            return int(matches[-1])
    return None


def parse_epoch(name: str | os.PathLike[str]) -> int | None:
    """The epoch of a Lightning-style name (``epoch=E``), or None."""
    matches = _EPOCH_PATTERN.findall(_VERSION_SUFFIX.sub("", _stem(name)))
    return int(matches[-1]) if matches else None


def _as_count(value: Any) -> int | None:
    """A non-negative integer stored in a checkpoint (int, integral float or 0-d tensor)."""
    if isinstance(value, torch.Tensor) and value.numel() == 1 and not value.is_floating_point():
        value = int(value.item())
    if isinstance(value, bool):
        return None
    if isinstance(value, numbers.Integral) and int(value) >= 0:
        return int(value)
    return None


def content_step(obj: Any) -> int | None:
    """The step a loaded checkpoint object records about itself, or None.

    Parameters
    ----------
    obj : Any
        What ``torch.load`` returned. A mapping with an integer ``"global_step"`` (Lightning's
        checkpoint dict) or, failing that, ``"step"`` (common in hand-written loops) has one;
        a bare state dict has none.

    Returns
    -------
    int or None
    """
    if not isinstance(obj, Mapping):
        return None
    for key in ("global_step", "step"):
        if key in obj:
            step = _as_count(obj[key])
            if step is not None:
                return step
    return None


def _content_epoch(obj: Any) -> int | None:
    if isinstance(obj, Mapping) and "epoch" in obj:
        return _as_count(obj["epoch"])
    return None


def _hf_trainer_state(path: Path) -> tuple[int | None, int | None]:
    """(global_step, integral epoch) from a checkpoint folder's ``trainer_state.json``."""
    state_file = path / HF_TRAINER_STATE
    if not state_file.is_file():
        return None, None
    try:
        state = json.loads(state_file.read_text())
    except (OSError, ValueError) as exc:
        raise ValueError(f"cannot read {os.fspath(state_file)!r} as JSON: {exc}") from exc
    if not isinstance(state, Mapping):
        return None, None
    step = _as_count(state.get("global_step"))
    epoch = state.get("epoch")
    # transformers stores a fractional epoch (1.5 = half-way through the second epoch).
    whole = int(epoch) if isinstance(epoch, float) and epoch.is_integer() else _as_count(epoch)
    return step, whole


@dataclass(frozen=True)
class CheckpointEntry:
    """One checkpoint to record: its step, where it comes from, its epoch if known."""

    step: int
    source: Any
    epoch: int | None
    origin: str  # "steps=", "content" or "name": where the step came from


def _describe(src: Any) -> str:
    return repr(os.fspath(src)) if isinstance(src, (str, os.PathLike)) else "an in-memory dict"


def _natural_key(path: Path) -> list[Any]:
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", path.name)]


def list_checkpoint_dir(directory: Path) -> list[Path]:
    """Checkpoints in a directory, in natural name order.

    Files with a suffix of :data:`CHECKPOINT_SUFFIXES` and Hugging Face checkpoint folders
    (``checkpoint-N/`` with weights inside); a directory that is itself such a folder is one
    checkpoint.
    """
    if is_hf_checkpoint_dir(directory):
        return [directory]
    found = [
        p
        for p in directory.iterdir()
        if (p.is_file() and p.suffix.lower() in CHECKPOINT_SUFFIXES) or is_hf_checkpoint_dir(p)
    ]
    if not found:
        raise ValueError(
            f"no checkpoints ({', '.join('*' + s for s in CHECKPOINT_SUFFIXES)} files or Hugging "
            f"Face checkpoint-N/ folders) in directory {os.fspath(directory)!r}"
        )
    return sorted(found, key=_natural_key)


def _validate_steps(steps: Sequence[Any], n_sources: int) -> list[int]:
    if isinstance(steps, (str, bytes)) or not isinstance(steps, Iterable):
        raise TypeError(f"steps must be a sequence of integers, got {steps!r}")
    steps = list(steps)
    if len(steps) != n_sources:
        raise ValueError(f"steps has {len(steps)} entries but there are {n_sources} checkpoints")
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
    seen: dict[int, int] = {}
    for i, value in enumerate(parsed):
        if value in seen:
            raise ValueError(
                f"steps must be distinct: step {value} is given at positions {seen[value]} and {i}"
            )
        seen[value] = i
    return parsed


def _discover_step(src: Any) -> tuple[int | None, int | None, str]:
    """(step, epoch, origin) of one path: content first, then the name."""
    path = Path(os.fspath(src))
    name_step, name_epoch = parse_step(path), parse_epoch(path)
    if path.is_dir():
        step, epoch = _hf_trainer_state(path)
    else:
        obj, _ = load_checkpoint(path, map_location="cpu")
        step, epoch = content_step(obj), _content_epoch(obj)
        del obj
    if step is None:
        return name_step, name_epoch, "name"
    if name_step is not None and name_step != step:
        logger.warning(
            "checkpoint %r is named for step %d but records global step %d; using %d",
            os.fspath(path),
            name_step,
            step,
            step,
        )
    return step, (epoch if epoch is not None else name_epoch), "content"


def _same_weights(a: Any, b: Any) -> bool:
    if os.path.samefile(a, b):  # e.g. Lightning's save_last="link": a symlink to the step file
        return True
    sa = extract_state_dict(*load_checkpoint(a, "cpu"))
    sb = extract_state_dict(*load_checkpoint(b, "cpu"))
    if set(sa) != set(sb):
        return False
    return all(
        sa[k].shape == sb[k].shape and sa[k].dtype == sb[k].dtype and torch.equal(sa[k], sb[k])
        for k in sa
    )


def _resolve_duplicates(step: int, group: list[CheckpointEntry]) -> CheckpointEntry:
    """One entry for a step held by several files with identical weights, else refuse."""
    # Prefer a file whose name holds the step (the one a user would pick), then one without a
    # Lightning version suffix, then name order.
    ranked = sorted(
        group,
        key=lambda e: (
            parse_step(e.source) != step,
            _VERSION_SUFFIX.search(_stem(e.source)) is not None,
            _natural_key(Path(os.fspath(e.source))),
        ),
    )
    keep = ranked[0]
    for other in ranked[1:]:
        if not _same_weights(keep.source, other.source):
            raise ValueError(
                f"two checkpoints have step {step} but hold different weights: "
                f"{_describe(keep.source)} and {_describe(other.source)} (e.g. two runs saved "
                f"into one folder); keep one of them, or pass a list of files (and steps=)"
            )
        logger.info(
            "checkpoint %s holds step %d with the same weights as %s; skipped",
            _describe(other.source),
            step,
            _describe(keep.source),
        )
    return keep


def collect_checkpoints(
    checkpoints: Any, steps: Sequence[int] | None = None
) -> list[CheckpointEntry]:
    """The checkpoints to record, validated and sorted by step.

    Parameters
    ----------
    checkpoints : str, os.PathLike, sequence or mapping
        A directory (its checkpoint files and Hugging Face ``checkpoint-N/`` folders), one
        file or folder, a sequence of those or of in-memory state dicts, or a mapping
        ``{step: path or state dict}``.
    steps : sequence of int, optional
        The step of each checkpoint in the order given (directories: natural name order);
        distinct non-negative integers. Overrides steps read from contents and names.

    Returns
    -------
    list of CheckpointEntry
        Ascending by step.

    Raises
    ------
    ValueError
        No checkpoint, a named file without a step, a directory where no file has one,
        two checkpoints with one step and different weights, bad ``steps``.
    TypeError
        ``checkpoints`` or ``steps`` of the wrong type.
    FileNotFoundError
        A path that does not exist.
    """
    from_directory = False
    if isinstance(checkpoints, (str, os.PathLike)):
        path = Path(os.fspath(checkpoints))
        if path.is_dir():
            sources: list[Any] = list(list_checkpoint_dir(path))
            from_directory = True
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
    elif isinstance(checkpoints, Iterable) and not isinstance(checkpoints, (Mapping, bytes)):
        sources = list(checkpoints)
    else:
        raise TypeError(
            f"checkpoints must be a directory, a file, a sequence of paths or state dicts, or "
            f"a mapping {{step: path or state dict}}, got {checkpoints!r}"
        )
    if not sources:
        raise ValueError("checkpoints is empty: there is nothing to record")

    entries: list[CheckpointEntry] = []
    if steps is not None:
        for step, src in zip(_validate_steps(steps, len(sources)), sources):
            is_path = isinstance(src, (str, os.PathLike))
            epoch = parse_epoch(src) if is_path else None
            entries.append(CheckpointEntry(step, src, epoch, "steps="))
    else:
        skipped: list[str] = []
        for src in sources:
            if not isinstance(src, (str, os.PathLike)):
                raise ValueError(
                    "in-memory state dicts carry no file name to read a step from: pass steps= "
                    "or a mapping {step: state dict}"
                )
            if not Path(os.fspath(src)).exists():
                raise FileNotFoundError(f"checkpoint {os.fspath(src)!r} does not exist")
            found, epoch, origin = _discover_step(src)
            if found is not None:
                entries.append(CheckpointEntry(found, src, epoch, origin))
                continue
            if not from_directory:
                raise ValueError(
                    f"cannot tell the training step of checkpoint {Path(os.fspath(src)).name!r}: "
                    f"its content has no 'global_step' and its name none of the patterns "
                    f"'step=N', 'step_N', 'epoch=E-step=N', 'checkpoint-N', 'iter_N' (a number "
                    f"such as a version or a model's depth is not read as a step); pass steps= "
                    f"explicitly or remove the file from the list"
                )
            skipped.append(Path(os.fspath(src)).name)
            logger.warning(
                "skipped %r: neither its content nor its name holds a training step (pass a "
                "list of files with steps= to record it)",
                os.fspath(src),
            )
        if not entries:
            raise ValueError(
                f"no checkpoint in {os.fspath(checkpoints)!r} has a training step in its content "
                f"or name (skipped {skipped!r}); pass the files with steps= explicitly"
            )

    by_step: dict[int, list[CheckpointEntry]] = {}
    for entry in entries:
        by_step.setdefault(entry.step, []).append(entry)
    out = []
    for step in sorted(by_step):
        group = by_step[step]
        if len(group) == 1:
            out.append(group[0])
            continue
        if not all(isinstance(e.source, (str, os.PathLike)) for e in group):
            raise ValueError(
                f"two checkpoints have step {step}: "
                f"{' and '.join(_describe(e.source) for e in group)}; keep one of them"
            )
        out.append(_resolve_duplicates(step, group))
    return out
