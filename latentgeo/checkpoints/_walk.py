"""Walking saved checkpoints in step order, each loaded into the model in turn."""

from __future__ import annotations

import logging
from collections.abc import Generator, Mapping, Sequence
from typing import Any, NamedTuple

import torch

from latentgeo._layers import unwrap_model
from latentgeo.checkpoints._files import extract_state_dict, load_checkpoint
from latentgeo.checkpoints._steps import CheckpointEntry, collect_checkpoints

__all__ = ["LoadedCheckpoint", "iter_checkpoints", "match_keys", "walk_entries"]

logger = logging.getLogger("latentgeo.record")


class LoadedCheckpoint(NamedTuple):
    """The checkpoint whose weights the model holds while the iteration is at it."""

    step: int
    """Training step (from ``steps=``, the checkpoint's content or its name)."""
    epoch: int | None
    """Epoch where the content or name tells it, else None."""
    source: str
    """The file or folder it was read from (quoted), or ``"(in-memory state dict)"``."""


def match_keys(
    state: Mapping[str, torch.Tensor], expected: set[str], source: str
) -> dict[str, torch.Tensor]:
    """Map a checkpoint's keys onto the model's, stripping one common prefix if needed.

    Parameters
    ----------
    state : mapping of str to Tensor
        The checkpoint's state dict.
    expected : set of str
        The model's state-dict keys.
    source : str
        Where the checkpoint came from, for messages.

    Returns
    -------
    dict of str to Tensor
        Keyed exactly by ``expected``.

    Raises
    ------
    ValueError
        The keys do not match under any prefix, or match under several (a teacher and a
        student of one architecture: the caller chooses).
    """
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


def iter_checkpoints(
    model: torch.nn.Module,
    checkpoints: Any,
    steps: Sequence[int] | None = None,
    map_location: Any = "cpu",
    *,
    after: int | None = None,
) -> Generator[LoadedCheckpoint, None, None]:
    """Load saved checkpoints into ``model`` one at a time, in step order.

    The rules of :func:`latentgeo.record_checkpoints`, which walks checkpoints through this
    function: files are read with ``torch.load(weights_only=True)`` (a pickle that needs code
    to run is refused, never executed); a checkpoint dict's ``"state_dict"`` (Lightning),
    ``"model_state_dict"`` or ``"model"`` is used; one common key prefix (``"model."``,
    ``"module."``, ``"_orig_mod."``) is stripped; steps come from ``steps=``, the content
    (``global_step``) or the name (:func:`parse_step`), and files of a directory without one
    are skipped with a log line.

    Parameters
    ----------
    model : torch.nn.Module
        The architecture the checkpoints were saved from (DDP or ``torch.compile`` wrappers
        allowed: the weights go into the underlying module). Its own weights are put back
        when the iteration ends, is closed (``break`` out of a ``for`` loop closes it when the
        generator is released; use :func:`contextlib.closing` to restore at once) or fails.
    checkpoints : str, os.PathLike, sequence or mapping
        A directory, one file or Hugging Face folder, a sequence of paths or in-memory state
        dicts, or a mapping ``{step: path or state dict}``.
    steps : sequence of int, optional
        The step of each checkpoint, in the order given (directories: natural name order).
    map_location : str or torch.device, default "cpu"
        Passed to ``torch.load``.
    after : int, optional
        Skip, without loading them, checkpoints of steps ``<= after`` (a store that already
        holds them).

    Yields
    ------
    LoadedCheckpoint
        ``(step, epoch, source)``; while the body of the loop runs, ``model`` holds that
        checkpoint's weights.

    Raises
    ------
    TypeError
        ``model`` is not a module, or ``checkpoints`` of the wrong type.
    ValueError
        As :func:`latentgeo.record_checkpoints`: no checkpoint, a named file without a step,
        two checkpoints of one step with different weights, a checkpoint that does not fit
        the model, a file ``torch.load(weights_only=True)`` refuses.
    FileNotFoundError
        A path that does not exist.

    Examples
    --------
    >>> # Not run here: needs a model and a folder of its saved checkpoints.
    >>> for ckpt in iter_checkpoints(model, "checkpoints/"):  # doctest: +SKIP
    ...     print(ckpt.step, evaluate(model))
    """
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    entries = collect_checkpoints(checkpoints, steps)  # validated before anything is loaded
    return walk_entries(model, entries, map_location, after)


def walk_entries(
    model: torch.nn.Module,
    entries: Sequence[CheckpointEntry],
    map_location: Any = "cpu",
    after: int | None = None,
) -> Generator[LoadedCheckpoint, None, None]:
    """:func:`iter_checkpoints` of entries already collected (``collect_checkpoints``), for
    a caller that validates the checkpoints before it knows ``after``."""
    target = unwrap_model(model)
    expected = set(target.state_dict())
    # Keep the caller's weights (on CPU, to not double device memory) and put them back.
    original = {k: v.detach().to("cpu", copy=True) for k, v in target.state_dict().items()}
    try:
        for entry in entries:
            if after is not None and entry.step <= after:
                logger.debug("step %d is already in the store; skipped", entry.step)
                continue
            obj, where = load_checkpoint(entry.source, map_location)
            state = match_keys(extract_state_dict(obj, where), expected, where)
            try:
                target.load_state_dict(state, strict=True)
            except RuntimeError as exc:  # e.g. size mismatch: name the file that caused it
                raise ValueError(f"checkpoint {where} does not fit the model: {exc}") from exc
            yield LoadedCheckpoint(entry.step, entry.epoch, where)
    finally:
        target.load_state_dict(original, strict=True)
