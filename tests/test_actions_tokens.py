"""GroupTokens: a finite group acting on tokens; TokenShift as its cyclic case; the
composition-task dataset and model built on them."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
import torch

from latentgeo.actions import GroupTokens, TokenShift, from_spec
from latentgeo.datasets import group_composition, modular_addition
from latentgeo.groups import (
    Cyclic,
    Dihedral,
    DirectProduct,
    FiniteGroup,
    Permutations,
    Symmetric,
)
from latentgeo.models import ModularMLP


def _relabelled_s3() -> FiniteGroup:
    # S_3 given only by a Cayley table, its elements shuffled (identity kept first).
    G = Symmetric(3)
    perm = np.array([0, 4, 2, 5, 1, 3])  # new index i holds old element perm[i]
    inv = np.argsort(perm)
    table = inv[G.cayley_table[perm][:, perm]]
    return FiniteGroup.from_cayley_table(table)


GROUPS = {
    "C5": Cyclic(5),
    "D4": Dihedral(4),
    "S4": Symmetric(4),
    "C2xS3": DirectProduct(Cyclic(2), Symmetric(3)),
    "table": _relabelled_s3(),
}


def _tokens(G, n=40, T=3, seed=0):
    return torch.randint(G.order, (n, T), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("side", ["left", "right"])
@pytest.mark.parametrize("name", list(GROUPS))
def test_action_law_and_identity_for_every_pair(name, side):
    G = GROUPS[name]
    act = GroupTokens(G, position=1, side=side)
    x = _tokens(G)
    orbit = act.orbit(x)
    assert orbit.shape == (G.order, 40, 3) and orbit.dtype == x.dtype
    assert torch.equal(orbit[0], x)  # the identity
    table = G.cayley_table
    for g, h in itertools.product(range(G.order), repeat=2):
        # act(g, act(h, x)) == act(g∘h, x), the orbit being act(k, x) in element order
        assert torch.equal(act(g, orbit[h]), orbit[table[g, h]]), (g, h)
    # the other positions never move
    assert torch.equal(orbit[:, :, [0, 2]], x[None, :, [0, 2]].expand(G.order, -1, -1))
    assert act.check(x).passed and act.check(x).max_error == 0.0


@pytest.mark.parametrize("name", list(GROUPS))
def test_tokens_move_by_composition(name):
    G = GROUPS[name]
    x = _tokens(G, T=2)
    for g in range(G.order):
        left = GroupTokens(G, 0, "left")(g, x)
        right = GroupTokens(G, 0, "right")(g, x)
        for i in range(len(x)):
            t = int(x[i, 0])
            assert int(left[i, 0]) == G.compose(g, t)
            assert int(right[i, 0]) == G.compose(t, G.inverse(g))


@pytest.mark.parametrize("name", list(GROUPS))
def test_label_moves_with_the_input_on_the_whole_composition_table(name):
    # The model-free truth: label(act(g, x)) == shift_label(g, label(x)), where
    # label([x, y]) = x∘y, for the left action on token 0 and the right action on token 1.
    G = GROUPS[name]
    train, test = group_composition(G, train_fraction=0.5, seed=1)
    x = torch.cat([train.inputs, test.inputs])
    y = torch.cat([train.labels, test.labels])

    def label(inputs):
        return torch.as_tensor(G.compose(inputs[:, 0].numpy(), inputs[:, 1].numpy()))

    assert torch.equal(label(x), y)
    for act in (GroupTokens(G, 0, "left"), GroupTokens(G, 1, "right"), GroupTokens(G, -1, "right")):
        for g in range(G.order):
            assert torch.equal(label(act(g, x)), act.shift_label(g, y)), (act, g)
    assert isinstance(GroupTokens(G).shift_label(1, y.numpy()), np.ndarray)


def test_shift_label_refuses_actions_that_do_not_move_the_label():
    S = Symmetric(3)
    with pytest.raises(ValueError, match="non-abelian"):
        GroupTokens(S, 1, "left").shift_label(1, torch.tensor([0]))
    with pytest.raises(ValueError, match="non-abelian"):
        GroupTokens(S, 0, "right").shift_label(1, torch.tensor([0]))
    with pytest.raises(ValueError, match="single"):
        GroupTokens(S, (0, 1)).shift_label(1, torch.tensor([0]))
    with pytest.raises(ValueError, match=r"\[0, 6\)"):
        GroupTokens(S).shift_label(1, torch.tensor([6]))
    with pytest.raises(TypeError, match="integers"):
        GroupTokens(S).shift_label(1, torch.tensor([1.0]))
    # abelian: either side on either token moves the label (x + y + g)
    C = Cyclic(5)
    y = torch.arange(5)
    assert torch.equal(GroupTokens(C, 1, "left").shift_label(2, y), (y + 2) % 5)


@pytest.mark.parametrize(
    "position,independent", [(0, False), ((0, -1), False), ((0, 1), True), (1, False)]
)
def test_token_shift_is_the_cyclic_case(position, independent):
    p = 7
    ts = TokenShift(p, position, independent=independent)
    x = _tokens(ts.group, T=2) % p
    orbit = ts.orbit(x)
    if not independent:
        assert torch.equal(orbit, GroupTokens(Cyclic(p), position).orbit(x))
    # explicit: (t + shift) mod p at each position
    for k in range(ts.order):
        want = x.clone()
        for q, s in zip(ts.position, ts.shifts(k)):
            want[:, q] = (x[:, q] + s) % p
        assert torch.equal(orbit[k], want) and torch.equal(ts(k, x), want)


def test_group_tokens_of_a_product_matches_the_product_law():
    G = DirectProduct(Cyclic(3), Dihedral(3))
    x = _tokens(G, T=1)
    act = GroupTokens(G)
    gh = G.compose(np.arange(G.order)[:, None], np.arange(G.order)[None, :])
    orbit = act.orbit(x)
    for g in range(G.order):
        assert torch.equal(orbit[g][:, 0], torch.as_tensor(gh[g][x[:, 0].numpy()]))


@pytest.mark.parametrize("name", list(GROUPS))
def test_spec_round_trip(name):
    act = GroupTokens(GROUPS[name], position=(0, 2), side="right")
    spec = json.loads(json.dumps(act.to_spec()))
    back = from_spec(spec)
    assert back == act and hash(back) == hash(act)
    x = _tokens(GROUPS[name])
    assert torch.equal(back.orbit(x), act.orbit(x))
    assert GroupTokens("S4") == GroupTokens(Symmetric(4))


def test_numpy_in_numpy_out_and_narrow_dtypes():
    G = Symmetric(4)
    x = _tokens(G).to(torch.uint8)
    out = GroupTokens(G)(5, x)
    assert out.dtype == torch.uint8
    assert torch.equal(out.long(), GroupTokens(G)(5, x.long()))
    xn = x.numpy()
    assert isinstance(GroupTokens(G).orbit(xn), np.ndarray)
    assert GroupTokens(G)("(0 1)", x).shape == x.shape


@pytest.mark.parametrize(
    "make,exc,match",
    [
        (lambda: GroupTokens("SO2"), ValueError, "finite group"),
        (lambda: GroupTokens(None), ValueError, "finite group"),
        (lambda: GroupTokens(Permutations(50)), ValueError, "cannot index"),
        (lambda: GroupTokens("C3", side="up"), ValueError, "'up'"),
        (lambda: GroupTokens("C3", position=(0, 0)), ValueError, "distinct"),
        (lambda: GroupTokens("C3", position=1.5), ValueError, "1.5"),
        (lambda: GroupTokens("C3", position=True), ValueError, "True"),
        (lambda: from_spec({"type": "GroupTokens", "group": "C3", "q": 0}), ValueError, "'q'"),
    ],
)
def test_bad_construction(make, exc, match):
    with pytest.raises(exc, match=match):
        make()


@pytest.mark.parametrize(
    "x,exc,match",
    [
        (torch.tensor([[6, 1]]), ValueError, r"\[0, 6\).*\[6\]"),
        (torch.tensor([[-1, 1]]), ValueError, r"\[-1\]"),
        (torch.tensor([[1.0, 1.0]]), TypeError, "float32"),
        (torch.tensor([[True, False]]), TypeError, "bool"),
        (torch.tensor(3), ValueError, "shape"),
    ],
)
def test_bad_tokens(x, exc, match):
    act = GroupTokens(Symmetric(3))
    with pytest.raises(exc, match=match):
        act.orbit(x)
    with pytest.raises(exc, match=match):
        act(1, x)


def test_position_out_of_range():
    with pytest.raises(ValueError, match=r"position 3 is out of range.*length 2"):
        GroupTokens("S3", 3)(1, torch.tensor([[1, 1]]))
    with pytest.raises(ValueError, match="position -3"):
        GroupTokens("S3", -3).orbit(torch.tensor([[1, 1]]))


def test_group_composition_dataset():
    G = Symmetric(4)
    train, test = group_composition(G, train_fraction=0.3, seed=2)
    x = torch.cat([train.inputs, test.inputs])
    keys = (x[:, 0] * 24 + x[:, 1]).sort().values
    assert torch.equal(keys, torch.arange(24 * 24))  # every pair once
    assert len(train.labels) == round(0.3 * 576)
    for part in (train, test):
        want = G.cayley_table[part.inputs[:, 0].numpy(), part.inputs[:, 1].numpy()]
        assert np.array_equal(part.labels.numpy(), want)
    same = group_composition("S4", train_fraction=0.3, seed=2)
    assert torch.equal(same.train.inputs, train.inputs)
    assert not torch.equal(group_composition(G, 0.3, seed=3).train.inputs, train.inputs)
    # modular addition is the cyclic case, split alike
    ma, gc = modular_addition(9, 0.4, seed=5), group_composition(Cyclic(9), 0.4, seed=5)
    assert torch.equal(ma.train.inputs, gc.train.inputs)
    assert torch.equal(ma.test.labels, gc.test.labels)
    for bad, match in (("SO2", "finite group"), (Cyclic(1), "order >= 2")):
        with pytest.raises(ValueError, match=match):
            group_composition(bad)
    with pytest.raises(ValueError, match="train_fraction"):
        group_composition(G, train_fraction=1.0)
    with pytest.raises(ValueError, match="seed"):
        group_composition(G, seed=-1)


def test_modular_mlp_takes_a_group():
    G = Symmetric(4)
    model = ModularMLP(G, d_embed=8, d_hidden=16, seed=0)
    assert model.p == 24 and model.embed.num_embeddings == 24 and model.out.out_features == 24
    same = ModularMLP(24, d_embed=8, d_hidden=16, seed=0)
    x = _tokens(G, T=2)
    assert torch.equal(model(x), same(x))
