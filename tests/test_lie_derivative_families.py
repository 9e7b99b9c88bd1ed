"""One-parameter families (point clouds, image affine flows) and Lie derivatives along them:
exact zeros for equivariant models, analytic values for non-equivariant ones, autograd
against finite differences, fitted generators of non-compact families."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import probes
from latentgeo.actions import (
    ImageAffineFamily,
    ImageRotationAngles,
    PointCloudFamily,
    image_rotation,
    image_scaling,
    image_shear,
    image_translation,
    point_cloud_rotation,
    so3_basis,
)

A_CUBIC = -0.75  # PyTorch's bicubic convolution parameter


@pytest.fixture
def cloud(rng):
    return torch.as_tensor(rng.normal(size=(5, 12, 3)))


def _weighted_centroid(p):
    """Equivariant map of point clouds to a vector: Σ_p |x_p|² x_p."""
    return ((p**2).sum(-1, keepdim=True) * p).sum(-2)


# ----------------------------------------------------------------- families


def test_point_cloud_family_is_a_one_parameter_group(cloud):
    fam = point_cloud_rotation("y")
    a = fam(fam(cloud, 0.3), -0.8)
    np.testing.assert_allclose(a.numpy(), fam(cloud, -0.5).numpy(), atol=1e-14)
    np.testing.assert_array_equal(fam(cloud, 0.0).numpy(), cloud.numpy())
    assert fam.compact and not PointCloudFamily(np.eye(3)).compact
    # exp(t X_z) turns e_x towards e_y
    e = torch.tensor([[[1.0, 0.0, 0.0]]], dtype=torch.float64)
    np.testing.assert_allclose(
        point_cloud_rotation("z")(e, np.pi / 2).numpy(), [[[0, 1, 0]]], atol=1e-15
    )
    # numpy in, numpy out
    assert isinstance(fam(cloud.numpy(), 0.1), np.ndarray)


def test_image_families_match_exact_operations(rng):
    x = torch.as_tensor(rng.normal(size=(2, 3, 9, 9)))
    x[..., :2, :] = 0
    x[..., -2:, :] = 0
    x[..., :, :2] = 0
    x[..., :, -2:] = 0
    # integer translations land on pixel centres: an exact shift
    shifted = image_translation("x")(x, 2.0)
    np.testing.assert_allclose(shifted[..., 2:].numpy(), x[..., :-2].numpy(), atol=1e-12)
    down = image_translation("y")(x, 1.0)
    np.testing.assert_allclose(down[..., 1:, :].numpy(), x[..., :-1, :].numpy(), atol=1e-12)
    # a quarter turn is rot90
    np.testing.assert_allclose(
        image_rotation()(x, np.pi / 2).numpy(),
        torch.rot90(x, 1, dims=(-2, -1)).numpy(),
        atol=1e-12,
    )
    # any angle agrees with ImageRotationAngles (same convention and interpolation)
    ref = ImageRotationAngles(8, interpolation="bicubic").rotate(x, 0.37)
    np.testing.assert_allclose(image_rotation()(x, 0.37).numpy(), ref.numpy(), atol=1e-12)
    # magnify by 2, then shrink by 2: the second samples the first at pixel centres, which
    # sampled the input at pixel centres again (odd size: the centre is a pixel)
    s = image_scaling()
    back = s(s(x, np.log(2)), -np.log(2))
    np.testing.assert_allclose(back[..., 3:6, 3:6].numpy(), x[..., 3:6, 3:6].numpy(), atol=1e-12)
    assert image_rotation().compact and not image_shear().compact


def test_family_specs_and_values():
    fam = image_shear("y", interpolation="bilinear")
    spec = fam.to_spec()
    json.dumps(spec)
    assert spec["type"] == "ImageAffineFamily" and spec["interpolation"] == "bilinear"
    again = ImageAffineFamily(spec["generator"], spec["interpolation"], spec["padding_mode"])
    assert again == fam and hash(again) == hash(fam)
    assert point_cloud_rotation(0) == point_cloud_rotation("x")


def test_family_bad_input():
    with pytest.raises(ValueError, match=r"\(\.\.\., n_points, 3\)"):
        point_cloud_rotation("x")(torch.zeros(4, 2), 0.1)
    with pytest.raises(ValueError, match="axis"):
        point_cloud_rotation("w")
    with pytest.raises(ValueError, match="axis"):
        image_translation("z")
    with pytest.raises(ValueError, match=r"shape \(2, 3\)"):
        ImageAffineFamily(np.eye(3))
    with pytest.raises(ValueError, match="interpolation"):
        ImageAffineFamily(np.zeros((2, 3)), interpolation="lanczos")
    with pytest.raises(ValueError, match="square"):
        PointCloudFamily(np.zeros((2, 3)))
    with pytest.raises(TypeError, match="floating-point"):
        image_scaling()(torch.zeros(1, 4, 4, dtype=torch.int64), 0.1)
    with pytest.raises(ValueError, match="real scalar"):
        image_scaling()(torch.zeros(1, 4, 4), torch.zeros(2))
    with pytest.raises(TypeError, match="real number"):
        image_scaling()(torch.zeros(1, 4, 4), "1")
    with pytest.raises(ValueError, match="finite"):
        image_scaling()(torch.zeros(1, 4, 4), float("nan"))


# ----------------------------------------------------------------- SO(3) Lie derivatives


@pytest.mark.parametrize("dtype,atol", [(torch.float64, 1e-12), (torch.float32, 1e-4)])
def test_equivariant_and_invariant_models_have_zero_lie_derivative(cloud, dtype, atol):
    x = cloud.to(dtype)
    scale = float(_weighted_centroid(x).abs().max())
    eq = probes.so3_lie_derivative(_weighted_centroid, x, so3_basis())
    assert eq.shape == (3, 5, 3) and eq.dtype == dtype
    assert float(eq.abs().max()) <= atol * scale
    norms = lambda p: p.norm(dim=-1).sum(-1)  # noqa: E731
    inv = probes.so3_lie_derivative(norms, x)
    assert float(inv.abs().max()) <= atol * float(norms(x).max())


def test_non_equivariant_linear_model_analytic_value(cloud, rng):
    """f(x) = A·mean(x): the Lie derivative along X_i with output generator X_i is
    (A X_i − X_i A) mean(x)."""
    A = torch.as_tensor(rng.normal(size=(3, 3)))
    X = torch.as_tensor(so3_basis())
    d = probes.so3_lie_derivative(lambda p: p.mean(-2) @ A.T, cloud, so3_basis())
    m = cloud.mean(-2)
    expected = torch.stack([m @ (A @ X[i] - X[i] @ A).T for i in range(3)])
    np.testing.assert_allclose(d.numpy(), expected.numpy(), atol=1e-13)
    # without an output generator: the plain derivative A X_i mean(x)
    d0 = probes.so3_lie_derivative(lambda p: p.mean(-2) @ A.T, cloud)
    np.testing.assert_allclose(
        d0.numpy(), torch.stack([m @ (A @ X[i]).T for i in range(3)]).numpy(), atol=1e-13
    )


def test_e3nn_spherical_harmonics_are_equivariant(cloud):
    """A real e3nn model: Σ_p |x_p| Y¹(x_p) (irreps "1o")."""
    o3 = pytest.importorskip("e3nn.o3")

    def model(p):
        sh = o3.spherical_harmonics("1o", p, normalize=True, normalization="component")
        return (sh * p.norm(dim=-1, keepdim=True)).sum(-2)

    d = probes.so3_lie_derivative(model, cloud, so3_basis())  # e3nn 0.6: l = 1 is (x, y, z)
    assert float(d.abs().max()) < 1e-12 * float(model(cloud).abs().max())
    # a wrong output basis (e3nn < 0.4's (y, z, x) order) is caught
    perm = np.eye(3)[[1, 2, 0]]
    wrong_gens = np.einsum("ij,xjk,lk->xil", perm, so3_basis(), perm)
    wrong = probes.so3_lie_derivative(model, cloud, wrong_gens)
    assert float(wrong.abs().max()) > 0.1 * float(model(cloud).abs().max())


def test_finite_differences_agree_with_autograd_second_order(cloud, rng):
    W1 = torch.as_tensor(rng.normal(size=(3, 16)))
    W2 = torch.as_tensor(rng.normal(size=(16, 4)))
    mlp = lambda p: torch.tanh(p @ W1).mean(-2) @ W2  # noqa: E731
    ag = probes.so3_lie_derivative(mlp, cloud)
    errs = [
        float((probes.so3_lie_derivative(mlp, cloud, method="fd", eps=e) - ag).abs().max())
        for e in (2e-3, 1e-3)
    ]
    assert errs[0] < 1e-4 * float(ag.abs().max())
    assert 3.0 < errs[0] / errs[1] < 5.0  # O(ε²)


def test_lie_derivative_with_fitted_generators(cloud, rng):
    """Latents of a vector mixed by P: the LieAlgebraProbe's generators as output generators
    leave a zero Lie derivative (the latents are a representation)."""
    from probes._lie_algebra import one_parameter_elements

    P = torch.as_tensor(rng.normal(size=(3, 3)) + 2 * np.eye(3))
    model = lambda p: _weighted_centroid(p) @ P.T  # noqa: E731
    R, _ = one_parameter_elements("so3", [0.05, -0.05, 0.1, 0.6])
    x = torch.as_tensor(rng.normal(size=(80, 10, 3)))
    Z = torch.stack([model(x @ torch.as_tensor(g).T) for g in R])
    probe = probes.LieAlgebraProbe(n_bootstrap=0, estimate_spread=False).fit(Z, R)
    d = probes.so3_lie_derivative(model, x, probe.generators_)
    assert float(d.abs().max()) < 1e-7 * float(model(x).abs().max())


# ----------------------------------------------------------------- images


def _blob(rng, n=2, size=16):
    """Smooth images with support inside a 3-pixel margin (no boundary effects)."""
    yy, xx = np.meshgrid(np.arange(size) - 7.3, np.arange(size) - 7.9, indexing="ij")
    imgs = []
    for _ in range(n):
        c = rng.normal(size=2)
        g = np.exp(-((xx - c[0]) ** 2 + (yy - c[1]) ** 2) / 6.0) * (1 + 0.3 * np.sin(xx / 2))
        imgs.append(g)
    x = np.stack(imgs)[:, None]
    x[..., :3, :] = x[..., -3:, :] = 0
    x[..., :, :3] = x[..., :, -3:] = 0
    return torch.as_tensor(x)


def _cubic_gradient(x):
    """Derivative of the bicubic interpolant at the pixel centres: −a·(x[i+1] − x[i−1])
    (Keys kernel W'(±1) = ∓a), zero padded; returns (∂_u, ∂_v)."""
    p = torch.nn.functional.pad(x, (1, 1, 1, 1))
    du = -A_CUBIC * (p[..., 1:-1, 2:] - p[..., 1:-1, :-2])
    dv = -A_CUBIC * (p[..., 2:, 1:-1] - p[..., :-2, 1:-1])
    return du, dv


@pytest.mark.parametrize("name", ["translation_x", "translation_y", "scaling", "shear", "rotation"])
def test_image_family_derivative_analytic(rng, name):
    x = _blob(rng)
    h, w = x.shape[-2:]
    v, u = torch.meshgrid(
        torch.arange(h, dtype=x.dtype) - (h - 1) / 2,
        torch.arange(w, dtype=x.dtype) - (w - 1) / 2,
        indexing="ij",
    )
    du, dv = _cubic_gradient(x)
    # content velocity field (du/dt, dv/dt); T_t x(p) = x̃(p − t·velocity) to first order
    fam, vel = {
        "translation_x": (image_translation("x"), (torch.ones_like(u), torch.zeros_like(u))),
        "translation_y": (image_translation("y"), (torch.zeros_like(u), torch.ones_like(u))),
        "scaling": (image_scaling(), (u, v)),
        "shear": (image_shear("x"), (v, torch.zeros_like(u))),
        "rotation": (image_rotation(), (v, -u)),
    }[name]
    expected = -(vel[0] * du + vel[1] * dv)
    got = probes.family_lie_derivative(lambda im: im, x, fam)
    np.testing.assert_allclose(got.numpy(), expected.numpy(), atol=1e-12)


def test_translation_invariant_and_equivariant_image_models(rng):
    x = _blob(rng)
    fam = image_translation("x")
    pooled = probes.family_lie_derivative(lambda im: im.sum((-2, -1)), x, fam)
    assert float(pooled.abs().max()) < 1e-12 * float(x.sum())
    # A convolution commutes with the (convolution-type) interpolated translation: with the
    # output generator the family's own derivative on the output, the Lie derivative is 0.
    k = torch.as_tensor(rng.normal(size=(1, 1, 3, 3)))
    conv = lambda im: torch.nn.functional.conv2d(im, k, padding=1)  # noqa: E731
    out_gen = lambda y: probes.family_lie_derivative(lambda im: im, y, fam)  # noqa: E731
    d = probes.family_lie_derivative(conv, x, fam, out_gen)
    assert float(d.abs().max()) < 1e-12 * float(conv(x).abs().max())
    # ... and it is not scale-equivariant
    sc = image_scaling()
    out_sc = lambda y: probes.family_lie_derivative(lambda im: im, y, sc)  # noqa: E731
    ds = probes.family_lie_derivative(conv, x, sc, out_sc)
    assert float(ds.abs().max()) > 1e-3 * float(conv(x).abs().max())


def test_image_finite_differences_converge_first_order(rng):
    """Bicubic interpolation is C¹ (its second derivative jumps at pixel centres): central
    differences converge to the autograd derivative at O(ε)."""
    x = _blob(rng)
    lin = torch.as_tensor(rng.normal(size=x.shape[-2:]))
    f = lambda im: (im * lin).sum((-2, -1))  # noqa: E731
    fam = image_scaling()
    ag = probes.family_lie_derivative(f, x, fam)
    errs = [
        float((probes.family_lie_derivative(f, x, fam, method="fd", eps=e) - ag).abs().max())
        for e in (1e-3, 5e-4)
    ]
    assert errs[0] < 1e-2 * float(ag.abs().max())
    assert 1.6 < errs[0] / errs[1] < 2.4


def test_fitted_generator_of_non_compact_families(cloud):
    """Scaling and shear of point clouds: the centroid transforms by expm(tG); the
    GeneratorProbe fitted on family_latents recovers G, and G as output generator zeroes
    the Lie derivative."""
    ts = np.array([0.0, 0.05, -0.05, 0.1, -0.1, 0.5, -0.4])
    x = torch.randn(200, 8, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    for G in (np.eye(3), np.array([[0.0, 1.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]])):
        fam = PointCloudFamily(G)
        Z = probes.family_latents(lambda p: p.mean(-2), x, fam, ts)
        assert Z.shape == (len(ts), 200, 3)
        gp = probes.GeneratorProbe(n_bootstrap=0).fit(Z, ts)
        np.testing.assert_allclose(gp.generator_, G, atol=1e-8)
        d = probes.family_lie_derivative(lambda p: p.mean(-2), cloud, fam, gp.generator_)
        assert float(d.abs().max()) < 1e-7


def test_lie_derivative_bad_input(cloud):
    fam = point_cloud_rotation("x")
    with pytest.raises(ValueError, match="method"):
        probes.family_lie_derivative(_weighted_centroid, cloud, fam, method="spectral")
    with pytest.raises(ValueError, match="eps"):
        probes.family_lie_derivative(_weighted_centroid, cloud, fam, method="fd", eps=0.0)
    with pytest.raises(ValueError, match=r"\(3, 3\) matrix"):
        probes.family_lie_derivative(_weighted_centroid, cloud, fam, np.eye(4))
    with pytest.raises(TypeError, match="must return a tensor"):
        probes.family_lie_derivative(lambda p: (p,), cloud, fam)
    with pytest.raises(TypeError, match=r"floating-point torch\.Tensor"):
        probes.family_lie_derivative(_weighted_centroid, cloud.numpy(), fam)
    with pytest.raises(TypeError, match="family"):
        probes.family_lie_derivative(_weighted_centroid, cloud, "x")
    with pytest.raises(ValueError, match=r"\(3, d, d\)"):
        probes.so3_lie_derivative(_weighted_centroid, cloud, np.zeros((2, 3, 3)))
    with pytest.raises(ValueError, match="ts"):
        probes.family_latents(_weighted_centroid, cloud, fam, [])


def test_family_lie_derivative_goes_through_the_protected_path():
    # A model left in train mode with batch norm and dropout: the Lie derivative is the
    # eval-mode answer, and the model (weights, buffers, modes) is left bit-identical.
    import copy

    from latentgeo.actions import point_cloud_rotation
    from probes import family_lie_derivative

    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Linear(3, 8), torch.nn.BatchNorm1d(8), torch.nn.Dropout(0.3), torch.nn.Linear(8, 2)
    ).double()
    net.train()
    before = copy.deepcopy(net.state_dict())
    x = torch.randn(16, 3, dtype=torch.float64)

    class PointNetHead(torch.nn.Module):  # the model itself is passed: its modes are handled
        def __init__(self):
            super().__init__()
            self.net = net

        def forward(self, p):
            return self.net(p.reshape(-1, 3)).reshape(*p.shape[:-1], 2).mean(dim=-2)

    fn = PointNetHead().train()

    rng = torch.get_rng_state()
    d_train = family_lie_derivative(fn, x[None], point_cloud_rotation("z"))
    assert fn.training and all(m.training for m in net.modules())
    for k, v in net.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert torch.equal(torch.get_rng_state(), rng)
    net.eval()
    d_eval = family_lie_derivative(fn, x[None], point_cloud_rotation("z"))
    torch.testing.assert_close(d_train, d_eval, rtol=1e-12, atol=1e-12)
