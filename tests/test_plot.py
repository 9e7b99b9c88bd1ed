"""Tests of latentgeo.plot: what the figures draw, axes scales, saving, errors."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

matplotlib = pytest.importorskip("matplotlib")

from matplotlib.figure import Figure  # noqa: E402

from latentgeo import plot  # noqa: E402

LOG_STEPS = np.array([0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512])
LAYERS = ["conv1", "conv2", "pool"]
IRREPS = ["A", "B", "E"]
ELEMENTS = ["e", "r", "r2", "r3"]


def synthetic_results(steps=LOG_STEPS, onset_index=6, seed=0):
    """Probe results shaped as in docs/interfaces.md with a planted onset for 'pool'."""
    rng = np.random.default_rng(seed)
    T, L, E = len(steps), len(LAYERS), len(ELEMENTS)
    r2 = rng.uniform(0.1, 0.5, size=(L, T, E))
    r2[:, :, 0] = 1.0  # identity is trivially fitted
    r2[2, onset_index:, 1:] = 0.97  # 'pool' becomes equivariant at steps[onset_index]
    r2[2, onset_index - 2, 1:] = 0.95  # crosses once earlier, then falls back
    spectrum = rng.dirichlet(np.ones(len(IRREPS)), size=(L, T))
    return xr.Dataset(
        {
            "r2": (("layer", "step", "element"), r2),
            "null_r2": (("layer", "step", "element"), r2 * 0.0 - 0.05),
            "r2_low": (("layer", "step", "element"), r2 - 0.02),
            "r2_high": (("layer", "step", "element"), r2 + 0.02),
            "invariance": (("layer", "step"), spectrum[..., 0]),
            "spectrum": (("layer", "step", "irrep"), spectrum),
            "homomorphism_error": (("layer", "step"), rng.uniform(1e-3, 1.0, size=(L, T))),
        },
        coords={"layer": LAYERS, "step": steps, "element": ELEMENTS, "irrep": IRREPS},
    )


@pytest.fixture
def results():
    return synthetic_results()


def test_equivariance_draws_mean_over_non_identity_elements(results):
    fig = plot.equivariance(results)
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    lines = {ln.get_label(): ln for ln in ax.get_lines()}
    for layer in LAYERS:
        expected = results["r2"].sel(layer=layer).isel(element=slice(1, None)).mean("element")
        np.testing.assert_allclose(lines[layer].get_ydata(), expected.values, rtol=1e-12)
        np.testing.assert_array_equal(lines[layer].get_xdata(), LOG_STEPS)


def test_equivariance_onset_marker_at_planted_step(results):
    fig = plot.equivariance(results, layers=["pool"])
    ax = fig.axes[0]
    vlines = [ln for ln in ax.get_lines() if ln.get_linestyle() == ":" and ln.get_label()[0] == "_"]
    # Only 'pool' reaches 0.9 and stays: one marker at the planted onset (not the early blip).
    assert len(vlines) == 1
    assert vlines[0].get_xdata()[0] == LOG_STEPS[6]
    assert plot.equivariance_onsets(results) == {
        "conv1": None,
        "conv2": None,
        "pool": float(LOG_STEPS[6]),
    }


def test_log_scale_detected_for_log_spaced_steps(results):
    assert plot.is_log_spaced(LOG_STEPS)
    assert not plot.is_log_spaced(np.arange(0, 500, 25))
    assert plot.equivariance(results).axes[0].get_xscale() == "symlog"  # step 0 present
    positive = synthetic_results(steps=LOG_STEPS + 1)
    assert plot.equivariance(positive).axes[0].get_xscale() == "log"
    even = synthetic_results(steps=np.arange(0, 550, 50))
    assert plot.equivariance(even).axes[0].get_xscale() == "linear"


def test_xscale_override_and_validation(results):
    assert plot.equivariance(results, xscale="linear").axes[0].get_xscale() == "linear"
    assert plot.irrep_spectrum(results, "pool", xscale="linear").axes[0].get_xscale() == "linear"
    even = synthetic_results(steps=np.arange(1, 551, 50))
    assert plot.invariance(even, xscale="log").axes[0].get_xscale() == "log"
    with pytest.raises(ValueError, match="'logit'"):
        plot.equivariance(results, xscale="logit")


def test_colors_distinct_and_cvd_palette():
    assert plot.colors(3) == list(plot.OKABE_ITO[:3])
    many = plot.colors(12)
    assert len({tuple(c) for c in many}) == 12
    # Interleaved ramp: neighbours differ in lightness by at least a third of the ramp.
    lum = np.array([0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2] for c in many])
    assert np.all(np.abs(np.diff(lum)) > 0.15)


def test_irrep_spectrum_stacks_fractions_to_one(results):
    fig = plot.irrep_spectrum(results, "pool")
    ax = fig.axes[0]
    polys = ax.collections
    assert len(polys) == len(IRREPS)
    # The top edge of the last band is the cumulative sum of all fractions = 1.
    top = polys[-1].get_paths()[0].vertices[:, 1]
    np.testing.assert_allclose(top.max(), 1.0, rtol=1e-12)
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend[: len(IRREPS)] == IRREPS
    onset = [ln for ln in ax.get_lines() if ln.get_linestyle() == ":"]
    assert [ln.get_xdata()[0] for ln in onset] == [LOG_STEPS[6]]


def test_panels_draw_into_given_axes(results):
    fig = Figure()
    axes = fig.subplots(1, 3)
    assert plot.equivariance(results, ax=axes[0]) is fig
    assert plot.invariance(results, ax=axes[1]) is fig
    assert plot.irrep_spectrum(results, "conv1", ax=axes[2]) is fig
    assert len(fig.axes) == 3


def test_no_pyplot_state_touched(results):
    import matplotlib.pyplot as plt

    before = plt.get_fignums()
    plot.summary(results, embedding=np.random.default_rng(0).normal(size=(len(LOG_STEPS), 2)))
    assert plt.get_fignums() == before


def test_trajectory_embedding_colours_by_step():
    rng = np.random.default_rng(1)
    emb = xr.DataArray(rng.normal(size=(len(LOG_STEPS), 2)), dims=("step", "component"))
    emb = emb.assign_coords(step=LOG_STEPS + 1)
    fig = plot.trajectory_embedding(emb)
    sc = fig.axes[0].collections[0]
    np.testing.assert_array_equal(sc.get_array(), LOG_STEPS + 1)
    np.testing.assert_allclose(sc.get_offsets(), emb.values)
    assert type(sc.norm).__name__ == "LogNorm"
    with_zero = plot.trajectory_embedding(emb.values, steps=LOG_STEPS)
    assert type(with_zero.axes[0].collections[0].norm).__name__ == "SymLogNorm"
    even = plot.trajectory_embedding(emb.values, steps=np.arange(len(LOG_STEPS)) * 10)
    assert type(even.axes[0].collections[0].norm).__name__ == "Normalize"


def test_distance_matrix_shows_matrix():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(6, 3))
    D = np.linalg.norm(x[:, None] - x[None], axis=-1)
    fig = plot.distance_matrix(D, steps=np.arange(6) * 10)
    np.testing.assert_array_equal(fig.axes[0].images[0].get_array(), D)
    with pytest.raises(ValueError, match="square"):
        plot.distance_matrix(np.zeros((3, 4)))


class _C4:
    """Minimal stand-in for latentgeo.groups.Cyclic(4) (contract: element k = r^k)."""

    order = 4
    elements = ("e", "r", "r2", "r3")
    generators = (1,)
    spec = "C4"
    cayley_table = np.add.outer(np.arange(4), np.arange(4)) % 4


def _group_c4():
    try:
        from latentgeo.groups import Cyclic

        return Cyclic(4)
    except ImportError:  # groups not landed yet
        return _C4()


def test_orbits_of_rotation_equivariant_latents_are_squares():
    rng = np.random.default_rng(3)
    n, d = 5, 6
    z = rng.normal(size=(n, d))
    rot = np.eye(d)
    rot[:2, :2] = [[0.0, -1.0], [1.0, 0.0]]  # rho(r): a quarter turn in the first plane
    Z = np.stack([z @ np.linalg.matrix_power(rot, k).T for k in range(4)])
    fig = plot.orbits(Z, _group_c4(), samples=[0, 2])
    ax = fig.axes[0]
    points = [c.get_offsets() for c in ax.collections if len(c.get_offsets()) == 4]
    assert len(points) == 2
    for p in points:
        sides = np.linalg.norm(p - np.roll(p, -1, axis=0), axis=1)
        diags = np.linalg.norm(p - np.roll(p, -2, axis=0), axis=1)
        # Projected orbit of a rotation: a parallelogram whose diagonals bisect each other.
        np.testing.assert_allclose(p[0] + p[2], p[1] + p[3], atol=1e-10)
        assert np.all(sides > 0) and np.all(diags > 0)
    with pytest.raises(ValueError, match="order 4"):
        plot.orbits(Z[:3], _group_c4())
    with pytest.raises(ValueError, match="samples"):
        plot.orbits(Z, _group_c4(), samples=[7])


def test_rho_heatmaps_symmetric_colour_scale():
    rng = np.random.default_rng(4)
    rho = rng.normal(size=(4, 5, 5))
    fig = plot.rho_heatmaps(rho, _group_c4())
    images = [im for ax in fig.axes for im in ax.images]
    assert len(images) == 4
    vmax = np.abs(rho).max()
    for k, im in enumerate(images):
        np.testing.assert_array_equal(im.get_array(), rho[k])
        assert im.norm.vmin == -vmax and im.norm.vmax == vmax
    with pytest.raises(ValueError, match="rho must have shape"):
        plot.rho_heatmaps(rho[:2], _group_c4())


@pytest.mark.parametrize("suffix,magic", [(".png", b"\x89PNG"), (".pdf", b"%PDF"), (".svg", b"<")])
def test_save_by_suffix(results, tmp_path, suffix, magic):
    path = plot.save(plot.equivariance(results), tmp_path / "sub" / f"fig{suffix}")
    head = path.read_bytes()[:64]
    assert head.startswith(magic)
    if suffix == ".svg":
        assert b"<svg" in path.read_bytes()[:2000]


def test_errors_name_offending_value(results, tmp_path):
    with pytest.raises(ValueError, match="'nope'"):
        plot.equivariance(results, layers=["nope"])
    with pytest.raises(ValueError, match=r"fig\.jpg"):
        plot.save(plot.equivariance(results), tmp_path / "fig.jpg")
    with pytest.raises(TypeError, match="Dataset"):
        plot.equivariance({"r2": 1})
    with pytest.raises(ValueError, match="spectrum"):
        plot.irrep_spectrum(results.drop_vars("spectrum"), "pool")
    with pytest.raises(TypeError, match="layer"):
        plot.irrep_spectrum(results, ["pool"])


def test_every_figure_from_a_small_store(tmp_path):
    """Record a tiny run with the real recorder, probe it, and render every figure of the
    module from it to PNG, SVG and PDF."""
    torch = pytest.importorskip("torch")
    import latentgeo
    import probes
    import trajectories
    from latentgeo.actions import ImageRotations
    from latentgeo.groups import Cyclic
    from latentgeo.models import SmallCNN

    gen = torch.Generator().manual_seed(0)
    model = SmallCNN(width=2, seed=0)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x = torch.rand(24, 1, 8, 8, generator=gen)
    y = torch.randint(0, 10, (24,), generator=gen)
    with latentgeo.LatentRecorder(
        model,
        layers=["conv3", "fc"],
        action=ImageRotations(Cyclic(4)),
        probe_inputs=x,
        store=str(tmp_path / "run.zarr"),
        mode="w",
    ) as rec:
        for step in range(5):
            if step in (0, 1, 4):
                rec.record(step, metrics={"loss": 1.0 / (1 + step)})
            loss = torch.nn.functional.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
    run = latentgeo.open_run(tmp_path / "run.zarr")
    results = probes.run(run, progress=False, cache=False)
    traj = trajectories.subspace(run, "fc", k=3)
    Z = run.latents("fc").isel(step=-1).values
    rho = probes.LinearProbe(n_null=0, n_bootstrap=0).fit(Z).rho_
    figures = {
        "equivariance": plot.equivariance(results),
        "invariance": plot.invariance(results),
        "homomorphism": plot.homomorphism_error(results),
        "spectrum": plot.irrep_spectrum(results, "fc"),
        "embedding": plot.trajectory_embedding(traj.embed()),
        "distances": plot.distance_matrix(traj.distance_matrix()),
        "orbits": plot.orbits(Z, run.group),
        "rho": plot.rho_heatmaps(rho, run.group),
        "summary": plot.summary(results, metrics=run.metrics, distances=traj.distance_matrix()),
    }
    formats = [(".png", b"\x89PNG"), (".svg", b"<?xml"), (".pdf", b"%PDF")]
    # Every figure is rendered; the formats rotate over them (each backend is exercised
    # three times) to keep the test fast, and the summary page goes to all three.
    for i, (name, fig) in enumerate(figures.items()):
        for suffix, magic in formats if name == "summary" else [formats[i % 3]]:
            path = plot.save(fig, tmp_path / f"{name}{suffix}")
            assert path.read_bytes().startswith(magic), (name, suffix)
