"""Probe settings of :func:`probes.run` and the key of its results cache.

The settings are a JSON-able dict built once per call and handed to every task; the cache key
hashes *everything that changes a result*: the settings (probe kinds, estimator parameters,
dtype), the group and the action the latents were recorded under, the package version and
the cache format.  Two calls whose key agrees may share cached results; any other call
recomputes.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

if TYPE_CHECKING:
    from latentgeo.groups import Group

__all__ = [
    "CACHE_FORMAT",
    "CACHE_NAME",
    "RunSettings",
    "cache_key",
    "group_spec",
    "linear_keys",
    "make_settings",
]

#: Name of the analysis group the results are cached under (``analysis/probes``).
CACHE_NAME = "probes"
#: Bumped whenever the cached layout or the meaning of a cached variable changes.
CACHE_FORMAT = 7  # 3: spectrum/invariance intervals, Haar-centred continuous spectra; 4: rank;
#: 5: the closed-form expected null (LinearProbe null="expected"); 6: continuous groups' share
#: intervals include the spread over the sampled elements; 7: consistent_r2_low/high
#: LinearProbe parameters that are not settings of a run: where and how it computes
#: (``device``, ``dtype`` are the runner's own arguments) and the identity index (fixed to
#: 0 by the store's element order).
_NOT_SETTINGS = frozenset({"device", "dtype", "identity"})


def linear_keys() -> tuple[str, ...]:
    """Names of the :class:`~probes.LinearProbe` parameters a run's ``linear=`` may set."""
    from probes._linear import LinearProbe

    return tuple(sorted(set(LinearProbe._get_param_names()) - _NOT_SETTINGS))


def _jsonable(value: Any) -> Any:
    if isinstance(value, (np.ndarray, list, tuple)):
        return [float(v) for v in np.asarray(value, dtype=np.float64).ravel()]
    if isinstance(value, np.generic):
        return value.item()
    return value


@dataclass(frozen=True)
class RunSettings:
    """The settings of one :func:`probes.run` call, handed to every (layer, step) task.

    Attributes
    ----------
    probes : tuple of str
        The kinds to compute (with the kinds they require), in registration order.
    linear : dict
        :class:`~probes.LinearProbe` parameters (JSON-able).
    dtype : str
        ``"float32"`` or ``"float64"``.
    max_degree : int, optional
        The caller's largest irrep degree for a continuous group.
    subgroup : dict, optional
        A named subgroup's positions, Cayley table and names (its spectrum; see
        :func:`probes._subsets.plan_subset`).
    harmonic_degree : int, optional
        The resolved degree of a continuous run's harmonic fit.
    element_values : ndarray, optional
        A continuous run's sampled element values, for the tasks only (not part of the key).
    """

    probes: tuple[str, ...]
    linear: dict[str, Any]
    dtype: str
    max_degree: int | None = None
    subgroup: dict[str, Any] | None = None
    harmonic_degree: int | None = None
    element_values: np.ndarray | None = field(default=None, compare=False, repr=False)

    def replace(self, **changes: Any) -> RunSettings:
        """A copy with ``changes``."""
        return dataclasses.replace(self, **changes)

    def as_dict(self) -> dict[str, Any]:
        """The JSON-able settings that make the cache key: every set field but the element
        values (which the group and the run determine)."""
        out: dict[str, Any] = {"probes": list(self.probes), "linear": self.linear}
        out["dtype"] = self.dtype
        for name in ("max_degree", "subgroup", "harmonic_degree"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        return out


def make_settings(
    kinds: Sequence[str], linear: dict[str, Any] | None, dtype: torch.dtype
) -> RunSettings:
    """Validated, JSON-able settings of one :func:`probes.run` call.

    Parameters
    ----------
    kinds : sequence of str
        Registered probe kinds (see :data:`probes._kinds.PROBE_KINDS`); the kinds they
        require are added.
    linear : dict, optional
        :class:`~probes.LinearProbe` parameters (see :func:`linear_keys`).
    dtype : torch.dtype
        ``torch.float32`` or ``torch.float64``.

    Raises
    ------
    ValueError
        For an unknown probe kind or LinearProbe parameter (naming the valid ones), an
        invalid parameter value (``InvalidParameterError``, naming it), or another dtype.
    """
    from probes._kinds import expand_kinds
    from probes._linear import LinearProbe

    if dtype not in (torch.float32, torch.float64):
        raise ValueError(f"dtype must be torch.float32 or torch.float64, got {dtype!r}")
    linear = dict(linear or {})
    valid = linear_keys()
    bad = sorted(set(linear) - set(valid))
    if bad:
        raise ValueError(f"unknown LinearProbe settings {bad!r}; valid ones are {list(valid)!r}")
    # The estimator's own declaration validates the values (probes._base), before any work.
    LinearProbe(**linear)._validate_params()
    linear = {k: _jsonable(v) for k, v in linear.items()}
    return RunSettings(
        probes=tuple(expand_kinds(kinds)),
        linear=linear,
        dtype=str(dtype).removeprefix("torch."),
    )


def group_spec(group: Group) -> str:
    """A string that names ``group`` exactly: its spec (``"D4"``), else its repr."""
    spec = getattr(group, "spec", None)
    return spec if isinstance(spec, str) else repr(group)


def cache_key(settings: RunSettings, group: Group, action: Mapping[str, Any] | None) -> str:
    """Hash of everything that changes a result of :func:`probes.run`.

    Parameters
    ----------
    settings : RunSettings
        From :func:`make_settings`.
    group : Group
        The group the results are computed for (the run's, or the caller's override).
    action : dict or None
        The run's stored action spec.

    Returns
    -------
    str
        16 hex digits.
    """
    import latentgeo

    payload = {
        "settings": settings.as_dict(),
        "group": group_spec(group),
        "action": action,
        "version": latentgeo.__version__,
        "format": CACHE_FORMAT,
    }
    text = json.dumps(payload, sort_keys=True, default=repr)
    return hashlib.sha256(text.encode()).hexdigest()[:16]
