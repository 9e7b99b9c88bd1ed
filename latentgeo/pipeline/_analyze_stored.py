"""``analyze``: the analyses over training a store already holds (attribution, irrep ablation).

:func:`probes.attribution_over_training` and :func:`probes.ablation_over_training` (and the
live callbacks) cache their results in the run store as ``analysis/attribution`` and
``analysis/irrep_ablation``.  ``analyze`` does not compute them (they need the model, its
checkpoints and a loss); where the store has them, it summarises, draws and reports them:
these functions are the three steps (summary, figures, report sections) for them.  Every
sentence of a section is written from the stored numbers.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    import xarray as xr

    from latentgeo.store import Run

__all__ = ["STORED_ANALYSES", "load_stored", "stored_figures", "stored_sections", "stored_summary"]

#: Cached analysis name -> the variables its figure and summary read.
STORED_ANALYSES: dict[str, tuple[str, ...]] = {
    "attribution": ("contribution", "rest", "total"),
    "irrep_ablation": ("restricted_loss", "excluded_loss", "loss"),
}


def load_stored(run: Run) -> dict[str, xr.Dataset]:
    """The stored analyses of :data:`STORED_ANALYSES` the store holds, over steps.

    A cached result without a ``step`` dimension or the variables it needs is left out with a
    warning naming the store and what is missing (the rest of the report is still written).
    """
    found: dict[str, xr.Dataset] = {}
    names = set(run.analyses())
    for name, needed in STORED_ANALYSES.items():
        if name not in names:
            continue
        ds = run.load_analysis(name)
        if ds is None:  # removed between the listing and the read
            continue
        missing = [v for v in needed if v not in ds]
        if missing or "step" not in ds.dims or ds.sizes["step"] == 0:
            what = f"variables {missing!r}" if missing else "a 'step' dimension with steps"
            warnings.warn(
                f"analysis/{name} of {str(run.path)!r} lacks {what}; its section is left out "
                f"(write it with probes.{_writer(name)}(..., run=...))",
                UserWarning,
                stacklevel=2,
            )
            continue
        found[name] = ds
    return found


def _writer(name: str) -> str:
    return "attribution_over_training" if name == "attribution" else "ablation_over_training"


def _over_elements(da: xr.DataArray) -> xr.DataArray:
    return da.sum("element") if "element" in da.dims else da


def _float(x: Any) -> float | None:
    v = float(x)
    return v if np.isfinite(v) else None


def _attribution_summary(ds: xr.Dataset) -> dict[str, Any]:
    contrib = _over_elements(ds["contribution"])
    rest = _over_elements(ds["rest"])
    total = _over_elements(ds["total"])
    last = contrib.isel(step=-1)
    layers = [str(v) for v in ds["layer"].values]
    values = np.asarray(last.values, dtype=np.float64)
    top = layers[int(np.nanargmax(np.abs(values)))] if np.isfinite(values).any() else None
    return {
        "method": str(ds.attrs.get("method", "")),
        "steps": [int(s) for s in ds["step"].values],
        "final_step": int(ds["step"].values[-1]),
        "contribution": {layer: _float(v) for layer, v in zip(layers, values)},
        "rest": _float(rest.isel(step=-1)),
        "total": _float(total.isel(step=-1)),
        "largest": top,
    }


def _ablation_summary(ds: xr.Dataset) -> dict[str, Any]:
    final = ds.isel(step=-1)
    irreps = [str(v) for v in ds["irrep"].values]
    out: dict[str, Any] = {
        "layer": str(ds.attrs.get("layer", "")),
        "steps": [int(s) for s in ds["step"].values],
        "final_step": int(ds["step"].values[-1]),
        "loss": _float(final["loss"]),
        "irreps": {
            r: {
                "restricted_loss": _float(final["restricted_loss"].sel(irrep=r)),
                "excluded_loss": _float(final["excluded_loss"].sel(irrep=r)),
            }
            for r in irreps
        },
    }
    if "set" in ds.dims and "set_restricted_loss" in ds:
        out["sets"] = {
            str(s): {
                "restricted_loss": _float(final["set_restricted_loss"].sel(set=s)),
                "excluded_loss": _float(final["set_excluded_loss"].sel(set=s)),
            }
            for s in ds["set"].values
        }
    return out


def stored_summary(stored: dict[str, xr.Dataset]) -> dict[str, Any]:
    """``summary.json`` entries: ``attribution`` (per layer contribution at the last stored
    step, ``rest``, ``total``, the ``largest`` layer) and ``irrep_ablation`` (the model's
    loss and per irrep / set the restricted and excluded losses at the last stored step)."""
    out: dict[str, Any] = {}
    if "attribution" in stored:
        out["attribution"] = _attribution_summary(stored["attribution"])
    if "irrep_ablation" in stored:
        out["irrep_ablation"] = _ablation_summary(stored["irrep_ablation"])
    return out


def stored_figures(stored: dict[str, xr.Dataset], emit: Callable[[str, Any], None]) -> None:
    """Draw ``attribution`` (layer × step contributions) and ``irrep_losses``."""
    from latentgeo import plot

    if "attribution" in stored:
        emit("attribution", plot.attribution(stored["attribution"]))
    if "irrep_ablation" in stored:
        ds = stored["irrep_ablation"]
        layer = ds.attrs.get("layer")
        title = f"What each irrep of {layer} does for the loss" if layer else None
        emit("irrep_losses", plot.irrep_losses(ds, title=title))


def _g(v: float | None) -> str:
    return "–" if v is None else f"{v:.3g}"


def stored_sections(summary: dict[str, Any], figs: Callable[..., list[Any]]) -> list[Any]:
    """Report sections for the stored analyses, their prose from ``summary``'s numbers."""
    from latentgeo._report import Section

    sections = []
    att = summary.get("attribution")
    if att is not None:
        how = (
            "the layer-wise Lie-derivative decomposition (Gruver et al. 2023)"
            if att["method"] == "lie_derivative"
            else "orbit-averaging each layer in turn (intervention)"
        )
        largest = (
            f"At step {att['final_step']} the largest contribution is {att['largest']}'s "
            f"({_g(att['contribution'][att['largest']])} of a total {_g(att['total'])}; "
            f"{_g(att['rest'])} comes after the last layer)."
            if att["largest"] is not None
            else f"At step {att['final_step']} no contribution is finite."
        )
        sections.append(
            Section(
                "Where the equivariance error comes from",
                text=(
                    f"Each layer's contribution to the end-to-end equivariance error, by {how}, "
                    f"at {len(att['steps'])} stored steps (analysis/attribution); the "
                    f"contributions and the part after the last layer sum to the total. "
                    f"{largest}"
                ),
                table=[
                    {"layer": layer, f"contribution (step {att['final_step']})": v}
                    for layer, v in att["contribution"].items()
                ],
                figures=figs("attribution"),
                columns=1,
            )
        )
    abl = summary.get("irrep_ablation")
    if abl is not None:
        rows = [{"irrep": r, **v} for r, v in abl["irreps"].items()]
        rows += [{"irrep": f"set {s}", **v} for s, v in abl.get("sets", {}).items()]
        worst = max(
            abl["irreps"].items(),
            key=lambda kv: -np.inf if kv[1]["excluded_loss"] is None else kv[1]["excluded_loss"],
            default=None,
        )
        most = (
            f" Removing {worst[0]} raises it most, to {_g(worst[1]['excluded_loss'])}."
            if worst is not None and worst[1]["excluded_loss"] is not None
            else ""
        )
        sections.append(
            Section(
                "What each irrep does for the loss",
                text=(
                    f"Restricted loss (only the trivial part and the irrep kept) and excluded "
                    f"loss (the irrep removed) of {abl['layer'] or 'the layer'}'s orbit "
                    f"activations, at {len(abl['steps'])} stored steps "
                    f"(analysis/irrep_ablation). At step {abl['final_step']} the model's loss "
                    f"is {_g(abl['loss'])}.{most}"
                ),
                table=rows,
                figures=figs("irrep_losses"),
                columns=1,
            )
        )
    return sections
