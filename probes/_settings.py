"""Probe settings of :func:`probes.run` and the key of its results cache.

The settings are a JSON-able dict built once per call and handed to every task; the cache key
hashes *everything that changes a result*: the settings (probe kinds, estimator parameters,
dtype), the group and the action the latents were recorded under, the package version and
the cache format.  Two calls whose key agrees may share cached results; any other call
recomputes.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

__all__ = ["CACHE_FORMAT", "CACHE_NAME", "cache_key", "group_spec", "linear_keys", "make_settings"]

#: Name of the analysis group the results are cached under (``analysis/probes``).
CACHE_NAME = "probes"
#: Bumped whenever the cached layout or the meaning of a cached variable changes.
CACHE_FORMAT = 3
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


def make_settings(
    kinds: Sequence[str], linear: dict[str, Any] | None, dtype: torch.dtype
) -> dict[str, Any]:
    """Validated, JSON-able settings of one :func:`probes.run` call.

    Parameters
    ----------
    kinds : sequence of str
        Registered probe kinds (see :data:`probes._blocks.PROBE_KINDS`); the kinds they
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
    from probes._blocks import expand_kinds
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
    return {
        "probes": expand_kinds(kinds),
        "linear": linear,
        "dtype": str(dtype).removeprefix("torch."),
    }


def group_spec(group: Any) -> str:
    """A string that names ``group`` exactly: its spec (``"D4"``), else its repr."""
    spec = getattr(group, "spec", None)
    return spec if isinstance(spec, str) else repr(group)


def cache_key(settings: dict[str, Any], group: Any, action: Any) -> str:
    """Hash of everything that changes a result of :func:`probes.run`.

    Parameters
    ----------
    settings : dict
        From :func:`make_settings`.
    group : FiniteGroup or SO2
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
        "settings": settings,
        "group": group_spec(group),
        "action": action,
        "version": latentgeo.__version__,
        "format": CACHE_FORMAT,
    }
    text = json.dumps(payload, sort_keys=True, default=repr)
    return hashlib.sha256(text.encode()).hexdigest()[:16]
