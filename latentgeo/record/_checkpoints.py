"""Record latents offline, from checkpoints saved while a model trained.

``record_checkpoints`` walks saved weights in step order, loads each into the model and
records the same latents :class:`~latentgeo.LatentRecorder` would have recorded live at that
step. Checkpoints are loaded with ``torch.load(..., weights_only=True)``: a pickle that needs
arbitrary code to unpickle is refused, never executed.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch

from latentgeo.checkpoints._steps import collect_checkpoints, parse_step  # parse_step: old home
from latentgeo.checkpoints._walk import walk_entries

if TYPE_CHECKING:
    from latentgeo.actions import Action
    from latentgeo.store import Run

__all__ = ["parse_step", "record_checkpoints"]

logger = logging.getLogger("latentgeo.record")


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
    # Validated (steps, names, duplicates) before the store is created.
    entries = collect_checkpoints(checkpoints, steps)

    from latentgeo.record._recorder import LatentRecorder
    from latentgeo.store import open_run

    recorder = LatentRecorder(model, layers, action, probe_inputs, store, **recorder_kwargs)
    # The weights go where the recorder's hooks go (the module under DDP / torch.compile);
    # the walk puts the caller's weights back when it is closed, also on error.  Steps the
    # store already holds (mode="a") are skipped without loading them.
    walk = walk_entries(model, entries, map_location, after=recorder.last_step)
    try:
        for ckpt in walk:
            recorder.record(ckpt.step, epoch=ckpt.epoch)
            logger.info("recorded step %d from checkpoint %s", ckpt.step, ckpt.source)
        recorder.close()
    except BaseException:
        try:
            recorder.close()
        except Exception:  # the first error is the one to report
            logger.exception("closing the recorder after an error failed")
        raise
    finally:
        walk.close()
    return open_run(store, storage_options=recorder_kwargs.get("storage_options"))
