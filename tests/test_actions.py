"""Tests of latentgeo.actions: the group-action laws on real data, semantics, specs, errors."""

from __future__ import annotations

import dataclasses
import json
import math
import pickle

import numpy as np
import pytest
import torch

from latentgeo.actions import (
    Action,
    ActionCheckError,
    ImageRotationAngles,
    ImageRotations,
    ImageTranslations,
    SetPermutation,
    TokenShift,
    from_spec,
)
from latentgeo.groups import Cyclic, Dihedral, DirectProduct, Symmetric

F32 = dict(rtol=1e-5, atol=1e-6)  # float32: values in [0, 1], a handful of roundings
F64 = dict(rtol=1e-10, atol=1e-12)


def _close(actual, expected, rtol, atol):
    # numpy's assert_allclose: torch.testing.assert_close costs seconds of imports on first use.
    np.testing.assert_allclose(
        np.asarray(torch.as_tensor(actual).detach()),
        np.asarray(torch.as_tensor(expected).detach()),
        rtol=rtol,
        atol=atol,
    )


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _images(n=3, c=2, h=6, w=6, dtype=torch.float32, seed=0):
    return torch.rand(n, c, h, w, generator=_gen(seed), dtype=dtype)


def _tokens(p, n=20, seq=3, seed=0):
    return torch.randint(p, (n, seq), generator=_gen(seed))


# (action, input) pairs covering every exact action and its variants
EXACT_CASES = {
    "rot-C4": (ImageRotations(Cyclic(4)), _images()),
    "rot-D4": (ImageRotations(Dihedral(4)), _images()),
    "rot-C2-nonsquare": (ImageRotations(Cyclic(2)), _images(h=5, w=7)),
    "rot-D2-nonsquare": (ImageRotations(Dihedral(2)), _images(h=4, w=7)),
    "rot-D1": (ImageRotations(Dihedral(1)), _images(h=3, w=5)),
    "rot-C4-float64-batchdims": (ImageRotations("C4"), _images(dtype=torch.float64)[None]),
    "translations": (ImageTranslations(4, 5), _images(h=4, w=5)),
    "translations-stride": (ImageTranslations(2, 3, stride=(2, 1)), _images(h=4, w=3)),
    "tokens-one": (TokenShift(7, 0), _tokens(7)),
    "tokens-both": (TokenShift(7, (0, -1)), _tokens(7)),
    "tokens-independent": (TokenShift(5, (0, 1), independent=True), _tokens(5, seq=2)),
    "set-S3": (SetPermutation(3), torch.rand(4, 3, 2, generator=_gen())),
    "graph-S4": (SetPermutation(4, kind="graph"), torch.rand(2, 4, 4, generator=_gen())),
    "sequence-S5-subset": (SetPermutation(5, kind="sequence"), torch.rand(3, 5, generator=_gen())),
    "set-C3-subgroup": (
        SetPermutation(3, permutations=[(0, 1, 2), (1, 2, 0), (2, 0, 1)]),
        torch.rand(4, 3, 2, generator=_gen()),
    ),
    "custom-axes": (SetPermutation(3, axes=(-3,)), torch.rand(2, 3, 4, 5, generator=_gen())),
}


@pytest.fixture(params=sorted(EXACT_CASES))
def exact_case(request):
    return EXACT_CASES[request.param]


# ----------------------------------------------------------------------------- group laws
def test_exact_actions_are_homomorphisms_with_zero_error(exact_case):
    action, x = exact_case
    result = action.check(x)
    assert result.exact and action.exact
    # Exact actions only move entries: the laws hold bit for bit, in any dtype.
    assert result.max_error == 0.0
    assert result.identity_error == 0.0
    assert result.passed
    assert result["max_error"] == 0.0
    assert result.n_pairs == min(action.order**2, 1024)


def test_homomorphism_by_hand_against_cayley_table(exact_case):
    # Independent of Action.check: act(g, act(h, x)) == act(compose(g, h), x) on sampled pairs.
    action, x = exact_case
    G = action.group
    rng = np.random.default_rng(1)
    for g, h in rng.integers(G.order, size=(12, 2)):
        lhs = action(int(g), action(int(h), x))
        rhs = action(G.compose(int(g), int(h)), x)
        assert torch.equal(lhs, rhs), (G.elements[g], G.elements[h])
    assert torch.equal(action(G.identity, x), x)


def test_orbit_shape_order_and_identity(exact_case):
    action, x = exact_case
    orbit = action.orbit(x)
    assert orbit.shape == (action.group.order, *x.shape)
    assert orbit.dtype == x.dtype
    assert torch.equal(orbit[0], x)
    for g in range(action.order):
        assert torch.equal(orbit[g], action(g, x))
        assert torch.equal(orbit[g], action(action.group.elements[g], x))


def test_numpy_in_numpy_out(exact_case):
    action, x = exact_case
    xn = x.numpy()
    out = action.orbit(xn)
    assert isinstance(out, np.ndarray) and out.dtype == xn.dtype
    np.testing.assert_array_equal(out, action.orbit(x).numpy())
    y = action(action.order - 1, xn)
    assert isinstance(y, np.ndarray)
    np.testing.assert_array_equal(y, action(action.order - 1, x).numpy())


def test_spec_round_trip_through_json(exact_case):
    action, _ = exact_case
    spec = json.loads(json.dumps(action.to_spec()))
    rebuilt = from_spec(spec)
    assert rebuilt == action and hash(rebuilt) == hash(action)
    assert rebuilt.group == action.group
    assert repr(rebuilt) == repr(action)
    assert pickle.loads(pickle.dumps(action)) == action


def test_inexact_action_spec_and_check_record_round_trip():
    act = ImageRotationAngles(12, interpolation="bicubic", padding_mode="border")
    rebuilt = from_spec(json.loads(json.dumps(act.to_spec())))
    assert rebuilt == act and hash(rebuilt) == hash(act) and rebuilt.group == Cyclic(12)
    assert rebuilt != ImageRotationAngles(12)
    record = act.check(_images(h=8, w=8)).as_dict()
    assert json.loads(json.dumps(record)) == record
    assert set(record) >= {"max_error", "passed", "tolerance", "worst_pair"}


def test_actions_are_immutable_values():
    a = ImageRotations(Dihedral(4))
    assert a == ImageRotations("D4") and hash(a) == hash(ImageRotations("D4"))
    assert a != ImageRotations(Cyclic(4))
    assert TokenShift(5, 1) == TokenShift(5, (1,)) and TokenShift(5, 1) != TokenShift(5, 0)
    assert len({a, ImageRotations("D4"), ImageRotations("C4")}) == 2
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.group = Cyclic(4)
    assert "Dihedral(4)" in repr(a)


def test_check_subsamples_pairs_of_big_groups():
    action = SetPermutation(5)
    x = torch.rand(2, 5, 3, generator=_gen())
    result = action.check(x, max_pairs=200, seed=3)
    assert result.n_pairs == 200 and result.max_error == 0.0
    assert action.check(x, max_pairs=200, seed=3) == result


class _BrokenRotations(ImageRotations):
    """Flips after rotating instead of before: r^k∘s becomes s∘r^k, not a D4 action."""

    def _act(self, k, x):
        y = torch.rot90(x, k % 4, dims=(-2, -1))
        return torch.flip(y, dims=(-1,)) if k >= 4 else y


def test_check_catches_a_broken_action():
    broken = _BrokenRotations(Dihedral(4))
    x = _images()
    with pytest.raises(ActionCheckError, match="not a group action"):
        broken.check(x)
    flagged = broken.check(x, strict=False)
    assert not flagged.passed and flagged.max_error > 0.1
    assert flagged.worst_pair is not None and flagged.identity_error == 0.0


# ----------------------------------------------------------------------------- semantics
def test_image_rotation_conventions():
    x = _images()
    act = ImageRotations(Dihedral(4))
    r = torch.rot90(x, 1, dims=(-2, -1))
    s = torch.flip(x, dims=(-1,))
    assert torch.equal(act("r", x), r)
    assert torch.equal(act("s", x), s)
    for k in range(4):  # element 4 + k is r^k ∘ s: flip first, then rotate
        assert torch.equal(act(4 + k, x), torch.rot90(s, k, dims=(-2, -1)))
    assert torch.equal(ImageRotations(Cyclic(2))("r", x), torch.rot90(x, 2, dims=(-2, -1)))
    # s r s = r^-1 on data
    assert torch.equal(act("s", act("r", act("s", x))), act("r3", x))


def test_translations_roll_rows_then_columns():
    x = _images(h=4, w=6)
    act = ImageTranslations(2, 3, stride=2)
    assert act.group == DirectProduct(Cyclic(2), Cyclic(3))
    for i in range(2):
        for j in range(3):
            want = torch.roll(x, (2 * i, 2 * j), dims=(-2, -1))
            assert torch.equal(act(i * 3 + j, x), want)


def test_token_shift_and_labels_follow_modular_addition():
    p = 7
    a, b = torch.meshgrid(torch.arange(p), torch.arange(p), indexing="ij")
    x = torch.stack([a.ravel(), b.ravel()], dim=1)
    y = (x[:, 0] + x[:, 1]) % p
    for act in (TokenShift(p, 0), TokenShift(p, (0, 1)), TokenShift(p, (0, 1), independent=True)):
        for g in range(act.order):
            xs = act(g, x)
            assert torch.equal(act.shift_label(g, y), (xs[:, 0] + xs[:, 1]) % p)
    assert torch.equal(TokenShift(p, 1)(3, x)[:, 0], x[:, 0])
    assert torch.equal(TokenShift(p, 1)(3, x)[:, 1], (x[:, 1] + 3) % p)
    ind = TokenShift(p, (0, 1), independent=True)
    assert ind.group == DirectProduct(Cyclic(p), Cyclic(p)) and ind.shifts(2 * p + 5) == (2, 5)
    assert isinstance(TokenShift(p, 0).shift_label(1, y.numpy()), np.ndarray)


def test_token_shift_on_narrow_integer_dtypes():
    x = torch.tensor([[120, 3]], dtype=torch.int8)
    out = TokenShift(127, 0)(20, x)
    assert out.dtype == torch.int8 and out.tolist() == [[13, 3]]
    assert TokenShift(200, 0)(100, x.to(torch.uint8)).tolist() == [[20, 3]]


def test_token_shift_leaves_other_tokens_alone():
    # Position 2 holds an "=" token with id p, outside Z_p: only shifted positions are checked.
    p = 5
    x = torch.tensor([[1, 4, p], [0, 2, p]])
    out = TokenShift(p, (0, 1))(2, x)
    assert torch.equal(out, torch.tensor([[3, 1, p], [2, 4, p]]))


def test_set_permutation_moves_item_i_to_sigma_i():
    x = torch.rand(2, 4, 3, generator=_gen())
    A = torch.rand(2, 4, 4, generator=_gen(1))
    sets, graphs = SetPermutation(4), SetPermutation(4, kind="graph")
    perms = sets.permutation_array
    assert perms.shape == (24, 4) and tuple(perms[0]) == (0, 1, 2, 3)
    for g in (1, 7, 23):
        sigma = perms[g]
        y = sets(g, x)
        for i in range(4):
            assert torch.equal(y[:, sigma[i]], x[:, i])
        P = torch.zeros(4, 4)
        P[sigma, np.arange(4)] = 1.0  # P e_i = e_sigma(i)
        assert torch.equal(graphs(g, A), P @ A @ P.T)
    # The group's own permutations (Symmetric) are the ones used.
    assert [tuple(p) for p in perms] == list(Symmetric(4).permutations)
    # Elements may be given as permutation tuples, for S_n and for subgroups.
    assert torch.equal(sets((1, 2, 3, 0), x), x[:, [3, 0, 1, 2]])
    c3 = SetPermutation(3, permutations=[(0, 1, 2), (1, 2, 0), (2, 0, 1)])
    assert c3.element_index((2, 0, 1)) == 2
    with pytest.raises(ValueError, match=r"\(1, 0, 2\) is not an element"):
        c3.element_index((1, 0, 2))


def test_sample_is_seeded_and_applies_the_returned_elements():
    act = ImageRotations(Dihedral(4))
    x = _images(n=16)
    out, ks = act.sample(x, seed=5)
    out2, ks2 = act.sample(x, generator=_gen(5))
    assert torch.equal(out, out2) and torch.equal(ks, ks2)
    assert ks.dtype == torch.int64 and ks.shape == (16,) and len(torch.unique(ks)) > 1
    for i in range(16):
        assert torch.equal(out[i], act(int(ks[i]), x[i : i + 1])[0])
    state = torch.get_rng_state()
    act.sample(x, seed=1)
    assert torch.equal(state, torch.get_rng_state())


# ----------------------------------------------------------------------------- rotations by angle
def _smooth_images(size: int, dtype=torch.float64) -> torch.Tensor:
    """Samples of a smooth function (two Gaussian bumps, no rotational symmetry) on a
    size × size grid covering [-1, 1]², with the pixel-centre convention of grid_sample."""
    c = (torch.arange(size, dtype=dtype) + 0.5) / size * 2 - 1
    v, u = torch.meshgrid(c, c, indexing="ij")  # v: row, u: column
    f = torch.exp(-((u - 0.3) ** 2 + (v + 0.1) ** 2) / 0.08) + 0.5 * torch.exp(
        -((u + 0.25) ** 2 + (v - 0.3) ** 2) / 0.05
    )
    return f[None, None]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_rotation_by_quarter_turns_matches_rot90(dtype):
    x = _images(h=7, w=7, dtype=dtype)
    act = ImageRotationAngles(4)
    tol = F32 if dtype == torch.float32 else F64
    for k in range(4):
        want = torch.rot90(x, k, dims=(-2, -1))
        # Every sample lands on a pixel centre: equal on the whole image, corners included.
        _close(act.rotate(x, k * math.pi / 2), want, **tol)
        _close(act(k, x), want, **tol)
    # The whole C4 grid is then a group action to the dtype's tolerance.
    assert act.check(x, mask=None, strict=True).passed
    # Non-square images rotate rigidly: a half turn is rot180.
    y = _images(h=5, w=8, dtype=dtype)
    _close(act.rotate(y, math.pi), torch.rot90(y, 2, dims=(-2, -1)), **tol)


def test_rotation_matches_the_rotated_function_and_converges():
    # rotate(f samples, θ)(p) ≈ f(R(θ) p) inside the disc, p = (column, row) coordinates
    # (rows grow downwards, so this looks counter-clockwise, like rot90); bilinear error O(h²).
    theta = 0.4
    errors = []
    for size in (16, 32, 64):
        x = _smooth_images(size)
        act = ImageRotationAngles(8)
        out = act.rotate(x, theta)
        c = (torch.arange(size, dtype=torch.float64) + 0.5) / size * 2 - 1
        v, u = torch.meshgrid(c, c, indexing="ij")
        cs, sn = math.cos(theta), math.sin(theta)
        # R(θ) = [[c, -s], [s, c]] on (u, v) reproduces rot90 at θ = π/2
        u0, v0 = cs * u - sn * v, sn * u + cs * v
        f = torch.exp(-((u0 - 0.3) ** 2 + (v0 + 0.1) ** 2) / 0.08) + 0.5 * torch.exp(
            -((u0 + 0.25) ** 2 + (v0 - 0.3) ** 2) / 0.05
        )
        mask = act.disc_mask(size)
        errors.append(float(((out[0, 0] - f).abs() * mask).max()))
    # Halving the pixel size divides the error by ~4 (second order); ask for better than 2.5.
    assert errors[0] / errors[1] > 2.5 and errors[1] / errors[2] > 2.5, errors


def test_rotation_angles_check_reports_interpolation_error():
    act = ImageRotationAngles(8)
    smooth = act.check(_smooth_images(32))
    noise = act.check(torch.rand(1, 1, 32, 32, dtype=torch.float64, generator=_gen()))
    assert not act.exact and not smooth.exact
    # Inexact: flagged, not raised; a smooth image composes far better than white noise.
    assert not smooth.passed and not noise.passed
    assert smooth.relative_error < noise.relative_error / 5
    with pytest.raises(ActionCheckError):
        act.check(_smooth_images(16), strict=True)


def test_rotate_per_sample_angles_and_gradient():
    act = ImageRotationAngles(8, interpolation="bicubic")
    x = _smooth_images(12).expand(3, 2, 12, 12).contiguous()
    thetas = torch.tensor([0.0, 0.3, -1.1], dtype=torch.float64)
    out = act.rotate(x, thetas)
    for i in range(3):
        _close(out[i], act.rotate(x[i : i + 1], float(thetas[i]))[0], **F64)
    _close(out[0], x[0], **F64)
    # d/dθ by autograd equals a central finite difference (bicubic is smooth in θ).
    th = torch.tensor(0.3, dtype=torch.float64, requires_grad=True)
    w = torch.rand(1, 1, 12, 12, dtype=torch.float64, generator=_gen())
    (act.rotate(x[:1], th) * w).sum().backward()
    eps = 1e-5
    fd = ((act.rotate(x[:1], 0.3 + eps) - act.rotate(x[:1], 0.3 - eps)) * w).sum() / (2 * eps)
    _close(th.grad, fd, rtol=1e-7, atol=1e-9)


def test_rotation_angles_grid_group_and_orbit():
    act = ImageRotationAngles(np.arange(6) * 2 * np.pi / 6)
    x = _images(h=7, w=9)
    orbit = act.orbit(x)  # batched over angles: the same as acting element by element
    assert orbit.shape == (6, *x.shape) and torch.equal(orbit[0], x)
    for k in range(6):
        _close(orbit[k], act(k, x), **F32)
        _close(orbit[k], act.rotate(x, 2 * math.pi * k / 6), **F32)
    assert act == ImageRotationAngles(6) and act.group == Cyclic(6)
    np.testing.assert_allclose(act.angles, 2 * np.pi * np.arange(6) / 6)
    assert act.lie_group is not None


# ----------------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    ("make", "exc", "match"),
    [
        (lambda: ImageRotations(Cyclic(3)), ValueError, "Cyclic\\(3\\)"),
        (lambda: ImageRotations(Dihedral(3)), ValueError, "Dihedral\\(3\\)"),
        (lambda: ImageTranslations(0, 4), ValueError, "h must be an int >= 1, got 0"),
        (lambda: ImageRotationAngles([0.0, 1.0, 2.0]), ValueError, "uniform grid"),
        (lambda: ImageRotationAngles(8, interpolation="area"), ValueError, "'area'"),
        (lambda: TokenShift(0), ValueError, "got 0"),
        (lambda: TokenShift(5, (1, 1)), ValueError, "distinct"),
        (lambda: SetPermutation(6), ValueError, "n <= 5"),
        (lambda: SetPermutation(3, kind="bag"), ValueError, "'bag'"),
        (lambda: SetPermutation(3, permutations=[(0, 1, 2), (1, 2, 0)]), ValueError, "closed"),
        (lambda: SetPermutation(3, permutations=[(1, 0, 2), (0, 1, 2)]), ValueError, "identity"),
        (lambda: SetPermutation(3, permutations=[(0, 1, 1)]), ValueError, "not a permutation"),
        (lambda: SetPermutation(3, axes=(1,)), ValueError, "negative"),
        (lambda: from_spec({"type": "Spin"}), ValueError, "'Spin'"),
        (lambda: from_spec({"type": "TokenShift", "p": 3, "q": 1}), ValueError, "'q'"),
        (lambda: from_spec("C4"), TypeError, "dict"),
    ],
)
def test_bad_construction(make, exc, match):
    with pytest.raises(exc, match=match):
        make()


@pytest.mark.parametrize(
    ("action", "x", "exc", "match"),
    [
        (ImageRotations("C4"), torch.zeros(2, 5, 6), ValueError, "square.*\\(5, 6\\)"),
        (ImageRotations("C4"), torch.zeros(5), ValueError, "\\(5,\\)"),
        (ImageRotations("C4"), [[1.0]], TypeError, "'list'"),
        (ImageTranslations(4, 4), torch.zeros(1, 4, 5), ValueError, "\\(4, 5\\)"),
        (ImageRotationAngles(8), torch.zeros(1, 4, 4, dtype=torch.int64), TypeError, "int64"),
        (TokenShift(5), torch.tensor([[5, 1]]), ValueError, "\\[0, 5\\).*\\[5\\]"),
        (TokenShift(5), torch.tensor([[-1, 1]]), ValueError, "\\[-1\\]"),
        (TokenShift(5), torch.tensor([[1.0, 1.0]]), TypeError, "float32"),
        (TokenShift(5, 3), torch.tensor([[1, 1]]), ValueError, "position 3"),
        (SetPermutation(3), torch.zeros(2, 4, 2), ValueError, "size 3"),
        (SetPermutation(3, kind="graph"), torch.zeros(3), ValueError, "at least 2 axes"),
    ],
)
def test_bad_input(action, x, exc, match):
    with pytest.raises(exc, match=match):
        action(1, x)


def test_bad_elements():
    act = ImageRotations(Dihedral(4))
    x = _images()
    with pytest.raises(ValueError, match="index 8 is out of range"):
        act(8, x)
    with pytest.raises(ValueError, match="index -1 is out of range"):
        act(-1, x)
    with pytest.raises(ValueError, match=r"'q'.*'r3s'"):
        act("q", x)
    with pytest.raises(TypeError, match=r"1\.5"):
        act(1.5, x)
    with pytest.raises(TypeError, match="True"):
        act(True, x)
    with pytest.raises(ValueError, match="max_pairs"):
        act.check(x, max_pairs=0)
    with pytest.raises(ValueError, match="mask"):
        act.check(x, mask=torch.ones(3, 3, dtype=torch.bool))


def test_action_is_abstract():
    with pytest.raises(TypeError):
        Action()
