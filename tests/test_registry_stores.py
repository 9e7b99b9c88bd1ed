"""Registries against real run stores: a user's group whose short spec starts like a built-in's
(``"Dic3"`` vs ``"D3"``), a user's action and reducer, installed extensions (entry points,
probe kinds included) and what a store says when the extension is missing.

The stores are recorded by :class:`latentgeo.LatentRecorder` on disk; "missing" is the state
of a fresh process that never imported the user's module (the registrations are removed).
"""

from __future__ import annotations

import dataclasses
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

import latentgeo
import latentgeo.actions as la
import latentgeo.groups as lg
import latentgeo.reducers as lr
import probes
from latentgeo._registry import MissingExtensionError
from latentgeo.actions._spec import ACTIONS
from latentgeo.groups._registry import GROUPS
from latentgeo.record._reducers import REDUCERS
from latentgeo.store import RunWriter, open_run
from probes._kinds import PROBE_KINDS


def _dicyclic_table(n: int) -> np.ndarray:
    """Cayley table of Dic_n (order 4n): element k + 2n j is a^k x^j, with x a x^-1 = a^-1
    and x^2 = a^n."""
    m = 2 * n
    table = np.empty((2 * m, 2 * m), dtype=np.int64)
    for j in range(2):
        for k in range(m):
            for jj in range(2):
                for kk in range(m):
                    power = k + (kk if j == 0 else -kk) + (n if j + jj == 2 else 0)
                    table[k + m * j, kk + m * jj] = power % m + m * ((j + jj) % 2)
    return table


class Dicyclic(lg.FiniteGroup):
    """A user's dicyclic group, short spec ``"Dic<n>"`` (starts like Dihedral's ``"D<n>"``)."""

    spec_prefix = "Dic"

    def __init__(self, n: int) -> None:
        table = _dicyclic_table(n)
        self.__dict__["n"] = n
        self._setup(table, tuple(f"g{i}" for i in range(len(table))))

    def _key(self) -> tuple:
        return (self.n,)

    def __repr__(self) -> str:
        return f"Dicyclic({self.n})"

    @property
    def spec(self) -> str:
        return f"Dic{self.n}"


@dataclasses.dataclass(frozen=True)
class DicRegular(la.Action):
    """Dic_3 permuting the 12 coordinates of a vector as its regular representation."""

    @property
    def group(self) -> lg.FiniteGroup:
        return Dicyclic(3)

    def _act(self, g: int, x: torch.Tensor) -> torch.Tensor:
        G = self.group
        perm = torch.from_numpy(G.cayley_table[G.inverse(g)].copy())  # (g.x)_i = x_{g^-1 i}
        return x[..., perm]

    def _validate(self, x: torch.Tensor) -> None:
        if x.shape[-1] != 12:
            raise ValueError(f"DicRegular acts on (..., 12) inputs, got {tuple(x.shape)}")

    def to_spec(self) -> dict:
        return {"type": "DicRegular"}


@dataclasses.dataclass(frozen=True)
class DicSum(lr.Reducer):
    """A user's reducer: the sum of every unit, ``(batch, *feature) -> (batch, 1)``."""

    def __call__(self, z: torch.Tensor) -> torch.Tensor:
        return z.reshape(z.shape[0], -1).sum(1, keepdim=True)

    def to_spec(self) -> dict:
        return {"name": "dic_sum"}


def _register() -> None:
    lg.register(Dicyclic)
    la.register(DicRegular)
    lr.register("dic_sum")(DicSum)


def _unregister() -> None:
    """The state of a process that never imported the user's module."""
    for registry, name in ((GROUPS, "Dicyclic"), (ACTIONS, "DicRegular"), (REDUCERS, "dic_sum")):
        if name in dict(registry.items()):
            registry.unregister(name)


@pytest.fixture
def user_extensions() -> Iterator[None]:
    _register()
    try:
        yield
    finally:
        _unregister()


@pytest.fixture
def dic_stores(tmp_path: Path, user_extensions: None) -> tuple[str, str]:
    """Two stores recorded with the user's extensions: GroupTokens over Dic3 with the user's
    reducer on one layer, and the user's own action."""
    torch.manual_seed(0)
    tokens_path, regular_path = str(tmp_path / "tokens.zarr"), str(tmp_path / "regular.zarr")
    model = torch.nn.Sequential(torch.nn.Embedding(12, 3), torch.nn.Flatten(), torch.nn.Tanh())
    x = torch.tensor([[0, 1], [5, 7], [11, 2]])
    act = la.GroupTokens(Dicyclic(3), position=(0, 1))
    with latentgeo.LatentRecorder(
        model, ["1", "2"], act, x, tokens_path, reduce={"1": "dic_sum"}
    ) as rec:
        rec.record(0)
    mlp = torch.nn.Sequential(torch.nn.Linear(12, 4), torch.nn.Tanh())
    x = torch.randn(5, 12, generator=torch.Generator().manual_seed(1))
    with latentgeo.LatentRecorder(mlp, ["1"], DicRegular(), x, regular_path) as rec:
        rec.record(0)
    return tokens_path, regular_path


def test_the_user_group_is_a_group_and_round_trips(user_extensions: None) -> None:
    G = Dicyclic(3)
    T = G.cayley_table
    assert G.order == 12 and lg.parse("Dic3") == G and lg.parse(repr(G)) == G
    # Associativity of the table (a group), and Dic3 is not D6 (one element of order 2).
    assert all(T[T[a, b], c] == T[a, T[b, c]] for a in range(12) for b in range(12) for c in (1, 6))
    involutions = [g for g in range(1, 12) if T[g, g] == 0]
    assert len(involutions) == 1
    # Spec prefixes must be whole names: "Dic3" is Dicyclic, "D3" still Dihedral.
    assert lg.parse("D3") == lg.Dihedral(3) and lg.parse("C2xDic3").order == 24


@pytest.mark.parametrize(
    "spec", ["Dic3", "Dicyclic(3)", "C2xDic3", "Dic3xC2", "(Dic3)xC2", "Dic12", "D4x(C2xDic3)"]
)
def test_a_missing_group_is_a_missing_extension_whatever_the_spelling(spec: str) -> None:
    assert "Dicyclic" not in dict(GROUPS.items())
    with pytest.raises(MissingExtensionError) as err:
        lg.parse(spec)
    assert repr(spec) in str(err.value)
    assert "Dic" in str(err.value) and "latentgeo.groups" in str(err.value)


@pytest.mark.parametrize("spec", ["D", "", "C2x", "Cyclic(2", "D4)"])
def test_malformed_specs_of_known_groups_stay_parse_errors(spec: str) -> None:
    with pytest.raises(ValueError, match="cannot parse group") as err:
        lg.parse(spec)
    assert not isinstance(err.value, MissingExtensionError)


def test_stores_with_missing_extensions_name_the_spec_and_the_store(
    dic_stores: tuple[str, str],
) -> None:
    tokens_path, regular_path = dic_stores
    # With the module: everything rebuilds.
    run = open_run(tokens_path)
    assert run.group == Dicyclic(3) and run.action == la.GroupTokens(Dicyclic(3), position=(0, 1))
    assert lr.from_run(run, "1") == DicSum() and lr.from_run(run, "2") == lr.Flatten()
    assert open_run(regular_path).action == DicRegular()

    _unregister()
    run = open_run(tokens_path)
    assert run.latents("2").shape == (1, 12, 3, 6)  # the store stays readable
    with pytest.raises(MissingExtensionError) as err:
        _ = run.group
    assert "'Dic3'" in str(err.value) and tokens_path in str(err.value)
    with pytest.raises(MissingExtensionError) as err:
        _ = run.action  # a built-in action of the user's group
    assert "'Dic3'" in str(err.value) and tokens_path in str(err.value)
    with pytest.raises(MissingExtensionError) as err:
        lr.from_run(run, "1")
    assert "dic_sum" in str(err.value) and tokens_path in str(err.value)
    assert lr.from_run(run, "2") == lr.Flatten()

    run = open_run(regular_path)
    with pytest.raises(MissingExtensionError) as err:
        _ = run.action
    assert "DicRegular" in str(err.value) and regular_path in str(err.value)
    with pytest.raises(MissingExtensionError, match="'Dic3'"):
        _ = run.group
    # probes.run refuses with the same error instead of a parse error about Dihedral.
    with pytest.raises(MissingExtensionError, match="Dic3"):
        probes.run(regular_path, probes=("invariance",), progress=False, cache=False)


def _install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, module: str, source: str, entry_points: str
) -> None:
    """A module and a dist-info folder declaring its entry points, as ``pip install`` does."""
    site = tmp_path / "site"
    info = site / f"{module}-0.1.dist-info"
    info.mkdir(parents=True)
    (site / f"{module}.py").write_text(textwrap.dedent(source))
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {module}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(textwrap.dedent(entry_points))
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.delitem(sys.modules, module, raising=False)


def test_an_installed_group_with_a_short_spec_loads_through_its_entry_point(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = f"""
        import numpy as np
        import latentgeo.groups as lg

        _TABLE = np.array({_dicyclic_table(2).tolist()!r})

        @lg.register
        class Dicyclic(lg.FiniteGroup):
            spec_prefix = "Dic"

            def __init__(self, n):
                if n != 2:
                    raise ValueError("this plug-in only knows Dic2")
                self._setup(_TABLE, tuple(f"q{{i}}" for i in range(8)))

            def _key(self):
                return (2,)

            def __repr__(self):
                return "Dicyclic(2)"

            @property
            def spec(self):
                return "Dic2"
        """
    _install(
        tmp_path,
        monkeypatch,
        "dicplugin",
        source,
        "[latentgeo.groups]\nDicyclic = dicplugin:Dicyclic\n",
    )
    try:
        G = lg.parse("Dic2")  # not imported by anyone: found through the entry point
        assert "dicplugin" in sys.modules and type(G).__module__ == "dicplugin"
        assert G.order == 8 and lg.parse(G.spec) == G
        # Dic2 is the quaternion group: same number of elements of each order as Q8.
        Q = lg.Quaternion()
        assert sorted(_orders(G)) == sorted(_orders(Q))
    finally:
        if "Dicyclic" in dict(GROUPS.items()):
            GROUPS.unregister("Dicyclic")


def _orders(G: lg.FiniteGroup) -> list[int]:
    T = G.cayley_table
    out = []
    for g in range(G.order):
        k, h = 1, g
        while h != 0:
            h, k = T[h, g], k + 1
        out.append(k)
    return out


def test_an_installed_probe_kind_loads_through_its_entry_point(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    G = lg.Cyclic(4)
    path = tmp_path / "c4.zarr"
    rng = np.random.default_rng(0)
    Z = rng.normal(size=(4, 30, 5))
    with RunWriter(
        path, meta={"elements": list(G.elements), "group": G.spec, "probe": {"n_samples": 30}}
    ) as w:
        w.ensure_layers({"fc": {"feature_shape": [5], "n_units": 5, "dtype": "float64"}})
        w.append(0, {"fc": Z})
    source = """
        import torch

        import probes

        @probes.register_dim("pair")
        def _pair(group, elements):
            return ["identity", "rest"]

        @probes.register_probe("unit_energy", {"unit_energy": ("pair", "unit")})
        def unit_energy(block):
            Z = block.Z
            energy = [(Z[0] ** 2).sum(0), (Z[1:] ** 2).sum(dim=(0, 1))]
            return {"unit_energy": torch.stack(energy).cpu().numpy()}
        """
    _install(
        tmp_path,
        monkeypatch,
        "energyplugin",
        source,
        "[latentgeo.probes]\nunit_energy = energyplugin:unit_energy\n",
    )
    monkeypatch.setattr(PROBE_KINDS, "_items", dict(PROBE_KINDS._items))
    from probes._kinds import DIMS

    monkeypatch.setattr(DIMS, "_items", dict(DIMS._items))
    assert "unit_energy" in PROBE_KINDS.names() and "energyplugin" not in sys.modules
    ds = probes.run(path, probes=("unit_energy",), progress=False, cache=False)
    Zc = Z - Z.mean(axis=(0, 1))  # the block's latents are centred by their grand mean
    np.testing.assert_allclose(
        ds.unit_energy.sel(layer="fc", step=0).values,
        np.stack([(Zc[0] ** 2).sum(0), (Zc[1:] ** 2).sum((0, 1))]),
        rtol=1e-12,
    )
    assert list(ds.pair.values) == ["identity", "rest"]
    # An entry point must name a probe kind (or register one when imported).
    with pytest.raises(TypeError, match=r"instances of probes\.ProbeKind"):
        PROBE_KINDS.register(lambda block: {}, name="not_a_kind")
