"""Symmetry metrics live in the training logs: cheap probes at every recorded step.

A :class:`LiveProbes` object handed to :class:`latentgeo.LatentRecorder` (``live=``) or to the
Lightning / Hugging Face callbacks computes, at each recorded step, the invariance, the irrep
spectrum and optionally a subsampled held-out linear-probe R² from the latents the recorder
already holds in host memory — in the recorder's writer thread, after the checkpoint is
written, so the training loop does not wait for it.  Results are named
``latentgeo/<layer>/invariance``, ``latentgeo/<layer>/spectrum/<irrep>`` and
``latentgeo/<layer>/r2`` and go

- to a TensorBoard ``SummaryWriter`` when one is given (``tensorboard=``), at the recorded
  step, from the writer thread;
- to the trainer's own loggers through the callbacks (Lightning: every
  ``trainer.loggers``' ``log_metrics`` at the recorded step, and ``trainer.callback_metrics``;
  Hugging Face: ``trainer.state.log_history``), drained from the training thread;
- to :attr:`LiveProbes.history` in every case (plain loops).

The values equal what :func:`probes.invariance`, :func:`probes.orbit_spectrum` and
:class:`probes.LinearProbe` give on the stored latents of that step (in the storage dtype).
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

__all__ = ["LIVE_PROBES", "LiveProbes", "as_live"]

#: The probes a live object can compute.
LIVE_PROBES = ("invariance", "spectrum", "r2")


class LiveProbes:
    """Cheap probes computed at each recorded step and logged while training runs.

    Parameters
    ----------
    probes : sequence of {"invariance", "spectrum", "r2"}
        What to compute.  ``"r2"`` fits :class:`probes.LinearProbe` (no null, no bootstrap) on
        at most ``r2_samples`` samples drawn once, and reports the mean held-out R² over the
        non-identity elements.
    r2_samples : int
        Subsample size of the ``"r2"`` probe.
    tensorboard : torch.utils.tensorboard.SummaryWriter, optional
        Written from the recorder's writer thread at the recorded step.
    prefix : str
        First part of every metric name.
    random_state : int
        Seed of the ``"r2"`` subsample and split.

    Attributes
    ----------
    history : list of (int, dict of str to float)
        Every recorded step's live metrics, in recording order.

    Raises
    ------
    ValueError
        For an unknown probe name or a non-positive ``r2_samples``.

    Examples
    --------
    >>> live = LiveProbes(["invariance", "spectrum"])
    >>> rec = LatentRecorder(model, ["fc"], action, x, store, live=live)  # doctest: +SKIP
    """

    def __init__(
        self,
        probes: Sequence[str] = ("invariance", "spectrum"),
        *,
        r2_samples: int = 256,
        tensorboard: Any = None,
        prefix: str = "latentgeo",
        random_state: int = 0,
    ) -> None:
        if isinstance(probes, str):
            probes = (probes,)
        unknown = [p for p in probes if p not in LIVE_PROBES]
        if unknown or not probes:
            raise ValueError(
                f"live probes must be a non-empty subset of {LIVE_PROBES!r}, got {probes!r}"
            )
        if isinstance(r2_samples, bool) or not isinstance(r2_samples, int) or r2_samples < 4:
            raise ValueError(f"r2_samples must be an int >= 4, got {r2_samples!r}")
        if not isinstance(prefix, str) or not prefix:
            raise ValueError(f"prefix must be a non-empty str, got {prefix!r}")
        self.probes = tuple(probes)
        self.r2_samples = r2_samples
        self.tensorboard = tensorboard
        self.prefix = prefix
        self.random_state = random_state
        self.history: list[tuple[int, dict[str, float]]] = []
        self._pending: collections.deque[tuple[int, dict[str, float]]] = collections.deque()
        self._lock = threading.Lock()
        self._group: Any = None
        self._element_values: Any = None
        self._subsample: np.ndarray | None = None

    def __repr__(self) -> str:
        return f"LiveProbes({list(self.probes)!r}, r2_samples={self.r2_samples})"

    # -- wiring -----------------------------------------------------------------------------
    def bind(self, group: Any, element_values: Any = None) -> None:
        """Attach the group (and the orbit's element values) the latents are recorded under.

        Called by the recorder; the spectrum of a continuous group needs the element values.
        """
        self._group = group
        self._element_values = None if element_values is None else np.asarray(element_values)

    # -- computing --------------------------------------------------------------------------
    def compute(self, Z: Any) -> dict[str, float]:
        """The live metrics of one layer's orbit latents (names without prefix and layer).

        Parameters
        ----------
        Z : array of shape (n_elements, n_samples, n_units)

        Returns
        -------
        dict of str to float
            ``invariance``, ``spectrum/<irrep>``, ``r2`` as requested.
        """
        import probes

        if self._group is None:
            raise RuntimeError("LiveProbes is not bound to a group; pass it to a LatentRecorder")
        Z = np.asarray(Z, dtype=np.float64)
        out: dict[str, float] = {}
        if "invariance" in self.probes and self._group.is_finite:
            out["invariance"] = float(probes.invariance(Z))
        if "spectrum" in self.probes:
            kwargs: dict[str, Any] = {}
            if not self._group.is_finite and self._element_values is not None:
                kwargs["elements"] = self._element_values
            spec = probes.orbit_spectrum(Z, self._group, **kwargs)
            for name, value in zip(spec.irrep.values, spec.values, strict=True):
                out[f"spectrum/{name}"] = float(value)
            if not self._group.is_finite and "invariance" in self.probes:
                out["invariance"] = float(spec.values[0])  # the Haar-trivial share
        if "r2" in self.probes:
            n = Z.shape[1]
            if self._subsample is None or self._subsample.max(initial=-1) >= n:
                rng = np.random.default_rng(self.random_state)
                self._subsample = np.sort(rng.permutation(n)[: min(n, self.r2_samples)])
            probe = probes.LinearProbe(n_null=0, n_bootstrap=0, random_state=self.random_state)
            r2 = probe.fit(Z[:, self._subsample]).r2_
            out["r2"] = float(np.mean(r2[1:])) if r2.size > 1 else float("nan")
        return out

    def observe(self, step: int, latents: Mapping[str, Any]) -> dict[str, float]:
        """Compute every layer's live metrics for ``step`` and send them to the sinks.

        Parameters
        ----------
        step : int
        latents : mapping of layer name to array of shape (n_elements, n_samples, n_units)

        Returns
        -------
        dict of str to float
            Full metric names (``<prefix>/<layer>/<metric>``) to values.
        """
        metrics: dict[str, float] = {}
        for layer, Z in latents.items():
            for name, value in self.compute(Z).items():
                metrics[f"{self.prefix}/{layer}/{name}"] = value
        with self._lock:
            self.history.append((int(step), metrics))
            self._pending.append((int(step), metrics))
        if self.tensorboard is not None:
            for name, value in metrics.items():
                self.tensorboard.add_scalar(name, value, global_step=int(step))
        return metrics

    def drain(self) -> list[tuple[int, dict[str, float]]]:
        """Results not yet handed to a trainer's logger, oldest first (and forget them)."""
        with self._lock:
            out = list(self._pending)
            self._pending.clear()
        return out

    def close(self) -> None:
        """Flush the TensorBoard writer (the writer itself stays the caller's)."""
        if self.tensorboard is not None:
            self.tensorboard.flush()


def as_live(live: Any) -> LiveProbes | None:
    """``None``, a :class:`LiveProbes`, or probe names (``["invariance", "r2"]``).

    Raises
    ------
    TypeError
        For anything else.
    """
    if live is None or isinstance(live, LiveProbes):
        return live
    if isinstance(live, str) or (
        isinstance(live, Sequence) and all(isinstance(p, str) for p in live)
    ):
        return LiveProbes(live)
    raise TypeError(f"live must be None, a LiveProbes or a list of probe names, got {live!r}")
