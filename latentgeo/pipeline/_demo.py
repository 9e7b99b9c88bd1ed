"""``latentgeo demo``: how equivariance develops in a CNN, an augmented CNN and a P4CNN.

Four models learn scikit-learn's 8x8 digits: a plain ``SmallCNN``, the same CNN trained on
randomly rot90-rotated batches, the same CNN trained on randomly left-right flipped batches,
and a ``P4CNN`` (C4 group convolutions, Cohen & Welling 2016). Four layers of each are
recorded under the C4 rotation orbit of held-out digits (the flip-trained CNN under the
whole D4 orbit, so that the subgroup scan can tell which part of D4 it learned) on a
log-spaced schedule, probed (held-out equivariance R² against a null level, invariance,
irrep spectrum) and followed as geometry (Grassmann trajectories of principal subspaces).
The report puts the models side by side.

Everything is seeded with local ``torch.Generator``s and the global RNG is forked (restored
on exit), so running the demo leaves torch's global state as it found it.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["DemoConfig", "checkpoint_steps", "demo", "format_demo_summary"]


@dataclass(frozen=True)
class DemoConfig:
    """Sizes of the demo (the defaults finish in about 3 minutes on 2 CPU cores)."""

    train_steps: int = 600
    batch_size: int = 64
    n_probe: int = 256
    width: int = 8
    n_checkpoints: int = 14
    lr: float = 1e-2


FULL = DemoConfig()
QUICK = DemoConfig(train_steps=200, batch_size=48, n_probe=96, width=6, n_checkpoints=5, lr=1e-2)


@dataclass(frozen=True)
class _ModelSpec:
    name: str
    title: str
    build: Callable[[int, int], Any]  # (width, seed) -> nn.Module
    layers: tuple[str, ...]
    augment: str | None  # spec of the group whose random elements augment each batch
    pooled: tuple[str, ...]  # layers recorded through BlockMeanPool(2)
    group: str = "C4"  # spec of the group whose orbit of the probe set is recorded


def _specs() -> list[_ModelSpec]:
    from latentgeo import models

    return [
        _ModelSpec(
            "cnn",
            "plain CNN",
            lambda w, s: models.SmallCNN(width=w, seed=s),
            ("conv1", "conv2", "conv3", "fc"),
            augment=None,
            pooled=("conv1", "conv2"),
        ),
        _ModelSpec(
            "cnn_aug",
            "CNN + C4 augmentation",
            lambda w, s: models.SmallCNN(width=w, seed=s),
            ("conv1", "conv2", "conv3", "fc"),
            augment="C4",
            pooled=("conv1", "conv2"),
        ),
        _ModelSpec(
            "cnn_flip",
            "CNN + flip augmentation (D4 orbit)",
            lambda w, s: models.SmallCNN(width=w, seed=s),
            ("conv1", "conv2", "conv3", "fc"),
            augment="D1",
            pooled=("conv1", "conv2"),
            group="D4",
        ),
        _ModelSpec(
            "p4cnn",
            "P4CNN (C4 group conv)",
            lambda w, s: models.P4CNN(width=w, seed=s),
            ("lift", "gconv1", "pool", "fc"),
            augment=None,
            pooled=("lift", "gconv1"),
        ),
    ]


def checkpoint_steps(total: int, n: int) -> list[int]:
    """Log-spaced checkpoints in [0, total]: 0, then ~n geometric steps up to ``total``."""
    if total < 1 or n < 2:
        raise ValueError(f"need total >= 1 and n >= 2, got total={total!r}, n={n!r}")
    geo = np.unique(np.round(np.geomspace(1, total, n - 1)).astype(int))
    return [0, *(int(s) for s in geo)]


@contextlib.contextmanager
def _isolated_rng(seed: int, device: Any) -> Iterator[None]:
    """Seed torch's global RNG for ops without a generator argument (dropout), then restore."""
    import torch

    devices = [device] if getattr(device, "type", "cpu") == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


def _accuracy(model: Any, x: Any, y: Any) -> float:
    from latentgeo._model_call import call_model

    # The one protected path: eval and back through the model's API, no grad, RNG kept.
    acc = (call_model(model, x).argmax(-1) == y).double().mean().item()
    return float(acc)


def _rotated_accuracy(model: Any, x: Any, y: Any) -> float:
    import torch

    return float(np.mean([_accuracy(model, torch.rot90(x, k, (-2, -1)), y) for k in range(4)]))


def _train_and_record(
    spec: _ModelSpec,
    data: dict[str, Any],
    store: Path,
    cfg: DemoConfig,
    seed: int,
    device: Any,
    progress: bool,
) -> dict[str, Any]:
    import torch

    from latentgeo import LatentRecorder
    from latentgeo._progress import progress_bar
    from latentgeo.actions import ImageRotations
    from latentgeo.groups import parse
    from latentgeo.reducers import BlockMeanPool

    t0 = time.perf_counter()
    model = spec.build(cfg.width, seed).to(device)
    gen = torch.Generator(device="cpu").manual_seed(seed + 1)
    x_train, y_train = data["x_train"].to(device), data["y_train"].to(device)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    loss_fn = torch.nn.CrossEntropyLoss()
    checkpoints = set(checkpoint_steps(cfg.train_steps, cfg.n_checkpoints))
    rec = LatentRecorder(
        model,
        layers=list(spec.layers),
        action=ImageRotations(parse(spec.group)),
        probe_inputs=data["x_probe"],
        labels=data["y_probe"],
        store=str(store),
        mode="w",
        reduce=dict.fromkeys(spec.pooled, BlockMeanPool(2)),
        dtype="float32",
        device=device,
    )
    augment = ImageRotations(parse(spec.augment)) if spec.augment else None
    n = x_train.shape[0]
    loss_value, acc_value = float("nan"), float("nan")
    with rec, _isolated_rng(seed, device):
        bar = progress_bar(
            range(cfg.train_steps + 1),
            desc=f"train {spec.name}",
            disable=not progress,
            leave=False,
            unit="step",
        )
        for step in bar:
            if step in checkpoints:
                metrics = {"loss": loss_value, "accuracy": acc_value}
                metrics["test_accuracy"] = _accuracy(model, data["x_test"], data["y_test"])
                rec.record(step, metrics=metrics)
            if step == cfg.train_steps:
                break
            idx = torch.randint(0, n, (cfg.batch_size,), generator=gen).to(device)
            xb, yb = x_train[idx], y_train[idx]
            if augment is not None:
                xb, _ = augment.sample(xb, generator=gen)
            model.train()
            logits = model(xb)
            loss = loss_fn(logits, yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            loss_value = float(loss.detach())
            acc_value = float((logits.argmax(-1) == yb).double().mean())
            bar.set_postfix(loss=f"{loss_value:.3f}")
    x_test, y_test = data["x_test"].to(device), data["y_test"].to(device)
    return {
        "test_accuracy": _accuracy(model, x_test, y_test),
        "test_accuracy_rotated": _rotated_accuracy(model, x_test, y_test),
        "train_time": time.perf_counter() - t0,
    }


def _load_data(cfg: DemoConfig, seed: int) -> dict[str, Any]:
    """Digits split into train / held-out; the probe set is the first held-out digits."""
    from latentgeo.datasets import digits

    x_train, y_train = digits("train", seed=seed)
    x_test, y_test = digits("test", seed=seed)
    if cfg.n_probe > len(y_test):
        raise ValueError(f"n_probe={cfg.n_probe!r} exceeds the {len(y_test)} held-out digits")
    return {
        "x_train": x_train,
        "y_train": y_train,
        "x_test": x_test,
        "y_test": y_test,
        "x_probe": x_test[: cfg.n_probe],
        "y_probe": y_test[: cfg.n_probe],
    }


def _comparison_figures(analyses: dict[str, Any], titles: dict[str, str]) -> dict[str, Any]:
    """Side-by-side figures of the models (one column per model).

    Few figures with several panels each: rendering dominates the demo's fixed cost.
    """
    from latentgeo import plot
    from latentgeo.pipeline._analyze import ONSET_THRESHOLD
    from latentgeo.plot._style import new_figure

    names = list(analyses)
    ncol = len(names)
    figs: dict[str, Any] = {}

    fig = new_figure((5.0 * ncol, 4.0))
    axes = np.atleast_1d(fig.subplots(1, ncol, sharey=True))
    for ax, name in zip(axes, names):
        plot.equivariance(
            analyses[name].results, ax=ax, onset_threshold=ONSET_THRESHOLD, title=titles[name]
        )
    fig.suptitle("Held-out equivariance R² under each model's recorded group (dashed: null)")
    figs["equivariance"] = fig

    fig = new_figure((4.6 * (ncol + 1), 3.8))
    axes = np.atleast_1d(fig.subplots(1, ncol + 1))
    for color, name in zip(plot.colors(ncol), names):
        a = analyses[name]
        r2 = [a.summary["layers"][layer]["r2"] for layer in a.layers]
        null = [a.summary["layers"][layer].get("null_r2") for layer in a.layers]
        depth = np.arange(1, len(r2) + 1)
        axes[0].plot(depth, r2, marker="o", color=color, label=titles[name])
        if all(v is not None for v in null):
            axes[0].plot(depth, null, linestyle="--", color=color, linewidth=1)
    axes[0].set_xticks(np.arange(1, len(analyses[names[0]].layers) + 1))
    axes[0].set_xlabel("recorded layer (depth)")
    axes[0].set_ylabel("final held-out R²")
    axes[0].set_ylim(min(0.0, axes[0].get_ylim()[0]), 1.02)
    axes[0].grid(alpha=0.3)
    axes[0].legend(fontsize="small")
    axes[0].set_title("Final R² by depth (dashed: null)")
    for ax, name in zip(axes[1:], names):
        plot.invariance(analyses[name].results, ax=ax, title=f"Invariance: {titles[name]}")
    fig.suptitle("Equivariance by depth and invariance over training")
    figs["depth_invariance"] = fig

    n_layers = len(analyses[names[0]].layers)
    fig = new_figure((5.6 * ncol, 3.0 * n_layers))
    axes = fig.subplots(n_layers, ncol, squeeze=False)
    for col, name in enumerate(names):
        for row, layer in enumerate(analyses[name].layers):
            plot.irrep_spectrum(
                analyses[name].results, layer, ax=axes[row, col], title=f"{titles[name]}: {layer}"
            )
    fig.suptitle("Share of orbit variance per irrep over training (C4; D4 for the flip CNN)")
    figs["spectra"] = fig

    fig = new_figure((4.8 * ncol, 4.2))
    axes = np.atleast_1d(fig.subplots(1, ncol))
    for ax, name in zip(axes, names):
        a = analyses[name]
        layer = a.layers[-2]
        plot.trajectory_embedding(
            a.geometry.sel(layer=layer)["embedding"],
            steps=a.run.steps,
            ax=ax,
            title=f"{titles[name]}: {layer} subspace (MDS)",
        )
    fig.suptitle("Trajectories of principal subspaces over training")
    figs["trajectories"] = fig
    return figs


def _flip_subgroup_figure(a: Any, title: str) -> Any:
    """Subgroup lattices of the flip-trained CNN's deepest two layers at the last step."""
    from latentgeo import plot
    from latentgeo.plot._style import new_figure

    layers = a.layers[-2:]
    fig = new_figure((7.0 * len(layers), 5.0))
    axes = np.atleast_1d(fig.subplots(1, len(layers)))
    for ax, layer in zip(axes, layers):
        plot.subgroup_lattice(a.results, layer, ax=ax, title=f"{title}: {layer}")
    return fig


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
        Tiny settings (under a minute on 2 CPU cores) instead of the defaults (under 3).
    device : str, default "cpu"
    seed : int, default 0
    progress : bool, default True
    config : DemoConfig, optional
        Explicit sizes (overrides ``quick``).

    Returns
    -------
    dict
        The content of ``summary.json``: per model (``cnn``, ``cnn_aug``, ``cnn_flip``,
        ``p4cnn``) the final R², null R², invariance, onset step and respected subgroups
        per layer, test accuracy (upright and
        averaged over the four rotations), wall times; plus paths of the outputs.
    """
    import torch

    from latentgeo._report import Section, write_report
    from latentgeo.pipeline._analyze import ONSET_THRESHOLD, analyze_run
    from latentgeo.pipeline._store import check_device, open_store
    from latentgeo.plot import save

    t0 = time.perf_counter()
    cfg = config or (QUICK if quick else FULL)
    device = check_device(device)
    dev = torch.device(device)
    out = Path(out)
    (out / "stores").mkdir(parents=True, exist_ok=True)
    data = _load_data(cfg, seed)
    specs = _specs()
    titles = {s.name: s.title for s in specs}
    models: dict[str, Any] = {}
    analyses: dict[str, Any] = {}
    for spec in specs:
        store = out / "stores" / f"{spec.name}.zarr"
        info = _train_and_record(spec, data, store, cfg, seed, dev, progress)
        t_probe = time.perf_counter()
        a = analyze_run(open_store(store), device=device, progress=progress)
        analyses[spec.name] = a
        layer_summary = {
            layer: {
                k: e.get(k)
                for k in (
                    "r2",
                    "null_r2",
                    "r2_interval",
                    "invariance",
                    "onset_step",
                    "spectrum",
                    "subgroups",
                )
                if k in e
            }
            for layer, e in a.summary["layers"].items()
        }
        models[spec.name] = {
            "title": spec.title,
            "group": spec.group,
            "store": str(store),
            "layers": layer_summary,
            **info,
            "analysis_time": time.perf_counter() - t_probe,
        }

    figs = _comparison_figures(analyses, titles)
    flip = analyses["cnn_flip"]
    figs["flip_subgroups"] = _flip_subgroup_figure(flip, titles["cnn_flip"])
    paths = {
        name: save(fig, out / "figures" / f"{name}.png", dpi=100) for name, fig in figs.items()
    }
    rows = []
    for m in models.values():
        for layer, e in m["layers"].items():
            rows.append(
                {
                    "model": m["title"],
                    "layer": layer,
                    "R²": e["r2"],
                    "null R²": e["null_r2"],
                    "invariance": e["invariance"],
                    "onset step": e["onset_step"],
                }
            )
    acc_rows = [
        {
            "model": m["title"],
            "test accuracy": m["test_accuracy"],
            "accuracy on rotated digits": m["test_accuracy_rotated"],
            "train+record (s)": m["train_time"],
            "analysis (s)": m["analysis_time"],
        }
        for m in models.values()
    ]
    sections = [
        Section(
            "Which layers become equivariant, and when",
            text=(
                "Held-out R² of a ridge-fitted linear map rho(g) with z(g·x) ≈ rho(g) z(x), "
                "averaged over the three rotations; dashed lines are the null level (the same "
                "fit on re-paired samples), bands bootstrap intervals, dotted vertical lines "
                f"the onset (R² stays ≥ {ONSET_THRESHOLD}). The P4CNN is equivariant by "
                "construction at every checkpoint; augmentation teaches the plain CNN part of "
                "it over training; without either, the CNN's deep layers end markedly less "
                "equivariant. Early convolutions are close to linear in the pixels, so a linear "
                "rho(g) fits them in every model."
            ),
            figures=[("equivariance over training", paths["equivariance"])],
            columns=1,
        ),
        Section("Final checkpoint", table=rows),
        Section("Accuracy and cost", table=acc_rows),
        Section(
            "Equivariance by depth, invariance over training",
            figures=[("final R² by depth; invariance", paths["depth_invariance"])],
            columns=1,
        ),
        Section(
            "Which irreps the layers carry",
            text=(
                "Fraction of each sample's orbit variance in the isotypic component of each "
                "real irrep of C4: A (trivial, the invariant part), B (sign under a quarter "
                "turn), E1 (the 2-D rotation irrep)."
            ),
            figures=[("irrep spectra", paths["spectra"])],
            columns=1,
        ),
        Section(
            "Which part of D4 the flip-trained CNN learned",
            text=(
                "The CNN trained with random left-right flips was recorded under the whole "
                "dihedral group D4 (quarter turns and flips). From that one orbit every "
                "subgroup is measured: invariance (share of orbit variance constant on each "
                "subgroup's cosets) and held-out equivariance R² pooled over its elements. "
                "Ringed nodes have a bootstrap lower bound ≥ 0.9. Its logits become invariant "
                "to the flip subgroup C2<s> it was trained with, and not to D4."
            ),
            table=[
                {
                    "layer": layer,
                    "invariant to": ", ".join(e["subgroups"]["invariant"]) or "–",
                    "equivariant to": ", ".join(e["subgroups"]["equivariant"]) or "–",
                }
                for layer, e in models["cnn_flip"]["layers"].items()
                if "subgroups" in e
            ],
            figures=[("subgroups of D4, flip-trained CNN", paths["flip_subgroups"])],
            columns=1,
        ),
        Section(
            "Geometry of training",
            figures=[("subspace trajectories", paths["trajectories"])],
            columns=1,
        ),
    ]
    report = write_report(
        out / "report.html",
        "latentgeo demo: augmentation vs. equivariance on rotated digits",
        sections,
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
