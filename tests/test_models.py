"""Tests of latentgeo.models: exact C4 equivariance of P4CNN, layer semantics, seeded init."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from latentgeo.actions import ImageRotations
from latentgeo.models import (
    P4CNN,
    GroupConv2d,
    LiftingConv2d,
    ModularMLP,
    RotationPool,
    SmallCNN,
    SpatialMaxPool,
    p4_rotate,
)

F32 = dict(rtol=1e-5, atol=1e-5)  # the brief's bar for float32 equivariance
F64 = dict(rtol=1e-10, atol=1e-12)


def _close(actual, expected, rtol, atol):
    np.testing.assert_allclose(
        actual.detach().cpu().numpy(), expected.detach().cpu().numpy(), rtol=rtol, atol=atol
    )


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def _record(model, names, x):
    """Outputs of the named submodules for input x (forward hooks, always removed)."""
    out, handles = {}, []
    modules = dict(model.named_modules())
    try:
        for name in names:
            handles.append(
                modules[name].register_forward_hook(lambda m, i, o, n=name: out.__setitem__(n, o))
            )
        with torch.no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
    return out


P4_LAYERS = ["lift", "relu1", "gconv1", "relu2", "spatial_pool", "gconv2", "relu3"]


# ----------------------------------------------------------------------------- P4CNN
@pytest.mark.parametrize("size", [8, 9])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_p4cnn_layers_equivariant_and_logits_invariant(size, dtype):
    model = P4CNN(in_channels=2, n_classes=5, width=4, seed=1, dtype=dtype)
    x = torch.rand(3, 2, size, size, generator=_gen(), dtype=dtype)
    tol = F32 if dtype == torch.float32 else F64
    names = [*P4_LAYERS, "pool", "gap", "fc"]
    base = _record(model, names, x)
    for k in (1, 2, 3):
        turned = _record(model, names, torch.rot90(x, k, dims=(-2, -1)))
        for name in P4_LAYERS:
            assert turned[name].shape[-3] == 4
            _close(turned[name], p4_rotate(base[name], k), **tol)
        _close(turned["pool"], torch.rot90(base["pool"], k, dims=(-2, -1)), **tol)
        _close(turned["gap"], base["gap"], **tol)
        _close(turned["fc"], base["fc"], **tol)


def test_p4cnn_invariance_through_the_action_and_not_to_flips():
    model = P4CNN(width=4)
    x = torch.rand(4, 1, 8, 8, generator=_gen())
    orbit = ImageRotations("D4").orbit(x)  # (8, 4, 1, 8, 8): rotations, then reflections
    with torch.no_grad():
        logits = model(orbit.flatten(0, 1)).view(8, 4, -1)
    for g in range(4):
        _close(logits[g], logits[0], **F32)
    # P4 is not mirror-invariant: the test above could fail for a model that is not invariant.
    assert (logits[4] - logits[0]).abs().max() > 1e-3
    assert (logits[0, 0] - logits[0, 1]).abs().max() > 1e-3  # and it is not constant


def test_plain_cnn_is_not_rotation_invariant():
    # The same check on the plain CNN fails: equivariance above is not an artefact of the test.
    model = SmallCNN(width=4)
    x = torch.rand(4, 1, 8, 8, generator=_gen())
    with torch.no_grad():
        diff = model(torch.rot90(x, 1, dims=(-2, -1))) - model(x)
    assert diff.abs().max() > 1e-3


def test_lifting_and_group_conv_match_their_definition():
    # Against a direct loop over rotations (float64, so only rounding separates them).
    with torch.random.fork_rng(devices=[]):  # the layers draw init like any torch layer
        lift = LiftingConv2d(2, 3, 3).double()
        gconv = GroupConv2d(3, 2, 3).double()
    lift.reset_parameters(generator=_gen(1))
    gconv.reset_parameters(generator=_gen(2))
    x = torch.rand(2, 2, 6, 6, generator=_gen(), dtype=torch.float64)
    y = lift(x)
    for r in range(4):
        want = F.conv2d(x, torch.rot90(lift.weight, r, dims=(-2, -1)), lift.bias, padding=1)
        _close(y[:, :, r], want, **F64)
    z = gconv(y)
    for r in range(4):
        want = (
            sum(
                F.conv2d(
                    y[:, :, s],
                    torch.rot90(gconv.weight[:, :, (s - r) % 4], r, dims=(-2, -1)),
                    padding=1,
                )
                for s in range(4)
            )
            + gconv.bias[None, :, None, None]
        )
        _close(z[:, :, r], want, **F64)


def test_p4_building_blocks():
    z = torch.rand(2, 3, 4, 6, 6, generator=_gen())
    # p4_rotate is a C4 action on feature maps: four quarter turns are the identity.
    w = z
    for _ in range(4):
        w = p4_rotate(w, 1)
    assert torch.equal(w, z)
    assert torch.equal(p4_rotate(p4_rotate(z, 1), 2), p4_rotate(z, 3))
    assert torch.equal(RotationPool("max")(z), z.amax(dim=2))
    _close(RotationPool("mean")(z), z.mean(dim=2), **F32)
    pool = SpatialMaxPool()
    for size, out in ((6, 3), (7, 4)):
        x = torch.rand(2, 3, size, size, generator=_gen())
        y = pool(x)
        assert y.shape[-2:] == (out, out)
        assert torch.equal(pool(torch.rot90(x, 1, dims=(-2, -1))), torch.rot90(y, 1, dims=(-2, -1)))


# ----------------------------------------------------------------------------- SmallCNN
def test_small_cnn_layers_and_shapes():
    model = SmallCNN(in_channels=1, n_classes=10, width=16)
    names = dict(model.named_modules())
    for name in ("conv1", "conv2", "conv3", "fc", "relu1", "pool", "gap"):
        assert name in names
    x = torch.rand(5, 1, 8, 8, generator=_gen())
    out = _record(model, ["conv1", "relu2", "pool", "conv3", "gap", "fc"], x)
    assert out["conv1"].shape == (5, 16, 8, 8)
    assert out["pool"].shape == (5, 16, 4, 4)
    assert out["conv3"].shape == (5, 32, 4, 4)
    assert out["gap"].shape == (5, 32)
    assert out["fc"].shape == (5, 10)
    assert (out["relu2"] >= 0).all()


def test_small_cnn_learns_digits():
    from latentgeo.datasets import digits

    x, y = digits("train", seed=0)
    x, y = x[:256], y[:256]
    model = SmallCNN(width=8, seed=0)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(40):
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


# ----------------------------------------------------------------------------- ModularMLP
@pytest.mark.parametrize("combine", ["concat", "sum"])
def test_modular_mlp_layers(combine):
    p = 11
    model = ModularMLP(p, d_embed=8, d_hidden=16, combine=combine)
    x = torch.randint(p, (7, 2), generator=_gen())
    out = _record(model, ["embed", "hidden", "hidden.linear", "out"], x)
    assert out["embed"].shape == (7, 2, 8)
    assert out["hidden"].shape == (7, 16) and (out["hidden"] >= 0).all()
    assert torch.equal(out["hidden"], out["hidden.linear"].clamp_min(0))
    assert out["out"].shape == (7, p)
    if combine == "sum":  # summed embeddings: the model cannot tell (a, b) from (b, a)
        _close(model(x.flip(1)), model(x), **F32)


def test_modular_mlp_learns_addition():
    from latentgeo.datasets import modular_addition

    p = 7
    train, _ = modular_addition(p, train_fraction=0.9, seed=0)
    model = ModularMLP(p, d_embed=16, d_hidden=64, seed=0)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(150):
        opt.zero_grad()
        loss = F.cross_entropy(model(train.inputs), train.labels)
        loss.backward()
        opt.step()
    acc = (model(train.inputs).argmax(1) == train.labels).float().mean()
    assert acc == 1.0


# ----------------------------------------------------------------------------- init, errors
@pytest.mark.parametrize(
    "make",
    [
        lambda **kw: SmallCNN(width=4, **kw),
        lambda **kw: P4CNN(width=3, **kw),
        lambda **kw: ModularMLP(5, d_embed=4, d_hidden=8, **kw),
    ],
)
def test_init_is_seeded_and_leaves_global_rng_alone(make):
    state = torch.get_rng_state()
    a, b, c = make(seed=3), make(seed=3), make(seed=4)
    d = make(generator=torch.Generator().manual_seed(3))
    assert torch.equal(state, torch.get_rng_state())
    sa, sc = a.state_dict(), c.state_dict()
    for key, value in sa.items():
        assert torch.equal(value, b.state_dict()[key])
        assert torch.equal(value, d.state_dict()[key])
    assert any(not torch.equal(v, sc[k]) for k, v in sa.items())
    assert torch.equal(
        make().state_dict()[next(iter(sa))], make(seed=0).state_dict()[next(iter(sa))]
    )
    # PyTorch's default scale: weights and biases in U(±1/√fan_in); embeddings N(0, 1).
    for name, p in a.named_parameters():
        if "embed" in name:
            assert 0.5 < p.std().item() < 1.5
            continue
        w = dict(a.named_parameters())[name.replace("bias", "weight")]
        bound = 1 / np.sqrt(np.prod(w.shape[1:]))
        assert p.abs().max() <= bound
        if p.numel() >= 100:  # uniform on ±bound has std bound/√3
            assert abs(p.std().item() * np.sqrt(3) / bound - 1) < 0.2
    e = make(seed=3, dtype=torch.float64)
    assert all(p.dtype == torch.float64 for p in e.parameters())


@pytest.mark.parametrize(
    ("make", "exc", "match"),
    [
        (lambda: SmallCNN(width=0), ValueError, "width must be an int >= 1, got 0"),
        (lambda: P4CNN(kernel_size=4), ValueError, "odd int.*got 4"),
        (lambda: P4CNN(n_classes=2.5), TypeError, "2.5"),
        (lambda: ModularMLP(7, combine="mul"), ValueError, "'mul'"),
        (lambda: SmallCNN(seed=1, generator=torch.Generator()), ValueError, "not both"),
        (lambda: SmallCNN(seed="a"), TypeError, "'a'"),
        (lambda: RotationPool("min"), ValueError, "'min'"),
    ],
)
def test_bad_construction(make, exc, match):
    with pytest.raises(exc, match=match):
        make()


def test_bad_inputs():
    with pytest.raises(ValueError, match=r"\(n, 1, H, W\).*\(2, 3, 8, 8\)"):
        SmallCNN()(torch.zeros(2, 3, 8, 8))
    with pytest.raises(ValueError, match=r"\(2, 1, 8\)"):
        P4CNN()(torch.zeros(2, 1, 8))
    with pytest.raises(ValueError, match=r"\[0, 7\).*\[0, 9\]"):
        ModularMLP(7)(torch.tensor([[0, 9]]))
    with pytest.raises(TypeError, match="float32"):
        ModularMLP(7)(torch.zeros(1, 2))
    with pytest.raises(ValueError, match=r"\(n, 2\)"):
        ModularMLP(7)(torch.zeros(1, 3, dtype=torch.int64))
    with pytest.raises(ValueError, match=r"\(\.\.\., 4, H, W\)"):
        p4_rotate(torch.zeros(2, 3, 5, 5))


def test_models_trace_without_graph_breaks():
    # torch.compile(fullgraph=True) fails on any graph break (e.g. a data-dependent check);
    # the eager backend traces with dynamo but skips code generation, keeping this fast.
    x_tokens = torch.randint(7, (5, 2), generator=_gen())
    x_images = torch.rand(2, 1, 8, 8, generator=_gen())
    for model, x in ((ModularMLP(7), x_tokens), (P4CNN(width=3), x_images)):
        compiled = torch.compile(model, backend="eager", fullgraph=True)
        with torch.no_grad():
            _close(compiled(x), model(x), **F32)
