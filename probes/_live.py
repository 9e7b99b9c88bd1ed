"""Symmetry metrics live in the training logs: cheap probes at every recorded step.

A :class:`LiveProbes` object handed to :class:`latentgeo.LatentRecorder` (``live=``) or to the
Lightning / Hugging Face callbacks (the recorder knows it only as a
:class:`latentgeo.record.LiveObserver`: ``bind``, ``observe``, ``close``) computes, at each
recorded step, the invariance, the irrep spectrum and optionally a subsampled held-out linear-
probe R² from the latents the recorder already holds in host memory — in the recorder's writer
thread, after the checkpoint is written, so the training loop does not wait for it. Results are
named ``latentgeo/<layer>/invariance``, ``latentgeo/<layer>/spectrum/<irrep>`` and
``latentgeo/<layer>/r2`` and go

- to a TensorBoard ``SummaryWriter`` when one is given (``tensorboard=``), at the recorded
  step, from the writer thread;
- to the trainer's own loggers through the callbacks (Lightning: every
  ``trainer.loggers``' ``log_metrics`` at the recorded step, and ``trainer.callback_metrics``;
  Hugging Face: ``trainer.state.log_history``), drained from the training thread;
- to :attr:`LiveProbes.history` in every case (plain loops).

The values equal what :func:`probes.run` gives on the stored latents of that step (in the
storage dtype): invariance and spectrum come from the same group-Fourier core
(:mod:`latentgeo.groups._fourier`), for every kind of orbit the recorder writes — a finite
group's whole orbit, an orbit over some of its elements (invariance over them; the spectrum
on the subgroup they form or that ``subgroup=`` names, refused at :meth:`LiveProbes.bind`
otherwise), and a continuous group's sampled elements (the harmonic fit).
"""

from __future__ import annotations

import collections
import numbers
import threading
import warnings
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, cast

import numpy as np

if TYPE_CHECKING:
    from latentgeo.groups import FiniteGroup, Group

__all__ = ["LIVE_PROBES", "LiveProbes"]

#: The probes a live object can compute.
LIVE_PROBES = ("invariance", "spectrum", "r2")


class LiveProbes:
    """Cheap probes computed at each recorded step and logged while training runs.

    Parameters
    ----------
    probes : sequence of {"invariance", "spectrum", "r2"}
        What to compute, as ``probes.run`` computes it on the stored step.
        ``"invariance"``: the invariant share over the recorded orbit (a continuous group:
        the Haar-trivial share of the harmonic fit); ``"spectrum"``: the irrep shares (one
        metric per irrep; on ``subgroup`` or the subgroup a subset orbit forms); ``"r2"``
        fits :class:`probes.LinearProbe` (``n_null=0, n_bootstrap=0``) on at most
        ``r2_samples`` samples (the same ones at every step, :meth:`subsample`) and reports
        the mean held-out R² over the non-identity elements.
    r2_samples : int
        Subsample size of the ``"r2"`` probe (>= 8: the held-out split needs two samples on
        each side).  Fewer than the probe set warns once at :meth:`bind`.
    tensorboard : torch.utils.tensorboard.SummaryWriter, optional
        Written from the recorder's writer thread at the recorded step (``add_scalar``);
        :meth:`close` flushes it, closing it stays the caller's.
    prefix : str
        First part of every metric name.
    random_state : int
        Seed of the ``"r2"`` subsample and of its train / held-out split.
    subgroup : sequence, optional
        Names or element values of a finite subgroup the orbit records: the spectrum is
        computed on it (as ``probes.run(run, subgroup=...)``).
    max_degree : int, optional
        Continuous groups: the harmonic degree (as ``probes.run(..., max_degree=)``).

    Attributes
    ----------
    history : list of (int, dict of str to float)
        Every recorded step's live metrics, in recording order.

    Raises
    ------
    ValueError
        For an unknown probe name, a bad ``r2_samples`` or ``prefix``; from :meth:`bind`, for
        what the orbit cannot give (see there).

    Notes
    -----
    Invariance and spectrum are the group-Fourier core's (:func:`latentgeo.groups.
    finite_energies`, :func:`~latentgeo.groups.subset_energies`,
    :func:`~latentgeo.groups.harmonic_energies`): per-sample energies accumulated in float64
    over chunks of samples (no float64 copy of the block), the same function ``probes.run``
    calls.  The ``"r2"`` probe reads only its subsample.  A step whose latents hold NaN or
    inf gets NaN metrics.
    """

    def __init__(
        self,
        probes: Sequence[str] = ("invariance", "spectrum"),
        *,
        r2_samples: int = 256,
        tensorboard: Any = None,
        prefix: str = "latentgeo",
        random_state: int = 0,
        subgroup: Sequence[Any] | None = None,
        max_degree: int | None = None,
    ) -> None:
        if isinstance(probes, str):
            probes = (probes,)
        unknown = [p for p in probes if p not in LIVE_PROBES]
        if unknown or not probes:
            raise ValueError(
                f"live probes must be a non-empty subset of {LIVE_PROBES!r}, got {probes!r}"
            )
        if isinstance(r2_samples, bool) or not isinstance(r2_samples, numbers.Integral):
            raise TypeError(f"r2_samples must be an int, got {r2_samples!r}")
        if r2_samples < 8:
            raise ValueError(f"r2_samples must be >= 8, got {r2_samples!r}")
        if not isinstance(prefix, str) or not prefix or prefix.endswith("/"):
            raise ValueError(f"prefix must be a non-empty str not ending in '/', got {prefix!r}")
        if tensorboard is not None and not callable(getattr(tensorboard, "add_scalar", None)):
            raise TypeError(
                f"tensorboard must be a SummaryWriter (with add_scalar), got {tensorboard!r}"
            )
        self.probes: tuple[str, ...] = tuple(dict.fromkeys(probes))
        self.r2_samples: int = int(r2_samples)
        self.tensorboard: Any = tensorboard
        self.prefix: str = prefix
        self.random_state: int = random_state
        self.subgroup: Sequence[Any] | None = subgroup
        self.max_degree: int | None = max_degree
        self.history: list[tuple[int, dict[str, float]]] = []
        self._pending: collections.deque[tuple[int, dict[str, float]]] = collections.deque()
        self._lock: threading.Lock = threading.Lock()
        self._group: Group | None = None
        self._mode: str = ""  # "whole", "subset" or "continuous"
        self._sub: dict[str, Any] | None = None  # the subgroup the spectrum is computed on
        self._irreps: list[str] = []
        self._element_values: np.ndarray | None = None
        self._degree: int = 0

    def __repr__(self) -> str:
        return f"LiveProbes({list(self.probes)!r}, r2_samples={self.r2_samples})"

    # -- wiring -----------------------------------------------------------------------------
    def bind(
        self, group: Group, element_values: Any = None, *, n_samples: int | None = None
    ) -> None:
        """Attach the group and the orbit's element values the latents are recorded under.

        Called by :class:`~latentgeo.LatentRecorder` with ``action.group``,
        ``action.element_values`` and the probe set's size.  Everything asked for is either
        computable on this orbit from here on, or refused here.

        Raises
        ------
        TypeError
            For a group that is not a :class:`latentgeo.groups.Group`.
        ValueError
            For ``"spectrum"`` on an orbit over some elements of a finite group that neither
            form a subgroup nor contain the ``subgroup`` given; for ``subgroup`` on a
            continuous group; for a continuous group without element values.

        Warns
        -----
        latentgeo.groups.FallbackWarning
            When the harmonic degree falls below the default (continuous groups, from the
            core) or ``"r2"`` fits on a subsample (``r2_samples < n_samples``).
        """
        from latentgeo._errors import outside_stacklevel
        from latentgeo.groups import FallbackWarning, harmonic_names, resolve_max_degree

        if not hasattr(group, "is_finite"):
            raise TypeError(f"group must be a latentgeo.groups.Group, got {group!r}")
        values = None if element_values is None else np.asarray(element_values)
        spec = getattr(group, "spec", group)
        self._sub, self._irreps = None, []
        if not group.is_finite:
            if self.subgroup is not None:
                raise ValueError(
                    f"subgroup= names elements of a finite subgroup; {spec} is continuous"
                )
            if values is None:
                raise ValueError(
                    f"live probes of the continuous group {group!r} need the orbit's element "
                    "values (action.element_values)"
                )
            # One harmonic degree for the whole run (warns once here on a fallback).
            self._degree = resolve_max_degree(group, values, self.max_degree)
            self._mode = "continuous"
            self._irreps = harmonic_names(group, self._degree)
        else:
            finite = cast("FiniteGroup", group)
            whole = values is None or np.array_equal(values, np.arange(finite.order))
            self._mode = "whole" if whole else "subset"
            if "spectrum" in self.probes:
                self._bind_spectrum(finite, values, whole)
        if "r2" in self.probes and n_samples is not None and n_samples > self.r2_samples:
            warnings.warn(
                f"live 'r2' fits on {self.r2_samples} of the {n_samples} probe samples "
                f"(r2_samples={self.r2_samples}); probes.run fits on all of them: pass "
                f"r2_samples={n_samples} for the full-sample number",
                FallbackWarning,
                stacklevel=outside_stacklevel(),
            )
        self._element_values = values
        self._group = group

    def _bind_spectrum(self, group: FiniteGroup, values: np.ndarray | None, whole: bool) -> None:
        """The group (or subgroup) the live spectrum is computed on, or a ValueError why not."""
        from probes._subsets import resolve_subgroup, subgroup_of

        spec = getattr(group, "spec", group)
        positions = np.arange(group.order) if values is None else values.astype(np.int64)
        names = [str(group.elements[int(v)]) for v in positions]
        asked = self.subgroup
        if asked is None:
            if whole:
                self._irreps = [irrep.name for irrep in group.irreps()]
                return
            asked = names  # the recorded elements themselves, if they form a subgroup
        try:
            resolved = resolve_subgroup(group, names, positions, asked)
        except ValueError as err:
            resolved = str(err)
        if isinstance(resolved, str):
            raise ValueError(
                f"the live spectrum needs the orbit of a finite group or of a subgroup; this "
                f"action's orbit over {spec!r} runs over elements {names[:16]!r}: {resolved}. "
                "Pass subgroup=[...] (a subgroup they contain) or live probes without "
                "'spectrum' (invariance and r2 work on any orbit)"
            ) from None
        self._sub = resolved
        self._irreps = [irrep.name for irrep in subgroup_of(resolved).irreps()]

    def subsample(self, n_samples: int) -> np.ndarray:
        """The sorted sample indices the ``"r2"`` probe fits on, out of ``n_samples``."""
        m = min(int(n_samples), self.r2_samples)
        return np.sort(np.random.default_rng(self.random_state).permutation(n_samples)[:m])

    # -- computing --------------------------------------------------------------------------
    def compute(self, Z: Any) -> dict[str, float]:
        """The live metrics of one layer's orbit latents (names without prefix and layer).

        Parameters
        ----------
        Z : array of shape (n_elements, n_samples, n_units)
            Element 0 the identity, elements in the bound orbit's order.

        Returns
        -------
        dict of str to float
            ``invariance``, ``spectrum/<irrep>``, ``r2`` as requested (NaN for non-finite
            latents).

        Raises
        ------
        RuntimeError
            Before :meth:`bind`.
        ValueError
            For latents not of shape (n_elements, n_samples, n_units) or whose element axis
            does not match the bound orbit.
        """
        import torch

        from latentgeo.groups import finite_energies, harmonic_energies, subset_energies

        if self._group is None:
            raise RuntimeError("LiveProbes is not bound to a group; pass it to a LatentRecorder")
        src = torch.as_tensor(np.asarray(Z))
        if src.ndim != 3:
            raise ValueError(
                f"live latents must have shape (n_elements, n_samples, n_units), got "
                f"{tuple(src.shape)}"
            )
        n_el = src.shape[0]
        if self._element_values is not None and n_el != len(self._element_values):
            raise ValueError(
                f"live latents have {n_el} elements but the bound orbit has "
                f"{len(self._element_values)}"
            )
        names = self._names()
        nan = dict.fromkeys(names, float("nan"))
        out: dict[str, float] = {}
        group = self._group
        if self._mode == "continuous" and {"invariance", "spectrum"} & set(self.probes):
            energies = harmonic_energies(  # point estimates only: no element Gram matrix
                src, group, self._element_values, self._degree, element_sample=False
            )
            if not energies.finite:
                return nan
            out["invariance"] = energies.invariance()
            out.update(self._spectrum(energies))
        else:
            if "spectrum" in self.probes:
                if self._sub is not None:
                    Zs = src[torch.as_tensor(self._sub["positions"])]
                    from probes._subsets import subgroup_of

                    energies = finite_energies(Zs, subgroup_of(self._sub))
                else:
                    energies = finite_energies(src, cast("FiniteGroup", group))  # bound finite
                if not energies.finite:
                    return nan
                out.update(self._spectrum(energies))
                if self._mode == "whole" and self._sub is None:  # the trivial irrep's share
                    out["invariance"] = energies.invariance()
            if "invariance" in self.probes and "invariance" not in out:
                energies = subset_energies(src)  # the orbit mean over the recorded elements
                if not energies.finite:
                    return nan
                out["invariance"] = energies.invariance()
        if "r2" in self.probes:
            out["r2"] = self._r2(src)
        return {name: out[name] for name in names}

    def _spectrum(self, energies: Any) -> dict[str, float]:
        if "spectrum" not in self.probes:
            return {}
        shares = energies.shares().tolist()
        return {f"spectrum/{k}": float(v) for k, v in zip(energies.names, shares, strict=True)}

    def _names(self) -> list[str]:
        names: list[str] = []
        for probe in self.probes:
            if probe == "spectrum":
                names.extend(f"spectrum/{name}" for name in self._irreps)
            else:
                names.append(probe)
        return names

    def _r2(self, src: Any) -> float:
        import torch

        from probes._linear import LinearProbe

        if src.shape[0] < 2:
            return float("nan")
        sub = src[:, torch.as_tensor(self.subsample(src.shape[1]))].to(torch.float64)
        if not bool(torch.isfinite(sub.sum())):
            return float("nan")
        probe = LinearProbe(n_null=0, n_bootstrap=0, random_state=self.random_state)
        r2 = probe.fit(sub).r2_
        return float(np.mean(r2[1:]))

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
        step = int(step)
        with self._lock:
            self.history.append((step, metrics))
            self._pending.append((step, metrics))
        if self.tensorboard is not None:
            for name, value in metrics.items():
                self.tensorboard.add_scalar(name, value, global_step=step)
        return metrics

    def drain(self) -> list[tuple[int, dict[str, float]]]:
        """Results not yet handed to a trainer's logger, oldest first (and forget them)."""
        with self._lock:
            out = list(self._pending)
            self._pending.clear()
        return out

    def owns(self, name: str) -> bool:
        """Whether metric ``name`` is one of this object's (starts with ``<prefix>/``)."""
        return str(name).startswith(self.prefix + "/")

    def close(self) -> None:
        """Flush the TensorBoard writer (the writer itself stays the caller's)."""
        if self.tensorboard is not None:
            self.tensorboard.flush()
