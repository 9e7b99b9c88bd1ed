"""Impossible requests raise the documented error whatever the input's size: no shortcut
(a short series, a callable metric) returns an empty or zero result before the checks."""

from __future__ import annotations

import numpy as np
import pytest

import trajectories
from latentgeo import geometry as geo


@pytest.mark.parametrize("n", [0, 1, 3, 50])
def test_change_points_checks_the_request_before_the_length(n):
    x = np.linspace(0.0, 1.0, n)
    # More changes than segments of min_size fit: an error, for short series too.
    with pytest.raises(ValueError, match="do not fit"):
        trajectories.change_points(x, method="binseg", n_change_points=n, min_size=2)
    with pytest.raises(ValueError, match="penalty"):
        trajectories.change_points(x, penalty=-1.0)
    with pytest.raises(ValueError, match="penalty"):
        trajectories.change_points(x, penalty=float("nan"))
    with pytest.raises(TypeError, match="penalty"):
        trajectories.change_points(x, penalty="large")
    with pytest.raises(ValueError, match="min_size"):
        trajectories.change_points(x, min_size=0)


def test_change_points_of_a_short_series_are_none_when_the_request_is_possible():
    x = np.array([0.0, 1.0, 5.0])
    assert trajectories.change_points(x, min_size=2).size == 0  # no two segments of 2 fit
    zero = trajectories.change_points(x, method="binseg", n_change_points=0, min_size=2)
    assert zero.size == 0
    # One change in 4 values with segments of 2: it fits, and is found.
    steps = [10, 20, 30, 40]
    found = trajectories.change_points(
        [0.0, 0.0, 5.0, 5.0], method="binseg", n_change_points=1, min_size=2, steps=steps
    )
    np.testing.assert_array_equal(found, [30])


@pytest.mark.parametrize("metric", ["euclidean", lambda a, b: float(np.abs(a - b).sum())])
@pytest.mark.parametrize("T", [1, 4])
def test_pairwise_distances_checks_chunk_size_on_every_path(rng, metric, T):
    pts = rng.normal(size=(T, 3))
    for bad in (0, -1):
        with pytest.raises(ValueError, match="chunk_size"):
            geo.pairwise_distances(pts, metric, chunk_size=bad)
    for bad in (1.5, True, "8"):
        with pytest.raises(TypeError, match="chunk_size"):
            geo.pairwise_distances(pts, metric, chunk_size=bad)
    D = geo.pairwise_distances(pts, metric, chunk_size=1)
    ref = (
        np.abs(pts[:, None] - pts[None]).sum(-1)
        if callable(metric)
        else np.linalg.norm(pts[:, None] - pts[None], axis=-1)
    )
    np.testing.assert_allclose(np.asarray(D), ref, atol=1e-12)
