"""``analyze``: probes + geometry + figures + report for any run store.

One job per module, sequenced here: :mod:`._analyze_compute` (probes, geometry, onsets,
summary; cached in the store), :mod:`._analyze_render` (figures), :mod:`._analyze_report`
(``summary.json``, ``report.html``, the text summary).
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from latentgeo.pipeline._analyze_compute import ONSET_THRESHOLD, Analysis, analyze_run
from latentgeo.pipeline._analyze_render import check_formats, write_figures
from latentgeo.pipeline._analyze_report import format_summary, write_report_files
from latentgeo.pipeline._store import open_store

__all__ = [
    "ONSET_THRESHOLD",
    "Analysis",
    "analyze",
    "analyze_run",
    "format_summary",
    "write_figures",
]


def analyze(
    store: str | os.PathLike[str],
    out: str | os.PathLike[str],
    device: str = "cpu",
    layers: Sequence[str] | None = None,
    progress: bool = True,
    formats: Sequence[str] = ("png",),
) -> dict[str, Any]:
    """Probes, geometry, figures and an HTML report for one run store.

    Parameters
    ----------
    store : str or os.PathLike
        Path or URL of a run store written by :class:`latentgeo.LatentRecorder`.
    out : str or os.PathLike
        Output folder: ``figures/<name>.<format>``, ``summary.json``, ``report.html``.
    device : str, default "cpu"
        Torch device for the probes.
    layers : sequence of str, optional
        Layers to analyse (default: all).
    progress : bool, default True
        Show progress bars.
    formats : sequence of {"png", "pdf", "svg"}, default ("png",)
        Formats of the figure files (PNG always: the report embeds it).

    Returns
    -------
    dict
        The content of ``summary.json``: ``store``, ``group``, ``steps``, per layer
        ``r2`` (final held-out, mean over non-identity elements), ``null_r2``,
        ``r2_interval``, ``invariance``, ``homomorphism_error``, ``spectrum``,
        ``onset_step``, ``path_length``, ``tortuosity``; ``final_metrics``, ``figures``,
        ``report``, ``wall_time``; where the store holds them (written by
        :func:`probes.attribution_over_training` / :func:`probes.ablation_over_training` /
        :func:`probes.discovery_over_training` with ``run=``), ``attribution`` (per layer
        contribution at the last stored step, ``rest``, ``total``, ``largest``),
        ``irrep_ablation`` (``loss`` and per irrep the ``restricted_loss`` and
        ``excluded_loss``) and ``symmetry_discovery`` (per ``invariant`` / ``equivariant`` the
        final ``dimension`` and ``name``, ``dimension_last_changed``, the ``dimensions`` and
        ``names`` per step), each with its figure and report section.

    Examples
    --------
    >>> from latentgeo.pipeline import analyze
    >>> # Not run here: needs a run store on disk (docs: getting started).
    >>> summary = analyze("runs/cnn.zarr", "runs/cnn_analysis")  # doctest: +SKIP
    >>> summary["layers"]["fc"]["r2"]  # doctest: +SKIP
    """
    t0 = time.perf_counter()
    formats = check_formats(formats)  # before any work
    a = analyze_run(open_store(store), layers=layers, device=device, progress=progress)
    out = Path(out)
    figures = write_figures(a, out / "figures", formats=formats)
    return write_report_files(a, out, figures, time.perf_counter() - t0)
