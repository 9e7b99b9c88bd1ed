"""``analyze``: the analyses over training a store already holds (attribution, irrep
ablation, symmetry discovery).

:func:`probes.attribution_over_training`, :func:`probes.ablation_over_training` and
:func:`probes.discovery_over_training` (and the training callbacks' ``analyses=``) cache their
results in the run store as ``analysis/attribution``, ``analysis/irrep_ablation`` and
``analysis/symmetry_discovery``.  ``analyze`` does not compute them (they need the model, its
checkpoints and a loss); where the store has them, it summarises, draws and reports them:
these functions are the three steps (summary, figures, report sections) for them.  Every
sentence of a section is written from the stored numbers.  :func:`step_scalars` is the scalar
summary of one step of each, which the training callbacks hand to the trainer's loggers.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    import xarray as xr

    from latentgeo.store import Run

__all__ = [
    "STORED_ANALYSES",
    "load_stored",
    "step_scalars",
    "stored_figures",
    "stored_sections",
    "stored_summary",
]

#: Cached analysis name -> the variables its figure and summary read.
STORED_ANALYSES: dict[str, tuple[str, ...]] = {
    "attribution": ("contribution", "rest", "total"),
    "irrep_ablation": ("restricted_loss", "excluded_loss", "loss"),
    "symmetry_discovery": (
        "invariant_dimension",
        "invariant_name",
        "equivariant_dimension",
        "equivariant_name",
    ),
}
#: Cached analysis name -> the ``probes`` function that writes it (``run=``).
_WRITERS = {
    "attribution": "attribution_over_training",
    "irrep_ablation": "ablation_over_training",
    "symmetry_discovery": "discovery_over_training",
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
        what = _lacks(name, ds, needed)
        if what is not None:
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
    return _WRITERS[name]


def _lacks(name: str, ds: xr.Dataset, needed: tuple[str, ...]) -> str | None:
    """What a stored result lacks for its section (None: nothing)."""
    missing = [v for v in needed if v not in ds]
    if missing:
        return f"variables {missing!r}"
    if "step" not in ds.dims or ds.sizes["step"] == 0:
        return "a 'step' dimension with steps"
    flat = [v for v in needed if "step" not in ds[v].dims]
    if flat:
        return f"a 'step' dimension on {flat!r}"
    if name == "symmetry_discovery":
        for which in ("invariant", "equivariant"):
            da = ds[f"{which}_dimension"]
            values = np.asarray(da.values)
            integral = values.dtype.kind in "iu" or (
                values.dtype.kind == "f"
                and bool(np.all(np.isfinite(values)))
                and np.array_equal(values, np.round(values))
            )
            if da.dims != ("step",) or not integral:
                return f"integer {which}_dimension per step (got {da.dims} {values.dtype})"
            if ds[f"{which}_name"].dims != ("step",):
                return f"one {which}_name per step (got dimensions {ds[f'{which}_name'].dims})"
    return None


def _kind(ds: xr.Dataset) -> str | None:
    """Which of :data:`STORED_ANALYSES` a result is, by the variables it holds."""
    for kind, needed in STORED_ANALYSES.items():
        if all(v in ds for v in needed):
            return kind
    return None


def step_scalars(name: str, ds: xr.Dataset, prefix: str = "latentgeo") -> dict[str, float]:
    """The scalar summary of one step's result of an analysis, for a trainer's loggers.

    Parameters
    ----------
    name : str
        The analysis' name (its store group ``analysis/<name>``): the keys' middle part.
    ds : xarray.Dataset
        One step's result (no ``step`` dimension), recognised by its variables:
        :func:`probes.equivariance_attribution`, :func:`probes.irrep_ablation` or
        :func:`probes.discover_symmetry`'s stored layout.
    prefix : str
        The keys' first part (the live metrics' ``latentgeo``).

    Returns
    -------
    dict of str to float
        Attribution: ``<prefix>/<name>/<layer>`` (each layer's contribution, summed over
        elements), ``<prefix>/<name>/rest`` and ``<prefix>/<name>/total``.  Irrep ablation:
        ``<prefix>/<name>/loss`` and ``<prefix>/<name>/excluded_loss/<irrep>``.  Discovery:
        ``<prefix>/<name>/invariant_dimension`` and ``.../equivariant_dimension``.  Empty for
        a result of another kind.
    """
    kind = _kind(ds)
    key = f"{prefix}/{name}"
    out: dict[str, float] = {}
    if kind == "attribution":
        contrib = _over_elements(ds["contribution"])
        for layer, v in zip(ds["layer"].values, np.asarray(contrib.values, dtype=np.float64)):
            out[f"{key}/{layer}"] = float(v)
        out[f"{key}/rest"] = float(_over_elements(ds["rest"]))
        out[f"{key}/total"] = float(_over_elements(ds["total"]))
    elif kind == "irrep_ablation":
        out[f"{key}/loss"] = float(ds["loss"])
        for irrep, v in zip(ds["irrep"].values, np.asarray(ds["excluded_loss"].values)):
            out[f"{key}/excluded_loss/{irrep}"] = float(v)
    elif kind == "symmetry_discovery":
        for which in ("invariant", "equivariant"):
            out[f"{key}/{which}_dimension"] = float(ds[f"{which}_dimension"])
    return out


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


def _name_or_none(v: Any) -> str | None:
    # discover_symmetry's None (nothing known matches) is stored as "".
    text = str(v)
    return text or None


def _last_change(steps: list[int], dims: list[int]) -> int | None:
    """The step from which ``dims`` holds its final value; None if it never changed."""
    changed = [i for i in range(1, len(dims)) if dims[i] != dims[i - 1]]
    return steps[changed[-1]] if changed else None


def _discovery_summary(ds: xr.Dataset) -> dict[str, Any]:
    steps = [int(s) for s in ds["step"].values]
    out: dict[str, Any] = {
        "kind": str(ds.attrs.get("kind", "")),
        "layer": str(ds.attrs.get("layer", "")),
        "steps": steps,
        "final_step": steps[-1],
    }
    if "generator" in ds.coords:
        out["generators"] = [str(g) for g in ds["generator"].values]
    final = ds.isel(step=-1)
    for which in ("invariant", "equivariant"):
        dims = [int(v) for v in ds[f"{which}_dimension"].values]
        names = [_name_or_none(v) for v in ds[f"{which}_name"].values]
        entry: dict[str, Any] = {
            "dimension": dims[-1],
            "name": names[-1],
            "dimension_last_changed": _last_change(steps, dims),
            "dimensions": dims,
            "names": names,
        }
        if f"{which}_closure_error" in ds:
            entry["closure_error"] = _float(final[f"{which}_closure_error"])
        if f"{which}_singular_values" in ds:
            sv = np.asarray(final[f"{which}_singular_values"].values, dtype=np.float64)
            entry["singular_values"] = [_float(v) for v in sv]
        out[which] = entry
    return out


def stored_summary(stored: dict[str, xr.Dataset]) -> dict[str, Any]:
    """``summary.json`` entries: ``attribution`` (per layer contribution at the last stored
    step, ``rest``, ``total``, the ``largest`` layer), ``irrep_ablation`` (the model's
    loss and per irrep / set the restricted and excluded losses at the last stored step) and
    ``symmetry_discovery`` (``kind``, ``layer``, ``steps``; per ``invariant`` /
    ``equivariant`` the final ``dimension`` and ``name``, the step from which the dimension
    holds its final value, ``dimension_last_changed``, None if it never changed, the
    ``dimensions`` and ``names`` per step, and for a Lie algebra the final
    ``closure_error`` and ascending scaled ``singular_values``)."""
    out: dict[str, Any] = {}
    if "attribution" in stored:
        out["attribution"] = _attribution_summary(stored["attribution"])
    if "irrep_ablation" in stored:
        out["irrep_ablation"] = _ablation_summary(stored["irrep_ablation"])
    if "symmetry_discovery" in stored:
        out["symmetry_discovery"] = _discovery_summary(stored["symmetry_discovery"])
    return out


def stored_figures(stored: dict[str, xr.Dataset], emit: Callable[[str, Any], None]) -> None:
    """Draw ``attribution`` (layer × step contributions), ``irrep_losses`` and
    ``symmetry_discovery`` (discovered dimensions over steps)."""
    from latentgeo import plot

    if "attribution" in stored:
        emit("attribution", plot.attribution(stored["attribution"]))
    if "irrep_ablation" in stored:
        ds = stored["irrep_ablation"]
        layer = ds.attrs.get("layer")
        title = f"What each irrep of {layer} does for the loss" if layer else None
        emit("irrep_losses", plot.irrep_losses(ds, title=title))
    if "symmetry_discovery" in stored:
        emit("symmetry_discovery", plot.discovered_symmetry(stored["symmetry_discovery"]))


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
    disc = summary.get("symmetry_discovery")
    if disc is not None:
        sections.append(_discovery_section(disc, figs))
    return sections


def _discovered(entry: dict[str, Any], kind: str, steps: int) -> str:
    """One symmetry's sentence: size, name, when it last changed, how sharp, closure."""
    name = entry["name"]
    if kind == "finite":
        what = f"its largest respected subgroup has order {entry['dimension']}"
        what += f" ({name})" if name else " (no subgroup respected)"
    else:
        what = f"it has dimension {entry['dimension']}"
        what += f" ({name})" if name else " (no known subalgebra matches)"
    changed = entry["dimension_last_changed"]
    when = (
        f", the {'order' if kind == 'finite' else 'dimension'} it has held since step {changed}"
        if changed is not None
        else f", unchanged over the {steps} stored steps"
    )
    sv = entry.get("singular_values")
    sharp = ""
    if sv:
        d = entry["dimension"]
        inside = f"at most {_g(sv[d - 1])} inside" if d > 0 else "none inside"
        outside = f"at least {_g(sv[d])} outside" if d < len(sv) else "none outside"
        sharp = f"; scaled singular values {inside}, {outside}"
    closure = entry.get("closure_error")
    closed = "" if closure is None else f"; closed under the bracket to {_g(closure)}"
    return f"{what}{when}{sharp}{closed}"


def _discovery_section(disc: dict[str, Any], figs: Callable[..., list[Any]]) -> Any:
    from latentgeo._report import Section

    kind, layer, n = disc["kind"], disc["layer"] or "the layer", len(disc["steps"])
    if kind == "finite":
        how = (
            f"the maximal subgroups under which {layer} is invariant, and those under which "
            "it is equivariant, from the subgroup scan of the recorded orbit"
        )
    else:
        gens = ", ".join(disc.get("generators", [])) or "the candidate's generators"
        how = (
            f"the largest subalgebra of the candidate ({gens}) under which {layer} is "
            "invariant, and the largest under which it is equivariant (a latent operator "
            "exists), from the Lie derivatives along each generator (LieGG, Moskalev et al. "
            "2022, on latents)"
        )
    final = disc["final_step"]
    label = "order" if kind == "finite" else "dimension"
    rows = [
        {
            "step": step,
            f"invariant {label}": disc["invariant"]["dimensions"][i],
            "invariant": disc["invariant"]["names"][i] or "–",
            f"equivariant {label}": disc["equivariant"]["dimensions"][i],
            "equivariant": disc["equivariant"]["names"][i] or "–",
        }
        for i, step in enumerate(disc["steps"])
    ]
    return Section(
        "Which symmetry the layer learned",
        text=(
            f"Discovered symmetry: {how}, at {n} stored steps (analysis/symmetry_discovery). "
            f"At step {final} the invariant symmetry: "
            f"{_discovered(disc['invariant'], kind, n)}. The equivariant symmetry: "
            f"{_discovered(disc['equivariant'], kind, n)}."
        ),
        table=rows,
        figures=figs("symmetry_discovery"),
        columns=1,
    )
