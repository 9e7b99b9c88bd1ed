"""The researcher's workflow end to end: analyse a run store, run the demo, describe a store.

``analyze`` runs the probes and the geometry on any run store (results cached in the store),
writes figures, ``summary.json`` and a self-contained ``report.html``; ``demo`` trains three
models on digits and compares how equivariance develops in them; ``info`` describes a store.
These are the functions behind the ``latentgeo`` command line.
"""

from latentgeo.pipeline._analyze import (
    Analysis,
    analyze,
    analyze_run,
    format_summary,
    write_figures,
)
from latentgeo.pipeline._demo import (
    DemoConfig,
    checkpoint_steps,
    demo,
    format_demo_summary,
)
from latentgeo.pipeline._errors import CorruptStoreError, PipelineError, StoreBusyError, UsageError
from latentgeo.pipeline._store import check_device, check_layers, format_info, info, open_store

__all__ = [
    "Analysis",
    "CorruptStoreError",
    "DemoConfig",
    "PipelineError",
    "StoreBusyError",
    "UsageError",
    "analyze",
    "analyze_run",
    "check_device",
    "check_layers",
    "checkpoint_steps",
    "demo",
    "format_demo_summary",
    "format_info",
    "format_summary",
    "info",
    "open_store",
    "write_figures",
]
