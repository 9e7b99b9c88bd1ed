"""Analyses of the model itself at the recorded steps, while it trains (``analyses=``).

The live observer of the recorder (:class:`probes.LiveProbes`) sees only latents, in the
writer thread.  What needs the model at a step's weights -- :func:`probes.equivariance_attribution`
(interventions on layers, Lie derivatives), :func:`probes.irrep_ablation` (the loss with a
layer's activations projected) -- runs here, in the training thread, right after the recorder
took the step's latents: the probes call the model only through latentgeo's protected
model-call path (eval mode, modes, random state and batch-norm statistics restored), so
training is not changed.  The results, one per step, are written into the run store when the
recorder closes, stacked along ``step`` (:func:`probes.stack_steps`) under
``analysis/<name>``, exactly as :func:`probes.attribution_over_training` writes them from
checkpoint folders; ``latentgeo analyze`` reports ``attribution``, ``irrep_ablation`` and
``symmetry_discovery``.  Each step's scalar summary (``latentgeo/<name>/...``, see
:func:`latentgeo.pipeline._analyze_stored.step_scalars`) waits in :meth:`StepAnalyses.drain`
for the callback to hand it to the trainer's loggers at that step.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Mapping
from typing import Any

import torch

__all__ = ["StepAnalyses"]

logger = logging.getLogger("latentgeo.callbacks")


class StepAnalyses:
    """``{name: fn}`` run on the model at every recorded step, kept until the store closes.

    Parameters
    ----------
    analyses : mapping of str to callable, or None
        ``fn(model) -> xarray.Dataset``, e.g. ``functools.partial(
        probes.equivariance_attribution, action=action, inputs=x, layers=["conv1", "fc"])``
        (a :class:`probes.SymmetryDiscovery`, from :func:`probes.discover_symmetry`, is
        stored as its :meth:`~probes.SymmetryDiscovery.to_dataset`).
        The names are those of the store's ``analysis/<name>`` groups (``"attribution"``,
        ``"irrep_ablation"`` and ``"symmetry_discovery"`` get a section in ``latentgeo
        analyze``) and the middle part of the logged scalars' keys.

    Notes
    -----
    An analysis that fails at the first step it runs stops training with its error (a wrong
    layer name or input shows at once); one that fails later warns once and that step is left
    out, and training goes on.  A resumed run keeps the store's earlier steps of each name.

    Every result's scalar summary is queued for the trainer's loggers (:meth:`drain`):
    an attribution (variables ``contribution``, ``rest``, ``total``) as
    ``latentgeo/<name>/<layer>`` per layer (summed over elements), ``latentgeo/<name>/rest``
    and ``latentgeo/<name>/total``; an irrep ablation as ``latentgeo/<name>/loss`` and
    ``latentgeo/<name>/excluded_loss/<irrep>``; a discovery (stored layout of
    :func:`probes.discovery_over_training`) as ``latentgeo/<name>/invariant_dimension`` and
    ``latentgeo/<name>/equivariant_dimension``.  Other results are stored, not logged.

    Raises
    ------
    TypeError
        ``analyses`` not a mapping, a name not a string, a value not callable.
    ValueError
        An empty name or one with ``/``.
    """

    def __init__(self, analyses: Mapping[str, Callable[[torch.nn.Module], Any]] | None) -> None:
        analyses = {} if analyses is None else analyses
        if not isinstance(analyses, Mapping):
            raise TypeError(
                f"analyses must be a mapping {{name: fn(model) -> xarray.Dataset}}, got "
                f"{type(analyses).__name__}"
            )
        for name, fn in analyses.items():
            if not isinstance(name, str):
                raise TypeError(f"analysis names must be strings, got {name!r}")
            if not name or "/" in name:
                raise ValueError(f"analysis name {name!r} must be non-empty and without '/'")
            if not callable(fn):
                raise TypeError(f"analyses[{name!r}] must be callable fn(model), got {fn!r}")
        self._fns = dict(analyses)
        self._results: dict[str, list[tuple[int, Any]]] = {n: [] for n in self._fns}
        self._failed: set[str] = set()
        self._pending: list[tuple[int, dict[str, float]]] = []  # scalars not yet logged

    def __bool__(self) -> bool:
        return bool(self._fns)

    def run(self, model: torch.nn.Module, step: int) -> None:
        """Run every analysis on ``model`` (holding ``step``'s weights) and keep the result."""
        import xarray as xr

        from latentgeo.pipeline._analyze_stored import step_scalars
        from probes import SymmetryDiscovery

        scalars: dict[str, float] = {}
        for name, fn in self._fns.items():
            first = not self._results[name]
            try:
                ds = fn(model)
                if isinstance(ds, SymmetryDiscovery):  # probes.discover_symmetry's result
                    ds = ds.to_dataset()
                if not isinstance(ds, xr.Dataset):
                    raise TypeError(
                        f"analysis {name!r} returned a {type(ds).__name__}, expected an "
                        "xarray.Dataset (or a probes.SymmetryDiscovery)"
                    )
            except Exception as exc:
                if first and name not in self._failed:
                    raise
                if name not in self._failed:
                    warnings.warn(
                        f"analysis {name!r} failed at step {step} ({exc!r}); that step is "
                        "left out and training goes on (further failures are only logged)",
                        UserWarning,
                        stacklevel=2,
                    )
                self._failed.add(name)
                logger.debug("analysis %r failed at step %d", name, step, exc_info=True)
                continue
            self._results[name].append((int(step), ds))
            scalars.update(step_scalars(name, ds))
        if scalars:
            self._pending.append((int(step), scalars))

    def drain(self) -> list[tuple[int, dict[str, float]]]:
        """``(step, scalars)`` of the steps run since the last call, oldest first (forgotten
        here): what the callback hands to the trainer's loggers."""
        out, self._pending = self._pending, []
        return out

    def owns(self, key: str) -> bool:
        """Whether metric ``key`` is one of these analyses' scalars (``latentgeo/<name>/...``)."""
        return any(str(key).startswith(f"latentgeo/{name}/") for name in self._fns)

    def clear(self) -> None:
        """Forget the kept results (another rank writes them)."""
        for kept in self._results.values():
            kept.clear()

    def save(self, store: str, storage_options: Any = None) -> None:
        """Write the kept results into the run store, each name stacked along ``step``."""
        import probes
        from latentgeo.store import open_run

        todo = {n: kept for n, kept in self._results.items() if kept}
        if not todo:
            return
        run = open_run(store, storage_options=storage_options)
        for name, kept in todo.items():
            steps = [s for s, _ in kept]
            ds = probes.stack_steps([d for _, d in kept], steps, previous=run.load_analysis(name))
            run.save_analysis(name, ds)
            logger.info("wrote analysis/%s (%d steps) into %s", name, len(steps), store)
        self.clear()
