"""``analyze``, step 3 of 3 — report: ``summary.json``, ``report.html`` and the text summary."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from latentgeo.pipeline._analyze_compute import ONSET_THRESHOLD
from latentgeo.pipeline._analyze_stored import stored_sections

if TYPE_CHECKING:  # pragma: no cover
    from latentgeo.pipeline._analyze_compute import Analysis

__all__ = ["format_summary", "write_report_files"]


def _report_sections(a: Analysis, figures: dict[str, Path]) -> list[Any]:
    from latentgeo._report import Section

    rows = []
    for layer, e in a.summary["layers"].items():
        rows.append(
            {
                "layer": layer,
                "R² (held-out)": e["r2"],
                "null R²": e.get("null_r2"),
                "invariance": e.get("invariance"),
                "hom. error": e.get("homomorphism_error"),
                "onset step": e["onset_step"],
                "path length (rad)": e["path_length"],
            }
        )

    def figs(*names: str) -> list[tuple[str, Path]]:
        return [(n.replace("_", " "), figures[n]) for n in names if n in figures]

    sections = [
        Section(
            "Final checkpoint",  # columns that do not apply to the store stay empty (–)
            text=(
                "Held-out R² of the linear equivariance probe (mean over non-identity group "
                "elements), its null level (re-paired samples), invariance, homomorphism "
                f"error, and the onset step (first step from which R² stays ≥ "
                f"{ONSET_THRESHOLD})."
            ),
            table=rows,
        ),
        Section("One-page summary", figures=figs("summary"), columns=1),
        Section(
            "Equivariance and invariance over training",
            figures=figs("equivariance", "invariance", "homomorphism_error"),
        ),
        Section(
            "Irrep spectra",
            text=_spectrum_text(a),
            figures=figs("spectra"),
            columns=1,
        ),
        Section(
            "Which subgroups the layers respect",
            text=(
                f"Invariance and held-out equivariance R² under every subgroup of "
                f"{a.summary['group']}, from the same recorded orbit. Ringed nodes: the lower "
                f"bootstrap bound is ≥ {ONSET_THRESHOLD}. The table lists, at the last "
                "checkpoint, the largest subgroups each layer is invariant / equivariant to."
            ),
            table=[
                {
                    "layer": layer,
                    "invariant to": ", ".join(e["subgroups"]["invariant"]) or "–",
                    "equivariant to": ", ".join(e["subgroups"]["equivariant"]) or "–",
                }
                for layer, e in a.summary["layers"].items()
                if "subgroups" in e
            ],
            figures=figs("subgroup_lattice", "subgroups_over_training"),
            columns=1,
        ),
        *stored_sections(a.summary, figs),
        Section(
            "Geometry: principal subspaces over training",
            text=(
                "Grassmann distances (arc length, radians) between the top-k principal "
                "subspaces of the checkpoints, and the trajectory embedded by classical MDS."
            ),
            figures=figs("distances", "trajectories"),
            columns=1,
        ),
        Section("Orbits and fitted maps", figures=figs("orbits", "rho"), columns=2),
    ]
    kept = [s for s in sections if s.figures or s.table]
    omitted = a.summary.get("omitted") or {}
    if omitted:
        kept.append(
            Section(
                "Not applicable to this store",
                text="\n\n".join(
                    [
                        f"This store is of the kind: {a.summary.get('store_kind')}.",
                        *omitted.values(),
                    ]
                ),
            )
        )
    return kept


def _spectrum_text(a: Analysis) -> str:
    """What the spectrum of this store's kind is computed on."""
    from latentgeo.pipeline._analyze_plan import CONTINUOUS, ELEMENT_SUBSET

    kind = a.summary.get("store_kind")
    group = a.summary.get("group")
    if kind == CONTINUOUS:
        return (
            f"Harmonic spectrum of {group} by irrep degree: the share of orbit variance each "
            "degree explains over the sampled elements (least squares), the rest in 'residual'."
        )
    if kind == ELEMENT_SUBSET:
        return (
            f"Irrep spectrum on the subgroup {a.summary.get('spectrum_group')} of {group}, the "
            "largest subgroup whose every element was recorded."
        )
    return f"Share of orbit variance in each irrep of {group} (character projections)."


def write_report_files(
    a: Analysis, out: Path, figures: dict[str, Path], wall_time: float
) -> dict[str, Any]:
    """Write ``out/report.html`` and ``out/summary.json``; return the summary written.

    Parameters
    ----------
    a : Analysis
    out : pathlib.Path
        Output folder.
    figures : dict
        {figure name: PNG path} from :func:`~latentgeo.pipeline.write_figures`.
    wall_time : float
        Seconds the whole analysis took (recorded in the summary).
    """
    from latentgeo._report import write_report

    run = a.run
    report = write_report(
        out / "report.html",
        f"latentgeo analysis of {Path(str(run.path)).name}",
        _report_sections(a, figures),
        subtitle=f"store {run.path} · group {a.summary['group']} · {len(run.steps)} checkpoints",
    )
    summary = dict(a.summary)
    summary["figures"] = {k: str(v) for k, v in figures.items()}
    summary["report"] = str(report)
    summary["wall_time"] = wall_time
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def format_summary(summary: dict[str, Any]) -> str:
    """Short text of an :func:`analyze` summary: R², invariance, onset per layer."""
    lines = [
        f"analysed {summary['store']} (group {summary['group']}, "
        f"{len(summary['steps'])} checkpoints) in {summary.get('wall_time', 0):.1f} s",
        f"{'layer':<16}{'R²':>8}{'null':>8}{'invar.':>8}{'onset':>8}",
    ]
    for layer, e in summary["layers"].items():
        lines.append(
            f"{layer:<16}{_fmt(e['r2']):>8}{_fmt(e.get('null_r2')):>8}"
            f"{_fmt(e.get('invariance')):>8}{_fmt(e['onset_step'], '{}'):>8}"
        )
    if "report" in summary:
        lines.append(f"report:  {summary['report']}")
        lines.append(f"summary: {Path(summary['report']).with_name('summary.json')}")
    return "\n".join(lines)


def _fmt(v: Any, spec: str = "{:.3f}") -> str:
    return "–" if v is None else spec.format(v)
