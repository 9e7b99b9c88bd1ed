"""``latentgeo demo``: how equivariance develops in a CNN, an augmented CNN and a P4CNN.

Four models learn scikit-learn's 8x8 digits (see :mod:`latentgeo.pipeline._demo_train`);
their stores are probed (held-out equivariance R² against a null level, invariance, irrep
spectrum, subgroups) and followed as geometry (Grassmann trajectories of principal
subspaces); :func:`latentgeo.plot.compare_models` draws them side by side and
:mod:`latentgeo.pipeline._demo_report` writes the report's prose from the computed summary.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from latentgeo.pipeline._demo_train import (
    FULL,
    QUICK,
    DemoConfig,
    checkpoint_steps,
    load_data,
    model_specs,
    train_and_record,
)

__all__ = ["DemoConfig", "checkpoint_steps", "demo", "format_demo_summary"]

_LAYER_KEYS = ("r2", "null_r2", "r2_interval", "invariance", "onset_step", "spectrum", "subgroups")


def demo(
    out: str | Path = "demo_out",
    quick: bool = False,
    device: str = "cpu",
    seed: int = 0,
    progress: bool = True,
    config: DemoConfig | None = None,
) -> dict[str, Any]:
    """Train, record, probe and compare plain, rot90- and flip-augmented CNNs and a P4CNN.

    Parameters
    ----------
    out : str or pathlib.Path, default "demo_out"
        Output folder: ``stores/<model>.zarr``, ``figures/*.png``, ``summary.json``,
        ``report.html``.
    quick : bool, default False
        Tiny settings (about 25 s on 2 CPU cores) instead of the defaults (about 50 s).
    device : str, default "cpu"
        Torch device for training and probes.
    seed : int, default 0
        Seed of the data split, the models and the training batches.
    progress : bool, default True
        Show progress bars.
    config : DemoConfig, optional
        Explicit sizes (overrides ``quick``).

    Returns
    -------
    dict
        The content of ``summary.json``: per model (``cnn``, ``cnn_aug``, ``cnn_flip``,
        ``p4cnn``) the final R², null R², invariance, onset step and respected subgroups
        per layer, test accuracy (upright and averaged over the four rotations), wall times
        (seconds); plus paths of the outputs.

    Raises
    ------
    ValueError
        When ``device`` is not available or the probe set exceeds the held-out digits.
    """
    import torch

    from latentgeo._report import write_report
    from latentgeo.pipeline._analyze import ONSET_THRESHOLD, analyze_run
    from latentgeo.pipeline._demo_report import demo_sections
    from latentgeo.pipeline._store import check_device, open_store
    from latentgeo.plot import compare_models, save, subgroup_lattices

    t0 = time.perf_counter()
    cfg = config or (QUICK if quick else FULL)
    device = check_device(device)
    dev = torch.device(device)
    out = Path(out)
    (out / "stores").mkdir(parents=True, exist_ok=True)
    data = load_data(cfg, seed)
    specs = model_specs()
    titles = {s.name: s.title for s in specs}
    models: dict[str, Any] = {}
    analyses: dict[str, Any] = {}
    for spec in specs:
        store = out / "stores" / f"{spec.name}.zarr"
        info = train_and_record(spec, data, store, cfg, seed, dev, progress)
        t_probe = time.perf_counter()
        a = analyze_run(open_store(store), device=device, progress=progress)
        analyses[spec.name] = a
        models[spec.name] = {
            "title": spec.title,
            "group": spec.group,
            "store": str(store),
            "layers": {
                layer: {k: e.get(k) for k in _LAYER_KEYS if k in e}
                for layer, e in a.summary["layers"].items()
            },
            **info,
            "analysis_time": time.perf_counter() - t_probe,
        }

    figs = compare_models(
        analyses, titles, onset_threshold=ONSET_THRESHOLD, group_label="C4; D4 for the flip CNN"
    )
    flip = analyses["cnn_flip"]
    figs["flip_subgroups"] = subgroup_lattices(flip.results, flip.layers[-2:], titles["cnn_flip"])
    paths = {
        name: save(fig, out / "figures" / f"{name}.png", dpi=100) for name, fig in figs.items()
    }
    report = write_report(
        out / "report.html",
        "latentgeo demo: augmentation vs. equivariance on rotated digits",
        demo_sections(models, paths, ONSET_THRESHOLD),
        subtitle=(
            f"{'quick' if cfg is QUICK else 'custom' if config else 'default'} settings, "
            f"{cfg.train_steps} training steps, {cfg.n_probe} probe digits"
        ),
    )
    summary = {
        "models": models,
        "settings": asdict(cfg),
        "quick": cfg is QUICK,
        "seed": seed,
        "device": str(dev),
        "onset_threshold": ONSET_THRESHOLD,
        "figures": {k: str(v) for k, v in paths.items()},
        "report": str(report),
        "out": str(out),
        "wall_time": time.perf_counter() - t0,
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def format_demo_summary(summary: dict[str, Any]) -> str:
    """Short text of the demo: final held-out R² per layer per model, and where files are."""
    lines = [f"latentgeo demo finished in {summary['wall_time']:.1f} s"]
    for m in summary["models"].values():
        lines.append(
            f"{m['title']}: test accuracy {m['test_accuracy']:.3f} "
            f"(rotated {m['test_accuracy_rotated']:.3f})"
        )
        cells = []
        for layer, e in m["layers"].items():
            r2 = "–" if e["r2"] is None else f"{e['r2']:.2f}"
            cells.append(f"{layer} {r2}")
        lines.append("  final R² per layer: " + ", ".join(cells))
    out = Path(summary["out"])
    lines.append(f"report:  {summary['report']}")
    lines.append(f"summary: {out / 'summary.json'}")
    lines.append(f"figures: {out / 'figures'}")
    lines.append(f"stores:  {out / 'stores'}")
    return "\n".join(lines)
