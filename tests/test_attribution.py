"""probes.equivariance_attribution: planted networks, exactly equivariant but for one layer,
put the error on that layer; the contributions sum to the total (intervention: telescoping;
Lie derivative: the chain rule, checked against probes.family_lie_derivative)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import probes
from latentgeo.actions import ImageRotationAngles, ImageRotations, PointCloudFamily, so3_basis

# float64 round-off of these small networks (a few hundred multiply-adds per value).
TOL = 1e-10


def _sym_kernel(w: torch.Tensor) -> torch.Tensor:
    """Average of a conv kernel over its four quarter turns: the conv commutes with rot90."""
    return sum(torch.rot90(w, k, dims=(-2, -1)) for k in range(4)) / 4


class SymConv(torch.nn.Module):
    def __init__(self, c_in: int, c_out: int, gen: torch.Generator, stride: int = 1) -> None:
        super().__init__()
        w = torch.randn(c_out, c_in, 3, 3, generator=gen, dtype=torch.float64)
        self.weight = torch.nn.Parameter(_sym_kernel(w))
        self.bias = torch.nn.Parameter(torch.randn(c_out, generator=gen, dtype=torch.float64))
        self.stride = stride

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return F.conv2d(h, self.weight, self.bias, stride=self.stride, padding=1)


class PositionBias(SymConv):
    """An equivariant conv plus a fixed, spatially varying bias map (not rot90-invariant)."""

    def __init__(self, c: int, size: int, gen: torch.Generator) -> None:
        super().__init__(c, c, gen)
        self.pos = torch.nn.Parameter(
            torch.randn(c, size, size, generator=gen, dtype=torch.float64)
        )

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return super().forward(h) + self.pos


class AsymPad(SymConv):
    """The symmetric kernel, but padded on the top/left only (the map shifts by one pixel)."""

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return F.conv2d(F.pad(h, (2, 0, 2, 0)), self.weight, self.bias)


class Pool(torch.nn.Module):
    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h.mean(dim=(-2, -1))


def _cnn(breaking: str, size: int = 8) -> torch.nn.Sequential:
    gen = torch.Generator().manual_seed(0)
    middle = {
        "none": SymConv(4, 4, gen),
        "bias": PositionBias(4, size, gen),
        "pad": AsymPad(4, 4, gen),
        "stride": SymConv(4, 4, gen, stride=2),
    }[breaking]
    head = torch.nn.Linear(4, 3).double()
    return torch.nn.Sequential(
        SymConv(1, 4, gen),
        torch.nn.ReLU(),
        middle,
        torch.nn.Tanh(),
        SymConv(4, 4, gen),
        Pool(),
        head,
    )


LAYERS = ["0", "1", "2", "3", "4"]


def _images(n: int = 6, size: int = 8) -> torch.Tensor:
    return torch.randn(
        n, 1, size, size, generator=torch.Generator().manual_seed(1), dtype=torch.float64
    )


@pytest.mark.parametrize("breaking", ["bias", "pad", "stride"])
def test_intervention_puts_the_error_on_the_breaking_layer(breaking: str) -> None:
    net = _cnn(breaking)
    ds = probes.equivariance_attribution(net, ImageRotations("C4"), _images(), LAYERS)
    total = float(ds.total.sum())
    assert total > 1e-3  # the planted layer does break the invariance of the logits
    contrib = ds.contribution.sum("element").to_series()
    assert contrib["2"] == pytest.approx(total, rel=TOL)
    others = contrib.drop("2")
    assert np.abs(others.to_numpy()).max() < TOL * total
    assert abs(float(ds.rest.sum())) < TOL * total
    # error_drop: making any layer from the planted one on equivariant removes all the error.
    drop = ds.error_drop.sum("element").to_series()
    assert abs(drop["0"]) < TOL * total and abs(drop["1"]) < TOL * total
    assert drop[["2", "3", "4"]].to_numpy() == pytest.approx(total, rel=TOL)
    assert set(ds.representation.values) == {"input"}
    assert np.isnan(ds.fit_r2.values).all()


def test_intervention_of_an_equivariant_network_is_zero() -> None:
    ds = probes.equivariance_attribution(_cnn("none"), ImageRotations("D4"), _images(), LAYERS)
    assert float(ds.total.max()) < TOL
    assert float(np.abs(ds.contribution).max()) < TOL


@pytest.mark.filterwarnings("ignore:the fitted representation")  # fitted on few samples
def test_intervention_sum_law_and_fitted_representations() -> None:
    """A generic MLP on flattened images: representations are fitted, and contributions plus
    the rest equal the total to round-off (the telescoping identity)."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Flatten(),
        torch.nn.Linear(64, 12),
        torch.nn.Tanh(),
        torch.nn.Linear(12, 5),
        torch.nn.Tanh(),
        torch.nn.Linear(5, 2),
    ).double()
    x = torch.randn(40, 1, 8, 8, dtype=torch.float64)
    ds = probes.equivariance_attribution(net, ImageRotations("C4"), x, ["1", "2", "3", "4"])
    assert list(ds.representation.values) == ["fitted"] * 4
    assert np.all((ds.fit_r2.values > -1) & (ds.fit_r2.values <= 1))
    law = ds.contribution.sum("layer") + ds.rest - ds.total
    assert float(np.abs(law).max()) < 1e-12
    assert ds.attrs["sum_error"] < 1e-12
    assert float(ds.total.sum()) > 0.01


def test_intervention_on_sampled_rotations_and_equivariant_outputs() -> None:
    """SO(2) sampled by interpolated rotations: layers get fitted maps; an output that lives
    on the image grid is compared through the input's action (``out_action="input"``)."""
    net = _cnn("bias")[:5]  # up to the last conv: a feature map, rot90-equivariant but for '2'
    ds = probes.equivariance_attribution(
        net, ImageRotations("C4"), _images(), ["0", "2"], out_action="input"
    )
    total = float(ds.total.sum())
    assert total > 1e-3
    assert float(ds.contribution.sel(layer="2").sum()) == pytest.approx(total, rel=TOL)
    cont = probes.equivariance_attribution(
        _cnn("none"), ImageRotationAngles(8, group="SO2"), _images(20, 9), ["0", "4"]
    )
    law = cont.contribution.sum("layer") + cont.rest - cont.total
    assert float(np.abs(law).max()) < 1e-12
    assert list(cont.representation.values) == ["fitted", "fitted"]


# -- Lie derivative --------------------------------------------------------------------


class Center(torch.nn.Module):
    def forward(self, p: torch.Tensor) -> torch.Tensor:
        return p - p.mean(dim=-2, keepdim=True)


class Gate(torch.nn.Module):
    def forward(self, p: torch.Tensor) -> torch.Tensor:
        return p * torch.sigmoid((p * p).sum(-1, keepdim=True))


class Shift(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.b = torch.nn.Parameter(torch.tensor([0.3, -0.2, 0.5], dtype=torch.float64))

    def forward(self, p: torch.Tensor) -> torch.Tensor:
        return p + self.b


class Mean(torch.nn.Module):
    def forward(self, p: torch.Tensor) -> torch.Tensor:
        return p.mean(dim=-2)


def test_lie_attribution_so3_puts_the_error_on_the_bias_and_sums_to_the_lie_derivative() -> None:
    net = torch.nn.Sequential(Center(), Gate(), Shift(), Gate(), Mean())
    x = torch.randn(5, 7, 3, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    basis = so3_basis()
    ds = probes.equivariance_attribution(net, "so3", x, ["0", "1", "2", "3"], out_generator=basis)
    assert list(ds.element.values) == ["x", "y", "z"]
    assert set(ds.generator.values.ravel()) == {"input"}
    for i, name in enumerate("xyz"):
        lf = probes.family_lie_derivative(net, x, PointCloudFamily(basis[i]), basis[i])
        # The total is the end-to-end Lie derivative computed independently ...
        assert float(ds.total.sel(element=name)) == pytest.approx(
            float(lf.norm(dim=1).mean()), rel=1e-12
        )
        # ... and the layer terms sum to it.
        s = float(ds.contribution.sel(element=name).sum() + ds.rest.sel(element=name))
        assert s == pytest.approx(float(ds.total.sel(element=name)), rel=1e-12)
    assert ds.attrs["sum_error"] < 1e-12
    total = float(ds.total.sum())
    assert total > 0.01
    c = ds.contribution.sum("element").to_series()
    assert c["2"] == pytest.approx(total, rel=1e-10)
    assert np.abs(c.drop("2").to_numpy()).max() < 1e-10 * total
    assert float(np.abs(ds.norm.sel(layer=["0", "1", "3"])).max()) < 1e-10 * total
    assert abs(float(ds.rest.sum())) < 1e-10 * total


def _spectral_derivative(w: int) -> np.ndarray:
    """Periodic spectral differentiation (Trefethen, *Spectral methods in MATLAB*, ch. 3):
    antisymmetric and circulant, so it commutes with every circular convolution."""
    j = np.arange(w)
    d = j[:, None] - j[None, :]
    with np.errstate(divide="ignore"):
        D = 0.5 * (-1.0) ** d / np.tan(np.pi * d / w)
    D[d == 0] = 0.0
    return D


class AsymPadConv(torch.nn.Conv2d):
    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return super().forward(F.pad(h, (2, 0, 2, 0)))


def test_lie_attribution_of_sub_pixel_translation_finds_the_asymmetric_padding() -> None:
    torch.manual_seed(3)
    circ = {"padding": 1, "padding_mode": "circular"}
    net = torch.nn.Sequential(
        torch.nn.Conv2d(1, 3, 3, **circ),
        AsymPadConv(3, 3, 3),
        torch.nn.Conv2d(3, 3, 3, **circ),
        Pool(),
        torch.nn.Linear(3, 2),
    ).double()
    shift = PointCloudFamily(_spectral_derivative(8))  # sub-pixel circular shift along W
    x = torch.randn(4, 1, 8, 8, dtype=torch.float64)
    ds = probes.equivariance_attribution(net, shift, x, ["0", "1", "2"])
    total = float(ds.total.sum())
    assert total > 1e-3
    c = ds.contribution.sum("element").to_series()
    assert c["1"] == pytest.approx(total, rel=1e-10)
    assert abs(c["0"]) < 1e-10 * total and abs(c["2"]) < 1e-10 * total
    lf = probes.family_lie_derivative(net, x, shift)
    assert total == pytest.approx(float(lf.norm(dim=1).mean()), rel=1e-12)


def test_lie_attribution_fitted_generators_keep_the_sum_law() -> None:
    torch.manual_seed(4)
    net = torch.nn.Sequential(
        torch.nn.Flatten(), torch.nn.Linear(21, 6), torch.nn.Tanh(), torch.nn.Linear(6, 2)
    ).double()
    x = torch.randn(30, 7, 3, dtype=torch.float64)
    ds = probes.equivariance_attribution(net, "so3", x, ["1", "2"])
    assert set(ds.generator.values.ravel()) == {"fitted"}
    law = ds.contribution.sum("layer") + ds.rest - ds.total
    assert float(np.abs(law).max()) < 1e-12


def test_attribution_errors() -> None:
    net = _cnn("none")
    with pytest.raises(TypeError, match=r"torch\.nn\.Module"):
        probes.equivariance_attribution(lambda x: x, ImageRotations("C4"), _images(), ["0"])
    with pytest.raises(ValueError, match="nope"):
        probes.equivariance_attribution(net, ImageRotations("C4"), _images(), ["nope"])
    with pytest.raises(TypeError, match=r"must be a torch\.Tensor"):
        probes.equivariance_attribution(net, ImageRotations("C4"), np.zeros((2, 1, 8, 8)), ["0"])
    with pytest.raises(TypeError, match="floating-point"):
        probes.equivariance_attribution(net, "so3", torch.zeros(2, 4, 3, dtype=torch.int64), ["0"])
    with pytest.raises(TypeError, match="one-parameter family"):
        probes.equivariance_attribution(net, 3, _images(), ["0"])
    with pytest.raises(ValueError, match="representation"):
        probes.equivariance_attribution(
            net, ImageRotations("C4"), _images(), ["0"], layer_reps="bogus"
        )
    with pytest.raises(ValueError, match="cannot act"):
        probes.equivariance_attribution(
            net, ImageRotations("C4"), _images(), ["5"], layer_reps="input"
        )


class MirrorPairConv(torch.nn.Module):
    """Channels in mirrored pairs: a kernel and its left-right mirror, so flipping the
    input flips the maps and swaps the two channels of each pair (Bökman & Kahl 2023)."""

    def __init__(self, gen: torch.Generator) -> None:
        super().__init__()
        w = torch.randn(2, 1, 3, 3, generator=gen, dtype=torch.float64)
        self.weight = torch.nn.Parameter(torch.cat([w, w.flip(-1)]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight, padding=1)


class SpatialBias(torch.nn.Module):
    def __init__(self, gen: torch.Generator, scale: float) -> None:
        super().__init__()
        self.b = torch.nn.Parameter(
            scale * torch.randn(4, 8, 8, generator=gen, dtype=torch.float64)
        )

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h + self.b


class SumAll(torch.nn.Module):
    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h.mean(dim=(-3, -2, -1))[:, None]


@pytest.mark.filterwarnings("ignore:the fitted representation")  # fitted on few samples
@pytest.mark.parametrize("scale", [0.0, 1.0])
def test_channel_maps_find_mirrored_pairs(scale: float) -> None:
    from latentgeo.groups import Dihedral

    gen = torch.Generator().manual_seed(7)
    net = torch.nn.Sequential(
        MirrorPairConv(gen), torch.nn.Tanh(), SpatialBias(gen, scale), torch.nn.Tanh(), SumAll()
    )
    flip = ImageRotations(Dihedral(1))
    layers = ["0", "1", "2", "3"]
    ds = probes.equivariance_attribution(net, flip, _images(), layers, layer_reps="channels")
    # The flip of a mirrored pair is its swap: the fitted channel maps are exact.
    assert ds.fit_r2.sel(layer=["0", "1"]).values == pytest.approx([1.0, 1.0], abs=1e-12)
    total = float(ds.total.sum())
    c = ds.contribution.sum("element").to_series()
    if scale == 0.0:
        # Invariant end to end, equivariant layer by layer under flip-and-swap, ...
        assert total < TOL
        assert np.abs(c.to_numpy()).max() < TOL
        # ... which a ridge map of the flattened maps (6 samples) fits less well.
        plain = probes.equivariance_attribution(net, flip, _images(), layers, layer_reps="fitted")
        assert float(ds.fit_r2.sel(layer="0")) > float(plain.fit_r2.sel(layer="0"))
    else:
        assert total > 1e-3
        assert np.abs(c[["0", "1"]].to_numpy()).max() < TOL * total
        law = ds.contribution.sum("layer") + ds.rest - ds.total
        assert float(np.abs(law).max()) < 1e-12


def test_lie_attribution_through_image_rotation_matches_the_family_lie_derivative() -> None:
    """Bicubic rotation (grid_sample: no forward-mode formula, so the double-backward path):
    the terms still sum to the independently computed end-to-end Lie derivative."""
    from latentgeo.actions import image_rotation

    torch.manual_seed(5)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(1, 3, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(3, 3, 3, padding=1),
        Pool(),
        torch.nn.Linear(3, 2),
    ).double()
    x = torch.randn(4, 1, 8, 8, dtype=torch.float64)
    fam = image_rotation()
    ds = probes.equivariance_attribution(net, fam, x, ["0", "1", "2", "3"])
    lf = probes.family_lie_derivative(net, x, fam)
    total = float(ds.total.sum())
    assert total == pytest.approx(float(lf.norm(dim=1).mean()), rel=1e-10)
    assert float(ds.contribution.sum() + ds.rest.sum()) == pytest.approx(total, rel=1e-12)
    assert ds.attrs["sum_error"] < 1e-12 * total
    assert set(ds.generator.values.ravel()) == {"input"}


class WithAux(torch.nn.Module):
    """A block returning ``(h, aux)``: the output rule reads ``h``, a replacement goes there."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = SymConv(1, 2, torch.Generator().manual_seed(9))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.conv(x)
        return h, h.detach() * 0


class Unpack(torch.nn.Module):
    def forward(self, out: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        return out[0] + out[1]


def test_models_are_measured_not_changed_and_structured_outputs_are_replaced() -> None:
    net = torch.nn.Sequential(
        WithAux(),
        Unpack(),
        torch.nn.BatchNorm2d(2),
        PositionBias(2, 8, torch.Generator()),
        torch.nn.Tanh(),
        Pool(),
    ).double()
    net.train()
    net[2].running_mean.fill_(0.3)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    rng = torch.get_rng_state()
    ds = probes.equivariance_attribution(net, ImageRotations("C4"), _images(), ["0", "2", "3"])
    assert float(ds.total.sum()) > 1e-3
    # the tuple-returning block was made equivariant at its first tensor: no error before '3'
    c = ds.contribution.sum("element").to_series()
    assert abs(c["0"]) < TOL * float(ds.total.sum()) and abs(c["2"]) < TOL * float(ds.total.sum())
    assert net.training and net[2].training
    assert torch.equal(torch.get_rng_state(), rng)
    for k, v in net.state_dict().items():
        assert torch.equal(v, before[k]), k


@pytest.mark.parametrize("action", [ImageRotations("D4"), ImageRotations("C4")])
def test_orbit_average_by_gathers_equals_the_action_loop(action) -> None:
    from probes._orbit_reps import ActionRep

    H = torch.randn(action.order, 3, 2, 5, 5, dtype=torch.float64)
    fast_rep = ActionRep(action)
    fast = fast_rep.average(H)
    assert fast_rep._maps[(2, 5, 5)] is not None  # rot90/flips permute the entries
    slow_rep = ActionRep(action)
    slow_rep._maps[(2, 5, 5)] = None  # force the loop over the action
    torch.testing.assert_close(fast, slow_rep.average(H), rtol=0, atol=1e-14)
    # The average is exactly equivariant (g·avg[e] == avg[g]) and a projection.
    for g in range(action.order):
        torch.testing.assert_close(action._act(g, fast[0]), fast[g], rtol=0, atol=1e-14)
    torch.testing.assert_close(fast_rep.average(fast), fast, rtol=0, atol=1e-14)


def test_a_fitted_representation_worse_than_the_mean_is_warned_about() -> None:
    # 8 samples of a random 3-logit head: the ridge maps of the logits do not generalise
    # (held-out R² far below 0), and averaging under their pseudo-inverses blows up.
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(1, 3, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.Flatten(),
        torch.nn.Linear(108, 3),
    )
    x = torch.randn(8, 1, 6, 6, generator=torch.Generator().manual_seed(5))
    with pytest.warns(UserWarning, match=r"layer '3' \(held-out R² -[0-9.]+\) predicts") as rec:
        ds = probes.equivariance_attribution(net, ImageRotations("C4"), x, ["0", "3"])
    assert rec[0].filename == __file__  # points at the user's call
    assert float(ds.fit_r2.sel(layer="3")) < 0
    # Layers the input's action moves exactly are not fitted: no warning.
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        probes.equivariance_attribution(net, ImageRotations("C4"), x, ["0", "1"])
