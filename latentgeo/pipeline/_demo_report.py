"""``latentgeo demo``, part 3 of 3 — the report, its prose written from the computed summary.

Every sentence about a result is formatted from the numbers in the demo's summary (final
R², null level, onset step, irrep shares, respected subgroups), so the report says what this
run measured, whatever the settings, seed or device; the fixed text only defines the
quantities.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["demo_sections", "equivariance_findings", "flip_findings", "spectrum_findings"]


def _num(value: Any) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def _mean(values: Sequence[float | None]) -> float | None:
    kept = [v for v in values if v is not None]
    return sum(kept) / len(kept) if kept else None


def equivariance_findings(models: Mapping[str, Any], threshold: float) -> str:
    """Sentences on final equivariance R² per model, formatted from ``models``' numbers.

    Parameters
    ----------
    models : mapping
        The demo summary's ``"models"``: per model a ``"title"`` and per layer (in depth
        order) ``"r2"``, ``"null_r2"`` and ``"onset_step"`` (None where undefined).
    threshold : float
        The onset level of R².

    Returns
    -------
    str

    Examples
    --------
    >>> models = {
    ...     "a": {"title": "A", "layers": {"l1": {"r2": 0.95, "null_r2": 0.1, "onset_step": 0},
    ...                                    "l2": {"r2": 0.5, "null_r2": 0.6, "onset_step": None}}},
    ...     "b": {"title": "B", "layers": {"l1": {"r2": 0.9, "null_r2": 0.1, "onset_step": 4},
    ...                                    "l2": {"r2": 0.92, "null_r2": 0.1, "onset_step": 4}}}}
    >>> print(equivariance_findings(models, 0.9))  # doctest: +NORMALIZE_WHITESPACE
    Final R², first to deepest recorded layer: A 0.95 → 0.50, B 0.90 → 0.92. Mean over
    the layers: highest for B (0.91), lowest for A (0.72). Layers at or above 0.9 at the
    last checkpoint: A 1 of 2, B 2 of 2. Reached from the first checkpoint (onset at step
    0): A l1. Final R² not above the null level: A l2.
    """
    parts, means, reached, from_start, below_null = [], {}, [], [], []
    for m in models.values():
        layers = m["layers"]
        r2 = [e.get("r2") for e in layers.values()]
        parts.append(f"{m['title']} {_num(r2[0])} → {_num(r2[-1])}")
        means[m["title"]] = _mean(r2)
        n_at = sum(1 for v in r2 if v is not None and v >= threshold)
        reached.append(f"{m['title']} {n_at} of {len(r2)}")
        start = [name for name, e in layers.items() if e.get("onset_step") == 0]
        if start:
            from_start.append(f"{m['title']} {', '.join(start)}")
        weak = [
            name
            for name, e in layers.items()
            if e.get("r2") is not None and e.get("null_r2") is not None and e["r2"] <= e["null_r2"]
        ]
        if weak:
            below_null.append(f"{m['title']} {', '.join(weak)}")
    text = [f"Final R², first to deepest recorded layer: {', '.join(parts)}."]
    ranked = sorted((v, k) for k, v in means.items() if v is not None)
    if len(ranked) > 1:
        text.append(
            f"Mean over the layers: highest for {ranked[-1][1]} ({ranked[-1][0]:.2f}), "
            f"lowest for {ranked[0][1]} ({ranked[0][0]:.2f})."
        )
    text.append(f"Layers at or above {threshold} at the last checkpoint: {', '.join(reached)}.")
    text.append(
        "Reached from the first checkpoint (onset at step 0): "
        + ("; ".join(from_start) if from_start else "no layer")
        + "."
    )
    text.append(
        "Final R² not above the null level: "
        + ("; ".join(below_null) if below_null else "none")
        + "."
    )
    return " ".join(text)


def spectrum_findings(models: Mapping[str, Any]) -> str:
    """Which irrep holds the largest share of each model's deepest layer at the last step."""
    cells = []
    for m in models.values():
        layer, entry = list(m["layers"].items())[-1]
        spectrum = {k: v for k, v in (entry.get("spectrum") or {}).items() if v is not None}
        if spectrum:
            irrep = max(spectrum, key=lambda k: spectrum[k])
            cells.append(f"{m['title']} ({layer}) {irrep} {spectrum[irrep]:.2f}")
    if not cells:
        return ""
    return "Largest share in the deepest layer at the last checkpoint: " + "; ".join(cells) + "."


def flip_findings(model: Mapping[str, Any]) -> str:
    """The subgroups the deepest scanned layer of ``model`` respects at the last step."""
    scanned = [(name, e["subgroups"]) for name, e in model["layers"].items() if "subgroups" in e]
    if not scanned:
        return ""
    layer, subgroups = scanned[-1]
    invariant = ", ".join(subgroups.get("invariant", [])) or "no subgroup"
    equivariant = ", ".join(subgroups.get("equivariant", [])) or "no subgroup"
    return (
        f"At the last checkpoint its deepest layer, {layer}, is invariant to {invariant} and "
        f"equivariant to {equivariant}."
    )


def demo_sections(
    models: Mapping[str, Any], paths: Mapping[str, Any], threshold: float
) -> list[Any]:
    """The sections of the demo's ``report.html``: definitions, then the measured findings."""
    from latentgeo._report import Section

    rows = [
        {
            "model": m["title"],
            "layer": layer,
            "R²": e["r2"],
            "null R²": e["null_r2"],
            "invariance": e["invariance"],
            "onset step": e["onset_step"],
        }
        for m in models.values()
        for layer, e in m["layers"].items()
    ]
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
    flip = [m for m in models.values() if m.get("group") == "D4"]
    sections = [
        Section(
            "Which layers become equivariant, and when",
            text=(
                "Held-out R² of a ridge-fitted linear map rho(g) with z(g·x) ≈ rho(g) z(x), "
                "averaged over the recorded group's non-identity elements; dashed lines are "
                "the null level (the same fit on re-paired samples), bands bootstrap "
                f"intervals, dotted vertical lines the onset (R² stays ≥ {threshold}). "
                + equivariance_findings(models, threshold)
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
                "real irrep of the recorded group; for C4: A (trivial, the invariant part), "
                "B (sign under a quarter turn), E1 (the 2-D rotation irrep). "
                + spectrum_findings(models)
            ),
            figures=[("irrep spectra", paths["spectra"])],
            columns=1,
        ),
    ]
    if flip and "flip_subgroups" in paths:
        m = flip[0]
        sections.append(
            Section(
                "Which part of D4 the flip-trained CNN learned",
                text=(
                    "The CNN trained with random left-right flips was recorded under the whole "
                    "dihedral group D4 (quarter turns and flips). From that one orbit every "
                    "subgroup is measured: invariance (share of orbit variance constant on each "
                    "subgroup's cosets) and held-out equivariance R² pooled over its elements. "
                    "Ringed nodes have a bootstrap lower bound at or above the scan's threshold. "
                    + flip_findings(m)
                ),
                table=[
                    {
                        "layer": layer,
                        "invariant to": ", ".join(e["subgroups"]["invariant"]) or "–",
                        "equivariant to": ", ".join(e["subgroups"]["equivariant"]) or "–",
                    }
                    for layer, e in m["layers"].items()
                    if "subgroups" in e
                ],
                figures=[("subgroups of D4, flip-trained CNN", paths["flip_subgroups"])],
                columns=1,
            )
        )
    sections.append(
        Section(
            "Geometry of training",
            figures=[("subspace trajectories", paths["trajectories"])],
            columns=1,
        )
    )
    return sections
