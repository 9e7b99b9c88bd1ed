"""Checkpoint-indexed analysis of how latent structure moves over training.

A :class:`Trajectory` holds one manifold-valued summary per checkpoint (a subspace, a
covariance, a fitted representation, a representation of the probe set) and gives the geometry
of the path: distance matrices, speed, path length, tortuosity, onsets, change points and 2-D
embeddings. Builders read a run store one checkpoint at a time (:func:`subspace`,
:func:`covariance`, :func:`shape`) or probe results (:func:`representation`, :func:`series`);
:func:`compare` lines several runs up in one ``xarray.Dataset``; :func:`compare_spectra` tells
which irreps each run learned and when, :func:`compare_isotypic` how alike two runs' layers are
irrep by irrep.

Examples
--------
>>> # Not run here: needs a run store on disk.
>>> import latentgeo, trajectories                                # doctest: +SKIP
>>> run = latentgeo.open_run("runs/cnn.zarr")                     # doctest: +SKIP
>>> traj = trajectories.subspace(run, "fc", k=8)                  # doctest: +SKIP
>>> traj.speed().plot(); traj.embed("mds")                        # doctest: +SKIP
"""

from trajectories._builders import covariance, representation, series, shape, subspace
from trajectories._compare import compare
from trajectories._embed import classical_mds
from trajectories._irreps import compare_isotypic, compare_spectra, spectrum_with_ci
from trajectories._onset import change_points, onset
from trajectories._trajectory import Trajectory

__all__ = [
    "Trajectory",
    "change_points",
    "classical_mds",
    "compare",
    "compare_isotypic",
    "compare_spectra",
    "covariance",
    "onset",
    "representation",
    "series",
    "shape",
    "spectrum_with_ci",
    "subspace",
]
