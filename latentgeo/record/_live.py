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
import math
import numbers
import threading
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

__all__ = ["LIVE_PROBES", "LiveProbes", "as_live"]

#: The probes a live object can compute.
LIVE_PROBES = ("invariance", "spectrum", "r2")
#: Values converted to float64 at a time when accumulating the orbit's Gram matrix (2 MiB:
#: cache-sized chunks ran 1.3-5x faster than 8 MiB or 32 MiB ones on a (8, 512, 4096) block).
_CHUNK_VALUES = 2**18


class LiveProbes:
    """Cheap probes computed at each recorded step and logged while training runs.

    Parameters
    ----------
    probes : sequence of {"invariance", "spectrum", "r2"}
        What to compute.  ``"invariance"`` is :func:`probes.invariance`; ``"spectrum"`` is
        :func:`probes.orbit_spectrum` (one metric per irrep); ``"r2"`` fits
        :class:`probes.LinearProbe` (``n_null=0, n_bootstrap=0``) on at most ``r2_samples``
        samples (the same ones at every step, :meth:`subsample`) and reports the mean held-out
        R² over the non-identity elements.
    r2_samples : int
        Subsample size of the ``"r2"`` probe (>= 8: the held-out split needs two samples on
        each side).
    tensorboard : torch.utils.tensorboard.SummaryWriter, optional
        Written from the recorder's writer thread at the recorded step (``add_scalar``);
        :meth:`close` flushes it, closing it stays the caller's.
    prefix : str
        First part of every metric name.
    random_state : int
        Seed of the ``"r2"`` subsample and of its train / held-out split.

    Attributes
    ----------
    history : list of (int, dict of str to float)
        Every recorded step's live metrics, in recording order.

    Raises
    ------
    ValueError
        For an unknown probe name, a bad ``r2_samples`` or ``prefix``; from :meth:`bind`, for
        a spectrum over an orbit that is not the whole group in element order.

    Notes
    -----
    For a finite group, invariance and spectrum are computed from the (n_elements,
    n_elements) Gram matrix of the centred orbit signals, accumulated in float64 over chunks
    of samples (no float64 copy of the whole block; the same quantities as
    :func:`probes.invariance` and :func:`probes.orbit_spectrum`, to float64 rounding); for a
    continuous group through the probes' own functions on a centred float64 copy.  The
    ``"r2"`` probe reads only its subsample.  A step whose latents hold NaN or inf gets NaN
    metrics.
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
        self.history: list[tuple[int, dict[str, float]]] = []
        self._pending: collections.deque[tuple[int, dict[str, float]]] = collections.deque()
        self._lock: threading.Lock = threading.Lock()
        self._group: Any = None
        self._irreps: list[str] | None = None
        self._element_values: np.ndarray | None = None
        self._degree: int = 0

    def __repr__(self) -> str:
        return f"LiveProbes({list(self.probes)!r}, r2_samples={self.r2_samples})"

    # -- wiring -----------------------------------------------------------------------------
    def bind(self, group: Any, element_values: Any = None) -> None:
        """Attach the group and the orbit's element values the latents are recorded under.

        Called by :class:`~latentgeo.LatentRecorder` with ``action.group`` and
        ``action.element_values``.

        Raises
        ------
        ValueError
            When ``"spectrum"`` is asked for an orbit that is not the whole finite group in
            its element order (a subset of elements), or, for a continuous group, not the
            uniform grid ``2πk/n`` the spectrum assumes.
        """
        if not hasattr(group, "is_finite"):
            raise TypeError(f"group must be a latentgeo.groups.Group, got {group!r}")
        values = None if element_values is None else np.asarray(element_values)
        if "spectrum" in self.probes and values is not None and group.is_finite:
            whole = np.arange(group.order)
            if values.shape != whole.shape or not np.array_equal(values, whole):
                raise ValueError(
                    f"the live spectrum needs an orbit over the whole group "
                    f"{getattr(group, 'spec', group)!r} in element order; this action's orbit "
                    f"runs over elements {values.tolist()[:16]!r}: pass live=['invariance'] "
                    "(or ['invariance', 'r2'])"
                )
        if not group.is_finite:
            if values is None:
                raise ValueError(
                    f"live probes of the continuous group {group!r} need the orbit's element "
                    "values (action.element_values)"
                )
            from probes._harmonic import resolve_max_degree

            # One harmonic degree for the whole run: the largest the sampled elements support.
            self._degree = resolve_max_degree(group, values, None)
        self._element_values = values
        self._group = group
        self._irreps = None  # names of the spectrum metrics, from this group

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
            For latents not of shape (n_elements, n_samples, n_units).
        """
        import torch

        if self._group is None:
            raise RuntimeError("LiveProbes is not bound to a group; pass it to a LatentRecorder")
        src = torch.as_tensor(np.asarray(Z))
        if src.ndim != 3:
            raise ValueError(
                f"live latents must have shape (n_elements, n_samples, n_units), got "
                f"{tuple(src.shape)}"
            )
        names = self._names()
        out: dict[str, float] = {}
        if "invariance" in self.probes or "spectrum" in self.probes:
            if self._group.is_finite:
                out.update(self._from_gram(src))
            else:
                out.update(self._from_tensor(src))
            if any(math.isnan(v) for v in out.values()):
                return dict.fromkeys(names, float("nan"))
        if "r2" in self.probes:
            out["r2"] = self._r2(src)
        return {name: out[name] for name in names}

    def _from_gram(self, src: Any) -> dict[str, float]:
        """Invariance and spectrum of a finite group's orbit from the centred Gram matrix.

        ``invariance_of_centred`` and ``spectrum_of_centred`` (``probes._spectrum``) read a
        float64 copy of the whole block centred by its grand mean; both are functions of the
        (n_elements, n_elements) Gram matrix of the centred orbit signals alone, which is
        accumulated here over chunks of samples converted to float64 one at a time (no full
        copy).  Centring is folded in exactly: with ``Y = Z - c`` (``c`` the first chunk's
        mean, for conditioning), ``S[g] = Σ_i Y[g, i]`` and ``m = Σ_g S[g] / (|G| n)``,
        ``Gc[g, h] = YᵀY[g, h] - m·S[g] - m·S[h] + n m·m``.
        """
        import torch

        from latentgeo.groups._isotypic import isotypic_energies
        from probes._validation import check_group_order

        f64 = torch.float64
        G, n, d = src.shape
        check_group_order(G, self._group)
        chunk = max(1, _CHUNK_VALUES // max(1, G * d))
        shift = src[:, :chunk].to(f64).mean(dim=(0, 1))
        gram = torch.zeros((G, G), dtype=f64)
        sums = torch.zeros((G, d), dtype=f64)
        for s0 in range(0, n, chunk):
            block = src[:, s0 : s0 + chunk].to(f64)
            block -= shift
            flat = block.reshape(G, -1)
            gram += flat @ flat.T
            sums += block.sum(dim=1)
        m = sums.sum(dim=0) / (G * n)
        ms = sums @ m
        gram = gram - ms[:, None] - ms[None, :] + n * (m @ m)
        if not bool(torch.isfinite(gram).all()):  # NaN / inf latents reach the Gram matrix
            return {"invariance": float("nan")}
        total = torch.trace(gram)
        out: dict[str, float] = {}
        if "invariance" in self.probes:
            inv = gram.sum() / G / total if total > 0 else torch.tensor(1.0, dtype=f64)
            out["invariance"] = float(inv.clamp(0.0, 1.0))
        if "spectrum" in self.probes:
            irreps, energies = isotypic_energies(self._group, gram)
            if total > 0:
                shares = (energies / total).clamp_min(0.0).tolist()
            else:  # no variance: everything is (trivially) invariant
                shares = [1.0] + [0.0] * (len(irreps) - 1)
            out.update({f"spectrum/{name}": v for name, v in zip(irreps, shares, strict=True)})
        return out

    def _from_tensor(self, src: Any) -> dict[str, float]:
        """Invariance and spectrum of a continuous group's orbit: the harmonic fit over the
        sampled elements (the probes' own path); the invariance is its Haar-trivial share."""
        import torch

        from probes._harmonic import harmonic_spectrum

        Zc = src.to(torch.float64, copy=True)
        if not bool(torch.isfinite(Zc.sum())):
            return {"invariance": float("nan")}
        Zc -= Zc.mean(dim=(0, 1))
        irreps, shares = harmonic_spectrum(Zc, self._group, self._element_values, self._degree)
        out: dict[str, float] = {}
        if "invariance" in self.probes:
            out["invariance"] = float(shares[0])
        if "spectrum" in self.probes:
            out.update(
                {f"spectrum/{k}": float(v) for k, v in zip(irreps, shares.tolist(), strict=True)}
            )
        return out

    def _names(self) -> list[str]:
        names: list[str] = []
        for probe in self.probes:
            if probe == "spectrum":
                if self._irreps is None:
                    from probes._harmonic import harmonic_names

                    group = self._group
                    self._irreps = (
                        [irrep.name for irrep in group.irreps()]
                        if group.is_finite
                        else harmonic_names(group, self._degree)
                    )
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


def as_live(live: Any) -> LiveProbes | None:
    """``None``/``False``, ``True`` (the default probes), a :class:`LiveProbes`, or probe names.

    Raises
    ------
    TypeError
        For anything else.
    ValueError
        For unknown probe names.
    """
    if live is None or live is False:
        return None
    if live is True:
        return LiveProbes()
    if isinstance(live, LiveProbes):
        return live
    if isinstance(live, str) or (
        isinstance(live, Sequence) and all(isinstance(p, str) for p in live)
    ):
        return LiveProbes(live)
    raise TypeError(f"live must be None, True, a LiveProbes or a list of probe names, got {live!r}")
