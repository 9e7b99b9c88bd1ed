"""Which tensor an output stands for: one depth-first rule, selectors, and what the store keeps."""

from __future__ import annotations

import dataclasses
from collections import OrderedDict
from typing import NamedTuple

import numpy as np
import pytest
import torch
from torch import nn

import latentgeo
from latentgeo._outputs import describe_selector, parse_selector, select_output
from latentgeo.actions import ImageRotationAngles, ImageRotations
from latentgeo.groups import Cyclic
from latentgeo.testing import assert_equivariant
from probes import lie_derivative

ACTION = ImageRotations(Cyclic(4))
A, B, C, D = (torch.full((2, 3), float(v)) for v in range(4))


class Pair(NamedTuple):
    output: torch.Tensor
    state: torch.Tensor


@dataclasses.dataclass
class Out:
    note: str
    features: torch.Tensor
    extra: torch.Tensor | None = None


class Wrapped:
    """A tensor wrapper like escnn's ``GeometricTensor`` (the tensor in ``.tensor``)."""

    def __init__(self, tensor: torch.Tensor, field_type: str = "regular") -> None:
        self.tensor = tensor
        self.type = field_type


@pytest.mark.parametrize(
    ("output", "want", "path"),
    [
        (A, A, ""),
        (((A, B), C), A, "0.0"),
        ((("no tensor", None), [None, (B, C)]), B, "1.1.0"),
        ({"loss": None, "logits": B, "hidden": A}, B, "logits"),
        (OrderedDict(z=C, a=A), C, "z"),
        (Pair(B, A), B, "0"),
        (Out("x", C, A), C, "features"),
        ([Wrapped(D), A], D, "0.tensor"),
        ({"blocks": [Out("x", Wrapped(B))]}, B, "blocks.0.features.tensor"),
        ({1: A, 0: B}, A, "1"),  # the mapping's own order, not sorted keys
    ],
)
def test_first_tensor_depth_first_in_reading_order(output, want, path):
    got, taken = select_output(output)
    assert got is want
    assert taken == path
    if path:  # the reported path selects the same tensor
        assert select_output(output, path)[0] is want


def test_hugging_face_model_outputs():
    outputs = pytest.importorskip("transformers.modeling_outputs")
    hidden = (A, B, C)
    out = outputs.BaseModelOutputWithPooling(
        last_hidden_state=D, pooler_output=None, hidden_states=hidden
    )
    assert select_output(out) == (D, "last_hidden_state")  # unset fields are not in reading order
    assert select_output(out, "hidden_states.-1") == (C, "hidden_states.-1")
    assert select_output(out, ("hidden_states", 1)) == (B, "hidden_states.1")
    assert select_output(out, "hidden_states") == (A, "hidden_states.0")  # the rule continues
    seq = outputs.SequenceClassifierOutput(loss=None, logits=B, hidden_states=hidden)
    assert select_output(seq) == (B, "logits")
    assert select_output(seq, lambda o: o.hidden_states[2])[0] is C


def test_selector_errors_name_the_layer_and_the_step():
    with pytest.raises(TypeError, match=r"layer 'blk'.*holds no tensor"):
        select_output(("a", {"b": None}), what="layer 'blk'")
    with pytest.raises(ValueError, match="no key 'hidden'"):
        select_output({"logits": A}, "hidden.0")
    with pytest.raises(ValueError, match="index 5 out of range"):
        select_output((A, B), "5")
    with pytest.raises(ValueError, match="needs an integer index"):
        select_output((A, B), "first")
    with pytest.raises(ValueError, match="empty step"):
        parse_selector("0..1")
    with pytest.raises(TypeError, match="output selector"):
        parse_selector(3.5)
    with pytest.raises(TypeError, match="returned str"):
        select_output(A, lambda o: "nope")
    assert select_output(Pair(A, B), "state")[0] is B  # named-tuple fields by name


def test_describe_selector():
    assert describe_selector(None) == "auto"
    assert describe_selector("hidden_states.-1") == "hidden_states.-1"
    assert describe_selector(["a.b", 0]) == "a.b.0"
    assert describe_selector(select_output).startswith("callable:latentgeo._outputs.select_output")


class Block(nn.Module):
    """Returns ``((features, gate), aux)``: a constant side output last."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(64, 7)

    def forward(self, x: torch.Tensor):
        h = self.lin(x.flatten(1))
        return (h, torch.sigmoid(h)), torch.ones_like(h)


class DictBlock(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(64, 5)

    def forward(self, x: torch.Tensor):
        h = self.lin(x.flatten(1))
        return {"mask": None, "hidden": h, "scores": 2 * h}


class GeometricLayer(nn.Module):
    """A layer that takes and returns a tensor wrapper, as escnn's ``R2Conv`` does."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3, padding=1)

    def forward(self, x: Wrapped) -> Wrapped:
        return Wrapped(self.conv(x.tensor))


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.blk = Block()
        self.dct = DictBlock()
        self.geo = GeometricLayer()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        (h, g), aux = self.blk(x)
        d = self.dct(x)
        y = self.geo(Wrapped(x)).tensor
        return (h * g + aux).sum(1) + d["scores"].sum(1) + y.flatten(1).sum(1)


def test_recorder_follows_the_rule_and_stores_selector_and_path(tmp_path):
    torch.manual_seed(0)
    net = Net()
    x = torch.randn(6, 1, 8, 8)
    path = tmp_path / "run.zarr"
    select = {"dct": "scores", "geo": None, "blk": "0.1"}
    layers = ["blk", "dct", "geo", "blk.lin"]
    with latentgeo.LatentRecorder(net, layers, ACTION, x, path, select=select) as rec:
        rec.record(0)
    run = latentgeo.open_run(path)
    orbit = ACTION.orbit(x).reshape(-1, 1, 8, 8)
    with torch.no_grad():
        h = net.blk.lin(orbit.flatten(1))
        want = {
            "blk": torch.sigmoid(h),
            "dct": 2 * net.dct.lin(orbit.flatten(1)),
            "geo": net.geo.conv(orbit).flatten(1),
            "blk.lin": h,
        }
    for layer, value in want.items():
        got = run.latents(layer).values[0]
        np.testing.assert_allclose(got, value.reshape(4, 6, -1).numpy(), rtol=1e-6, atol=1e-6)
    attrs = {layer: run.layer_attrs(layer) for layer in layers}
    assert (attrs["blk"]["select"], attrs["blk"]["output_path"]) == ("0.1", "0.1")
    assert (attrs["dct"]["select"], attrs["dct"]["output_path"]) == ("scores", "scores")
    assert (attrs["geo"]["select"], attrs["geo"]["output_path"]) == ("auto", "tensor")
    assert (attrs["blk.lin"]["select"], attrs["blk.lin"]["output_path"]) == ("auto", "")


def test_recorder_default_rule_on_nested_tuples_records_the_features(tmp_path):
    torch.manual_seed(0)
    net = Net()
    x = torch.randn(5, 1, 8, 8)
    with latentgeo.LatentRecorder(net, ["blk"], ACTION, x, tmp_path / "r.zarr") as rec:
        rec.record(0)
    z = latentgeo.open_run(tmp_path / "r.zarr").latents("blk").values[0]
    with torch.no_grad():
        h = net.blk.lin(ACTION.orbit(x).reshape(20, -1)).reshape(4, 5, 7)
    np.testing.assert_allclose(z, h.numpy(), rtol=1e-6, atol=1e-6)
    assert not np.allclose(z, 1.0)  # not the constant side output


def test_recorder_refuses_bad_selectors_before_touching_the_store(tmp_path):
    with pytest.raises(ValueError, match="not recorded"):
        latentgeo.LatentRecorder(Net(), ["blk"], ACTION, A, tmp_path / "a.zarr", select={"x": "0"})
    with pytest.raises(TypeError, match="output selector"):
        latentgeo.LatentRecorder(Net(), ["blk"], ACTION, A, tmp_path / "a.zarr", select=1.5)
    assert not (tmp_path / "a.zarr").exists()


class Changing(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(64, 3)
        self.calls = 0

    def forward(self, x: torch.Tensor):
        self.calls += 1
        h = self.lin(x.flatten(1))
        return {"a": h} if self.calls % 2 else {"b": h}


def test_an_output_that_changes_structure_is_an_error(tmp_path):
    net = nn.Sequential(Changing())
    x = torch.randn(4, 1, 8, 8)
    with latentgeo.LatentRecorder(net, ["0"], ACTION, x, tmp_path / "c.zarr", batch_size=8) as rec:
        with pytest.raises(ValueError, match="changed structure"):
            rec.record(0)


def test_lie_derivative_and_assert_equivariant_read_structured_outputs():
    outputs = pytest.importorskip("transformers.modeling_outputs")
    yy, xx = torch.meshgrid(torch.arange(8.0) - 3.5, torch.arange(8.0) - 3.5, indexing="ij")
    window = torch.exp(-(yy**2 + xx**2) / 6.0)

    class Radial(nn.Module):
        def forward(self, x: torch.Tensor):
            mass = (x[:, 0] * window).sum((1, 2))[:, None]
            return outputs.SequenceClassifierOutput(logits=mass, hidden_states=(x.flatten(1),))

    x = torch.randn(4, 1, 8, 8, dtype=torch.float64)
    d = lie_derivative(Radial(), x, ImageRotationAngles(8))
    assert d.shape == (4, 1)
    assert_equivariant(Radial(), ACTION, x)  # logits: invariant
    with pytest.raises(AssertionError, match="not invariant"):
        assert_equivariant(Radial(), ACTION, x, select="hidden_states.0")


@pytest.mark.slow
def test_a_real_hugging_face_model_records_its_model_outputs(tmp_path):
    """A tiny BERT: ``encoder`` returns a ``ModelOutput``, its layers tuples or tensors."""
    transformers = pytest.importorskip("transformers")
    from latentgeo.actions import SetPermutation

    config = transformers.BertConfig(
        vocab_size=20,
        hidden_size=8,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=16,
        max_position_embeddings=8,
    )
    torch.manual_seed(0)
    model = transformers.BertModel(config)
    model.train()  # dropout on: recording must see the eval-mode model
    ids = torch.randint(0, 20, (3, 4), generator=torch.Generator().manual_seed(0))
    action = SetPermutation(4, kind="sequence")
    path = tmp_path / "bert.zarr"
    layers = ["encoder", "encoder.layer.0", "pooler"]
    select = {"pooler": None, "encoder": None, "encoder.layer.0": None}
    with latentgeo.LatentRecorder(model, layers, action, ids, path, select=select) as rec:
        rec.record(0)
    run = latentgeo.open_run(path)
    assert model.training
    assert run.layer_attrs("encoder")["output_path"] == "last_hidden_state"
    orbit = action.orbit(ids).reshape(-1, 4)
    model.eval()
    with torch.no_grad():
        out = model(orbit)
    order = orbit.shape[0] // 3
    np.testing.assert_allclose(
        run.latents("encoder").values[0],
        out.last_hidden_state.reshape(order, 3, -1).numpy(),
        rtol=1e-5,
        atol=1e-6,
    )
    np.testing.assert_allclose(
        run.latents("encoder.layer.0").values[0],
        run.latents("encoder").values[0],
        rtol=1e-6,
        atol=1e-7,
    )
    np.testing.assert_allclose(
        run.latents("pooler").values[0],
        out.pooler_output.reshape(order, 3, -1).numpy(),
        rtol=1e-5,
        atol=1e-6,
    )


def test_layer_names_drop_wrapper_segments_only_where_they_are_wrappers():
    from latentgeo.record import resolve_layers
    from latentgeo.record._layers import layer_modules

    class Holder(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.module = nn.Linear(2, 2)  # a user's own submodule called "module"
            self.other = nn.Linear(2, 2)

    net = nn.Sequential(Holder())
    names = layer_modules(net)
    assert names["0.module"] is net[0].module and names["0"] is net[0]
    dp = nn.DataParallel(net)  # its own "module." is a wrapper segment
    assert layer_modules(dp)["0.module"] is net[0].module
    assert resolve_layers(dp, ["module.0.module", "0.other"]) == ["0.module", "0.other"]
    assert resolve_layers(net, ["_orig_mod.0.module"]) == ["0.module"]  # a copied name
