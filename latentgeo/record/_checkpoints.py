"""Record latents offline, from checkpoints saved while a model trained.

``record_checkpoints`` walks saved weights in step order, loads each into the model and
records the same latents :class:`~latentgeo.LatentRecorder` would have recorded live at that
step. Checkpoints are loaded with ``torch.load(..., weights_only=True)``: a pickle that needs
arbitrary code to unpickle is refused, never executed.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import torch

from latentgeo.record._checkpoint_files import CHECKPOINT_SUFFIXES
from latentgeo.record._checkpoint_files import extract_state_dict as _extract_state_dict
from latentgeo.record._checkpoint_files import load_checkpoint as _load
from latentgeo.record._checkpoint_steps import collect_checkpoints, parse_step

if TYPE_CHECKING:
    from latentgeo.actions import Action
    from latentgeo.store import Run

__all__ = ["CHECKPOINT_SUFFIXES", "parse_step", "record_checkpoints"]

logger = logging.getLogger("latentgeo.record")


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


def _collect(checkpoints: Any, steps: Sequence[int] | None) -> list[tuple[int, Any, int | None]]:
    """(step, source, epoch) triples, validated and sorted by step (see _checkpoint_steps)."""
    return [(e.step, e.source, e.epoch) for e in collect_checkpoints(checkpoints, steps)]


def record_checkpoints(
    model: torch.nn.Module,
    checkpoints: Any,
    layers: str | Sequence[str],
    action: Action,
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
        A directory (its ``*.pt``, ``*.pth``, ``*.ckpt``, ``*.safetensors`` files and Hugging
        Face ``checkpoint-N/`` folders), one file or folder, a sequence of paths or of
        in-memory state dicts, or a mapping ``{step: path or state dict}``. A file holds a
        state dict or a checkpoint dict with ``"state_dict"`` (Lightning),
        ``"model_state_dict"`` or ``"model"``; a common key prefix (``"model."`` of a
        LightningModule attribute, ``"module."`` of DDP, ``"_orig_mod."``) is stripped.
    layers, action, probe_inputs
        As for :class:`latentgeo.LatentRecorder`.
    store : str or os.PathLike
        Path or fsspec URL of the run store.
    steps : sequence of int, optional
        The training step of each checkpoint, in the order given (directories: names in
        natural order); distinct non-negative integers. Default: read from each checkpoint's
        content where it has one (Lightning's ``global_step``; ``global_step`` of a Hugging
        Face folder's ``trainer_state.json``), else from its name by the documented patterns
        of :func:`parse_step` (``step=123``, ``step_123``, ``epoch=3-step=450``,
        ``checkpoint-500``, ``iter_100``, ...). A file of a directory with no step in content
        or name (``last-v1.ckpt``, ``resnet18.pt``, ``model_v2.pt``) is skipped with a log
        line; a file named explicitly without one is refused. Two files with one step are
        refused with both names unless they hold identical weights (Lightning's
        ``last.ckpt`` beside the step checkpoint it copies), when the one named for the step
        is kept.
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
        A file named explicitly without a step (and no ``steps``), a directory where no file
        has one, two checkpoints with one step and different weights, repeated ``steps``, a
        checkpoint that does not fit the model, or a file ``torch.load(weights_only=True)``
        refuses.

    Examples
    --------
    >>> # Not run here: needs a folder of saved checkpoints.
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

    from latentgeo.record._layers import unwrap_model
    from latentgeo.record._recorder import LatentRecorder
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
