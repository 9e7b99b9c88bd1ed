"""Registries: a user's group, action and reducer round-trip through specs and run stores.

The store test runs real subprocesses (fresh interpreters) with a user module on PYTHONPATH,
with an entry point declared by a dist-info folder (as ``pip install`` writes it), and
without the user's module at all.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import latentgeo
from latentgeo._registry import MissingExtensionError, Registry
from latentgeo.actions import TokenShift, from_spec
from latentgeo.groups import Cyclic, FiniteGroup, Group, parse
from latentgeo.groups._registry import GROUPS

ROOT = Path(latentgeo.__file__).resolve().parents[1]

USER_MODULE = textwrap.dedent(
    '''
    """A user's Klein group, an action of it and a reducer, registered with latentgeo."""
    import dataclasses

    import numpy as np
    import torch

    import latentgeo.actions as la
    import latentgeo.groups as lg
    import latentgeo.reducers as lr


    @lg.register
    class Klein(lg.FiniteGroup):
        """The Klein four-group, element k = (bit 0, bit 1), composition by XOR."""

        def __init__(self):
            k = np.arange(4)
            self._setup(k[:, None] ^ k[None, :], ("e", "a", "b", "ab"))

        def _key(self):
            return ()

        def __repr__(self):
            return "Klein()"

        @property
        def spec(self):
            return "Klein()"


    @la.register
    @dataclasses.dataclass(frozen=True)
    class SignFlips(la.Action):
        """Klein acting on (..., 2) vectors: bit i of the element flips coordinate i."""

        scale: float = 1.0

        @property
        def group(self):
            return Klein()

        def _act(self, k, x):
            signs = torch.tensor([(-1.0) ** (k & 1), (-1.0) ** (k >> 1)], dtype=x.dtype)
            return x * signs

        def _validate(self, x):
            if x.shape[-1] != 2:
                raise ValueError(f"SignFlips acts on (..., 2) inputs, got {tuple(x.shape)}")

        def to_spec(self):
            return {"type": "SignFlips", "scale": self.scale}


    @lr.register("abs_sum")
    @dataclasses.dataclass(frozen=True)
    class AbsSum(lr.Reducer):
        """Sum of absolute values of every unit: (batch, *feature) -> (batch, 1)."""

        def __call__(self, z):
            return z.abs().reshape(z.shape[0], -1).sum(1, keepdim=True)

        def to_spec(self):
            return {"name": "abs_sum"}
    '''
)

RECORD = textwrap.dedent(
    """
    import sys
    import torch
    import latentgeo
    from usergeo import SignFlips

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(2, 5), torch.nn.Tanh())
    x = torch.randn(6, 2, generator=torch.Generator().manual_seed(1))
    with latentgeo.LatentRecorder(
        model, ["0", "1"], SignFlips(2.0), x, sys.argv[1], reduce={"0": "abs_sum"}
    ) as rec:
        rec.record(0)
    """
)

REOPEN = textwrap.dedent(
    """
    import sys
    import numpy as np
    import latentgeo
    from latentgeo.reducers import from_spec

    run = latentgeo.open_run(sys.argv[1])
    z = run.latents("1").values
    assert z.shape == (1, 4, 6, 5), z.shape
    if sys.argv[2] == "with-module":
        import usergeo
        assert run.group == usergeo.Klein() and run.group.order == 4
        assert run.action == usergeo.SignFlips(2.0)
        assert from_spec(run.layer_attrs("0")["reducer"]) == usergeo.AbsSum()
        # The recorded latents are the model on the action's orbit.
        assert run.latents("0").shape[-1] == 1
        print("OK module")
    elif sys.argv[2] == "entry-point":
        assert "usergeo" not in sys.modules
        group = run.group  # found through the installed entry point
        assert type(group).__name__ == "Klein" and group.order == 4
        assert run.action.to_spec() == {"type": "SignFlips", "scale": 2.0}
        print("OK entry point")
    else:
        for what in ("group", "action"):
            try:
                getattr(run, what)
            except latentgeo.groups.MissingExtensionError as err:
                msg = str(err)
                assert "Klein()" in msg or "SignFlips" in msg, msg
                assert sys.argv[1] in msg, msg
            else:
                raise SystemExit(f"run.{what} did not raise")
        print("OK missing")
    """
)


def _python(code: str, *args: str, path: list[Path], tmp_path: Path) -> str:
    script = tmp_path / "script.py"
    script.write_text(code)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(str(p) for p in [ROOT, *path])
    env["OMP_NUM_THREADS"] = "1"
    out = subprocess.run(
        [sys.executable, str(script), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr[-4000:]
    return out.stdout


@pytest.mark.slow
def test_user_extensions_round_trip_through_a_store_in_fresh_processes(tmp_path: Path) -> None:
    user = tmp_path / "user"
    user.mkdir()
    (user / "usergeo.py").write_text(USER_MODULE)
    store = str(tmp_path / "run.zarr")
    _python(RECORD, store, path=[user], tmp_path=tmp_path)
    assert "OK module" in _python(REOPEN, store, "with-module", path=[user], tmp_path=tmp_path)
    # Without the user's module: the store opens, latents read, group/action name the spec.
    assert "OK missing" in _python(REOPEN, store, "missing", path=[], tmp_path=tmp_path)
    # An installed package: a dist-info folder declaring the entry points, module not imported.
    site = tmp_path / "site"
    info = site / "usergeo_plugin-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: usergeo-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        "[latentgeo.groups]\nKlein = usergeo:Klein\n\n"
        "[latentgeo.actions]\nSignFlips = usergeo:SignFlips\n\n"
        "[latentgeo.reducers]\nabs_sum = usergeo:AbsSum\n"
    )
    out = _python(REOPEN, store, "entry-point", path=[site, user], tmp_path=tmp_path)
    assert "OK entry point" in out


def test_registry_rejects_a_second_class_under_a_registered_name() -> None:
    reg = Registry("widget", "latentgeo.test_widgets_none")

    @reg.register
    class Knob:
        pass

    assert reg.register(Knob) is Knob  # the same class again is fine
    assert reg.get("Knob") is Knob and "Knob" in reg and reg.names() == ["Knob"]

    class Other:
        pass

    with pytest.raises(ValueError, match="'Knob' is already registered"):
        reg.register(Other, name="Knob")
    assert reg.register("Dial")(Other) is Other and reg.get("Dial") is Other
    with pytest.raises(
        MissingExtensionError, match=r"no widget named 'Lever'.*known: \['Dial', 'Knob'\]"
    ):
        reg.get("Lever")
    with pytest.raises(TypeError, match="non-empty str"):
        reg.register(Other, name="")


def test_builtins_are_in_the_one_registry_and_user_classes_must_fit() -> None:
    assert {"Cyclic", "Dihedral", "Symmetric", "Alternating", "Quaternion", "SO2"} <= set(
        GROUPS.names()
    )
    import latentgeo.actions as la
    import latentgeo.reducers as lr

    assert {"TokenShift", "SetPermutation", "ImageRotations"} <= set(la.register.__self__.names())
    assert {"flatten", "block_mean_pool", "random_projection"} <= set(lr.register.__self__.names())
    with pytest.raises(TypeError, match=r"subclasses of latentgeo\.groups\.Group"):
        latentgeo.groups.register(int)
    with pytest.raises(TypeError, match=r"subclasses of latentgeo\.actions\.Action"):
        la.register(Cyclic)
    with pytest.raises(TypeError, match=r"subclasses of latentgeo\.reducers\.Reducer"):
        lr.register(Cyclic)
    with pytest.raises(ValueError, match="already registered"):

        @latentgeo.groups.register(name="Cyclic")
        class Cyclic2(FiniteGroup):
            pass


def test_user_group_registered_in_process_round_trips_through_parse() -> None:
    name = "_TestKleinInProcess"

    class Klein(FiniteGroup):
        def __init__(self) -> None:
            k = np.arange(4)
            self._setup(k[:, None] ^ k[None, :], ("e", "a", "b", "ab"))

        def _key(self) -> tuple:
            return ()

        def __repr__(self) -> str:
            return f"{name}()"

        @property
        def spec(self) -> str:
            return f"{name}()"

    Klein.__name__ = name
    with pytest.raises(MissingExtensionError, match=name):
        parse(f"{name}()")
    latentgeo.groups.register(Klein)
    try:
        G = Klein()
        assert isinstance(G, Group)
        assert parse(G.spec) == G and parse(repr(G)) == G
        assert parse(f"C2x{name}()").order == 8  # inside products too
        assert sorted(r.dim for r in G.irreps()) == [1, 1, 1, 1]
    finally:
        GROUPS.unregister(name)


def test_action_and_reducer_specs_go_through_the_registry() -> None:
    import latentgeo.reducers as lr

    act = TokenShift(7, position=(0, 1))
    assert from_spec(act.to_spec()) == act
    with pytest.raises(MissingExtensionError, match="'NoSuchAction'"):
        from_spec({"type": "NoSuchAction", "n": 3})
    with pytest.raises(ValueError, match="unexpected keys \\['q'\\]"):
        from_spec({"type": "TokenShift", "p": 7, "q": 1})
    for red in (lr.Flatten(), lr.SpatialMeanPool(), lr.BlockMeanPool(4), lr.RandomProjection(3)):
        assert lr.from_spec(red.to_spec()) == red
    with pytest.raises(MissingExtensionError, match="callable"):
        lr.from_spec(lr.as_reducer(np.abs).to_spec())
    assert parse("Cyclic(5)") == Cyclic(5)
