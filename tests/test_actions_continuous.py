"""Actions of continuous groups: point-cloud rotations (SO3, O3, O2), the SO2/O2 image action,
and a recorded point-cloud run probed end to end by probes.run."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from numpy.testing import assert_allclose

import probes
from latentgeo.actions import ImageRotationAngles, PointCloudRotations, from_spec
from latentgeo.groups import O2, O3, SO2, SO3, Cyclic


@pytest.mark.parametrize("G", ["SO3", "O3", "O2"])
def test_point_cloud_rotations(G):
    act = PointCloudRotations(G, n_elements=12, seed=3, vectors=1, scalars=2)
    d = act.dim
    values = act.element_values
    assert values.shape == (12, d, d) and values.dtype == np.float64
    assert np.array_equal(values[0], np.eye(d)) and not values.flags.writeable
    assert act.elements[:2] == ("g0", "g1") and act.order == 12
    assert_allclose(
        np.swapaxes(values, 1, 2) @ values, np.broadcast_to(np.eye(d), values.shape), atol=1e-12
    )
    # Same seed, same elements; another seed, others.
    assert np.array_equal(PointCloudRotations(G, 12, seed=3).element_values, values)
    assert not np.allclose(PointCloudRotations(G, 12, seed=4).element_values[1:], values[1:])
    assert from_spec(act.to_spec()) == act and act.to_spec()["group"] == G
    x = torch.randn(4, 9, act.channels, dtype=torch.float64)
    orbit = act.orbit(x)
    assert orbit.shape == (12, 4, 9, act.channels) and torch.equal(orbit[0], x)
    xn = x.numpy()
    for k in (1, 7):
        R = values[k]
        assert_allclose(orbit[k, ..., :d].numpy(), xn[..., :d] @ R.T, atol=1e-13)
        assert_allclose(orbit[k, ..., d : 2 * d].numpy(), xn[..., d : 2 * d] @ R.T, atol=1e-13)
        assert torch.equal(orbit[k, ..., 2 * d :], x[..., 2 * d :])
        assert_allclose(act(k, xn), orbit[k].numpy(), atol=1e-15)  # numpy in, numpy out
    # Distances between points are invariant; the law holds against composed values.
    dist = torch.cdist(orbit[..., :d], orbit[..., :d])
    assert_allclose(dist.numpy(), np.broadcast_to(dist[0].numpy(), dist.shape), atol=1e-12)
    check = act.check(x)
    assert check.passed and check.max_error < 1e-13 and check.n_pairs == 144
    assert act.check(x.float()).passed
    with pytest.raises(ValueError, match=f"N, {act.channels}"):
        act.orbit(torch.randn(3, 5, act.channels + 1))
    with pytest.raises(TypeError, match="floating"):
        act.orbit(torch.ones(3, 5, act.channels, dtype=torch.int64))


def test_point_cloud_bad_parameters():
    with pytest.raises(ValueError, match="SO3, O3 or O2"):
        PointCloudRotations("C4")
    with pytest.raises(ValueError, match="n_elements"):
        PointCloudRotations("SO3", n_elements=0)
    act = PointCloudRotations("SO3", n_elements=4)
    with pytest.raises(ValueError, match="determinant"):
        act.act_value(-np.eye(3), torch.randn(2, 3, 3))
    x = torch.randn(6, 5, 3)
    out, ks = act.sample(x, seed=0)
    for i in range(6):
        assert_allclose(out[i].numpy(), act(int(ks[i]), x[i : i + 1])[0].numpy(), atol=1e-6)


def _bumps(size=48):
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, size), torch.linspace(-1, 1, size), indexing="ij")
    img = torch.exp(-((xx - 0.3) ** 2 + (yy - 0.1) ** 2) / 0.05)
    img = img + torch.exp(-((xx + 0.2) ** 2 + (yy + 0.35) ** 2) / 0.08)
    return img.double()[None, None]


def test_image_rotation_angles_so2_and_o2():
    img = _bumps()
    cyc, so2, o2 = (ImageRotationAngles(4, group=g) for g in (None, "SO2", "O2"))
    assert cyc.group == Cyclic(4) and so2.group == SO2() and o2.group == O2()
    assert cyc == ImageRotationAngles(4) and cyc.to_spec() == ImageRotationAngles(4).to_spec()
    for act in (cyc, so2, o2):
        assert from_spec(act.to_spec()) == act
    assert_allclose(so2.element_values, 2 * np.pi * np.arange(4) / 4)
    assert so2.elements == ("g0", "g1", "g2", "g3")
    assert o2.element_values.shape == (8, 2, 2) and o2.order == 8
    # On the 90° grid every element is exact: rot90 for rotations; R(θ)S flips the image
    # upside down (S), then rotates.
    orbit = o2.orbit(img)
    for k in range(4):
        rot = torch.rot90(img, k, dims=(-2, -1))
        flipped = torch.rot90(torch.flip(img, dims=(-2,)), k, dims=(-2, -1))
        assert_allclose(orbit[k].numpy(), rot.numpy(), atol=1e-12)
        assert_allclose(orbit[4 + k].numpy(), flipped.numpy(), atol=1e-12)
        assert_allclose(so2.orbit(img)[k].numpy(), rot.numpy(), atol=1e-12)
    assert o2.check(img).max_error < 1e-12
    # Off the grid the law holds up to interpolation, inside the disc.
    check = ImageRotationAngles(6, group="O2").check(img, strict=False)
    assert check.relative_error < 0.05
    with pytest.raises(ValueError, match="SO2 or O2"):
        ImageRotationAngles(4, group="SO3")


def test_recorded_point_cloud_run_probed(tmp_path):
    """A model with known irreps per layer, recorded under 256 SO(3) elements and probed."""
    from latentgeo.record import LatentRecorder
    from latentgeo.store import open_run

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.vec = torch.nn.Identity()  # degree 1: mixed centroids
            self.quad = torch.nn.Identity()  # degree 2: traceless second moments
            self.inv = torch.nn.Identity()  # degree 0: distances to the centroid

        def forward(self, x):
            c = x.mean(dim=-2)
            v = self.vec(torch.cat([c, 2 * x[:, 0] - c], -1))
            m = torch.einsum("bni,bnj->bij", x, x) / x.shape[-2]
            m = m - torch.diagonal(m, dim1=-2, dim2=-1).mean(-1)[:, None, None] * torch.eye(3)
            q = self.quad(m.flatten(1))
            r = self.inv(torch.linalg.vector_norm(x - c[:, None], dim=-1))
            return v.sum() + q.sum() + r.sum()

    x = torch.randn(64, 5, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    act = PointCloudRotations("SO3", n_elements=256, seed=1)
    path = tmp_path / "pc.zarr"
    rec = LatentRecorder(Net(), ["vec", "quad", "inv"], act, x, path, dtype="float64")
    rec.record(0)
    rec.close()
    run = open_run(path)
    assert run.group == SO3()
    assert_allclose(run.element_values, act.element_values)
    ds = probes.run(path, probes=("linear", "spectrum", "invariance"), progress=False, cache=False)
    assert list(ds.irrep.values) == ["0", "1", "2", "3", "residual"]  # 256 support degree 3
    assert list(ds.element.values[:2]) == ["g0", "g1"]
    spec = ds.spectrum.sel(step=0)
    assert_allclose(spec.sel(layer="vec", irrep="1"), 1.0, atol=1e-10)
    assert_allclose(spec.sel(layer="quad", irrep="2"), 1.0, atol=1e-10)
    assert_allclose(ds.invariance.sel(layer="inv"), 1.0, atol=1e-10)
    assert_allclose(ds.invariance.sel(layer="vec"), 0.0, atol=1e-10)
    assert float(ds.r2.sel(layer="vec").min()) > 0.999
    ds2 = probes.run(path, probes=("spectrum",), progress=False, cache=False, max_degree=2)
    assert list(ds2.irrep.values) == ["0", "1", "2", "residual"]
    assert O3() != SO3()
