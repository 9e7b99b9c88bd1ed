"""Figures of how latent symmetry develops over training (matplotlib object API).

Every function returns a :class:`matplotlib.figure.Figure` built without ``pyplot`` (no
global figure state), takes ``ax=`` where it draws a single panel, and uses a colour-blind
safe palette (Okabe–Ito, viridis beyond seven series). Step axes switch to a log scale when
the checkpoint schedule is log-spaced. :func:`save` writes PNG, PDF or SVG by suffix.

Examples
--------
>>> # Not run here: needs a run store on disk.
>>> import probes  # doctest: +SKIP
>>> from latentgeo import plot
>>> results = probes.run("runs/cnn.zarr")  # doctest: +SKIP
>>> plot.save(plot.equivariance(results), "equivariance.pdf")  # doctest: +SKIP
"""

from latentgeo.plot._attribution import attribution, discovered_symmetry, irrep_losses
from latentgeo.plot._comparison import compare_models, subgroup_lattices
from latentgeo.plot._geometry import distance_matrix, orbits, rho_heatmaps, trajectory_embedding
from latentgeo.plot._runs import spectra_across_runs
from latentgeo.plot._style import OKABE_ITO, colors, is_log_spaced, save
from latentgeo.plot._subgroups import subgroup_lattice, subgroups_over_training
from latentgeo.plot._summary import summary
from latentgeo.plot._training import (
    equivariance,
    equivariance_onsets,
    homomorphism_error,
    invariance,
    irrep_spectrum,
    mean_r2,
)

__all__ = [
    "OKABE_ITO",
    "attribution",
    "colors",
    "compare_models",
    "discovered_symmetry",
    "distance_matrix",
    "equivariance",
    "equivariance_onsets",
    "homomorphism_error",
    "invariance",
    "irrep_losses",
    "irrep_spectrum",
    "is_log_spaced",
    "mean_r2",
    "orbits",
    "rho_heatmaps",
    "save",
    "spectra_across_runs",
    "subgroup_lattice",
    "subgroup_lattices",
    "subgroups_over_training",
    "summary",
    "trajectory_embedding",
]
