"""Saved checkpoints: found, ordered by training step, loaded safely, walked one at a time.

:func:`iter_checkpoints` loads each checkpoint of a folder (or a list, or ``{step: file}``)
into a model in step order, with the rules :func:`latentgeo.record_checkpoints` records by
(it walks checkpoints through this function) and the probes that follow an analysis over
training (:func:`probes.attribution_over_training` and its siblings) use.  Files are read
with ``torch.load(weights_only=True)``: a pickle that needs code to run is refused, never
executed.  :func:`parse_step` is the documented rule for reading a step from a file name.

Example
-------
>>> # Not run here: needs a model and a folder of its saved checkpoints.
>>> from latentgeo.checkpoints import iter_checkpoints
>>> for ckpt in iter_checkpoints(model, "checkpoints/"):  # doctest: +SKIP
...     print(ckpt.step, accuracy(model))
"""

from latentgeo.checkpoints._files import CHECKPOINT_SUFFIXES
from latentgeo.checkpoints._steps import parse_step
from latentgeo.checkpoints._walk import LoadedCheckpoint, iter_checkpoints

__all__ = ["CHECKPOINT_SUFFIXES", "LoadedCheckpoint", "iter_checkpoints", "parse_step"]
