import numpy as np
import pytest
import torch

pytest.importorskip("holoviews")
pytest.importorskip("datashader")
pytest.importorskip("panel")

from cryonb.core.analysis import box_select, lasso_select, latent_norm  # noqa: E402
from cryonb.core.ctf import CTF_COLUMNS  # noqa: E402
from cryonb.core.errors import InputError  # noqa: E402
from cryonb.core.io.pickles import read_index  # noqa: E402
from cryonb.core.io.star import read_star  # noqa: E402
from cryonb.core.particles import ParticleSet, load_particles, write_star  # noqa: E402
from cryonb.core.rotations import random_rotations  # noqa: E402
from cryonb.core.run import Run  # noqa: E402
from cryonb.widgets.latent_explorer import LatentExplorer  # noqa: E402

N = 120
SQUARE = np.array([[-3.0, -1.5], [3.0, -1.5], [2.0, 2.5], [-2.0, 3.0]])  # crosses all three clusters


def tiny_particles(n: int = 200, seed: int = 0) -> ParticleSet:
    """Random images, poses and CTFs (defocus all different); ``indices`` are 0..n-1."""
    rng = np.random.default_rng(seed)
    ctf = np.tile(np.array([15000, 15000, 0, 300, 2.7, 0.1, 0, 0], np.float32), (n, 1))
    ctf[:, 0] += np.arange(n, dtype=np.float32) * 10
    ctf[:, 1] = ctf[:, 0] - 100
    return ParticleSet(images=rng.standard_normal((n, 8, 8), dtype=np.float32),
                       rotations=random_rotations(n, torch.Generator().manual_seed(seed)).numpy(),
                       ctf=ctf, apix=4.0)


def latent_run(particles: ParticleSet, seed: int = 1) -> Run:
    """A run without a model: three clusters of 3D latents, one per particle."""
    rng = np.random.default_rng(seed)
    centres = np.array([[-3.0, 0, 0], [3.0, 0, 0], [0, 3.0, 1.0]])
    z = (centres[np.arange(len(particles)) % 3] + rng.normal(0, 0.7, (len(particles), 3))).astype(np.float32)
    return Run(model=None, scale=1.0, apix=particles.apix, z=z, particles=particles)


@pytest.fixture
def run():
    """N particles whose original rows are a shuffled subset of 200, so positions != rows."""
    particles = tiny_particles().subset(np.random.default_rng(2).permutation(200)[:N])
    return latent_run(particles)


def test_lasso_event_selects_the_points_inside_the_polygon(run):
    explorer = LatentExplorer(run, coords="pca", k=3)
    explorer.lasso.event(geometry=SQUARE)
    expected = lasso_select(explorer.coords, SQUARE)
    assert 0 < len(expected) < N
    np.testing.assert_array_equal(explorer.positions, expected)
    np.testing.assert_array_equal(explorer.selection, run.particles.indices[expected])
    assert explorer.summary == f"{len(expected)} selected of {N}"


def test_box_event_and_rendered_widget(run):
    explorer = LatentExplorer(run, coords="pca", color="norm", k=None)
    view = explorer.widget  # the HoloViews plot is rendered and the streams attached to it
    explorer.box.event(bounds=(-4.0, -1.0, 0.5, 2.0))
    np.testing.assert_array_equal(explorer.positions, box_select(explorer.coords, -4.0, 0.5, -1.0, 2.0))
    assert explorer.summary in [child.value for child in view.children[0].children if hasattr(child, "value")]
    assert "application/vnd.jupyter.widget-view+json" in explorer._repr_mimebundle_()


def test_keep_remove_invert_reset(run):
    explorer = LatentExplorer(run, coords="pca", k=None, color="norm")
    explorer.select_polygon(SQUARE)
    inside = explorer.positions.copy()
    explorer.invert()
    np.testing.assert_array_equal(explorer.positions, np.setdiff1d(np.arange(N), inside))
    explorer.invert()
    explorer.remove()
    np.testing.assert_array_equal(explorer.working, np.setdiff1d(np.arange(N), inside))
    assert explorer.positions.size == 0
    explorer.lasso.event(geometry=SQUARE * 100)  # everything shown, but the removed stay out
    np.testing.assert_array_equal(explorer.positions, explorer.working)
    explorer.reset()
    explorer.select_polygon(SQUARE)
    explorer.keep()
    np.testing.assert_array_equal(explorer.working, inside)
    np.testing.assert_array_equal(explorer.positions, inside)
    explorer.select(np.arange(N))  # only the working set can be selected
    np.testing.assert_array_equal(explorer.positions, inside)
    assert explorer.summary == f"{len(inside)} selected of {len(inside)}"


def test_listeners_hear_every_change(run):
    explorer = LatentExplorer(run, coords="pca", k=None, color="norm")
    heard = []
    explorer.on_selection(lambda positions: heard.append(len(positions)))
    explorer.select(np.arange(10))
    explorer.invert()
    explorer.remove()
    assert heard == [10, N - 10, 0]


def test_save_writes_exactly_the_selected_particles(run, tmp_path):
    explorer = LatentExplorer(run, coords="pca", k=3)
    explorer.select_polygon(SQUARE)
    written = explorer.save(tmp_path / "picked")
    star = read_star(written["star"])
    chosen = run.particles.subset(explorer.positions)
    assert len(star) == len(explorer.positions) > 0
    np.testing.assert_array_equal(star.ctf[:, 0], chosen.ctf[:, 0])  # defocus differs for every particle
    np.testing.assert_allclose(star.rotations, chosen.rotations, atol=1e-5)
    np.testing.assert_array_equal(read_index(written["ind_npy"]), explorer.selection)
    np.testing.assert_array_equal(load_particles(written["star"]).images[:], chosen.images[:])  # in-memory images saved too


def test_save_from_a_star_file_keeps_its_rows(tmp_path):
    write_star(tiny_particles(), tmp_path / "all.star")
    particles = load_particles(tmp_path / "all.star", images=False)
    explorer = LatentExplorer(latent_run(particles), coords="pca", k=None, color="defocus_u")
    explorer.select_polygon(SQUARE)
    written = explorer.save(tmp_path / "picked")
    original = read_star(tmp_path / "all.star").table
    saved = read_star(written["star"]).table
    assert len(saved) == len(explorer.positions) > 0
    np.testing.assert_array_equal(saved["rlnDefocusU"].to_numpy(), original["rlnDefocusU"].to_numpy()[explorer.selection])


def test_colours(run):
    explorer = LatentExplorer(run, coords="pca", k=3)
    assert explorer.categorical and set(explorer.values) == {0, 1, 2}
    np.testing.assert_array_equal(explorer.values, explorer.clusters.labels)
    explorer = LatentExplorer(run, coords="pca", k=None, color="norm")
    np.testing.assert_allclose(explorer.values, latent_norm(run.z))
    assert not explorer.categorical
    explorer = LatentExplorer(run, coords="pca", k=None, color="defocus_v")
    np.testing.assert_array_equal(explorer.values, run.particles.ctf[:, 1])
    groups = np.arange(N) % 4
    assert LatentExplorer(run, coords="pca", k=None, color=groups).categorical
    assert not LatentExplorer(run, coords="pca", k=None, color=groups * 0.5).categorical
    for color in ("cluster", "norm", "defocus_u", groups):  # both kinds of plot build and render
        import holoviews as hv

        figure = hv.render(LatentExplorer(run, coords="pca", k=2, color=color).plot)
        assert "LassoSelectTool" in {type(tool).__name__ for tool in figure.tools}


def test_coordinates_overlays_and_paths(run):
    coords = np.column_stack([np.arange(N), np.arange(N) ** 0.5]).astype(np.float32)
    explorer = LatentExplorer(run, coords=coords, k=3)
    np.testing.assert_array_equal(explorer.coords, coords)
    explorer.show_path([5, 7, 9])
    np.testing.assert_array_equal(explorer._path_pipe.data[0], coords[[5, 7, 9]])
    centres = [layer for layer in explorer.plot[()] if layer.label == "k-means centres"][0]
    np.testing.assert_array_equal(centres.array(), coords[explorer.clusters.on_data])


def test_bad_input_is_explained(run, tmp_path):
    explorer = LatentExplorer(run, coords="pca", k=None, color="norm")
    with pytest.raises(InputError, match="no particles are selected"):
        explorer.save(tmp_path / "none")
    with pytest.raises(InputError, match=r"unknown colour 'defocus'.*'cluster', 'norm', 'defocus_u'"):
        LatentExplorer(run, coords="pca", color="defocus")
    with pytest.raises(InputError, match=r"colour 'cluster' needs k-means"):
        LatentExplorer(run, coords="pca", k=None)
    with pytest.raises(InputError, match=r"coords have shape \(3, 2\)"):
        LatentExplorer(run, coords=np.zeros((3, 2)), k=None, color="norm")
    with pytest.raises(InputError, match=r"colour array has shape \(5,\)"):
        LatentExplorer(run, coords="pca", color=np.zeros(5))
    with pytest.raises(InputError, match="out of range"):
        explorer.show_path([0, N])
    assert not list((tmp_path).iterdir())


def test_axis_ranges_fit_the_data_with_five_percent_padding(run):
    """The axes run over the data's own range plus 5 % each side: not from 0, not clipped at the edge."""
    import holoviews as hv

    from cryonb.widgets.bokeh_views import padded_range

    coords = np.random.default_rng(0).normal(size=(N, 2)) * [2.0, 0.5] + [10.0, 20.0]  # far from 0
    explorer = LatentExplorer(run, coords=coords, k=3)
    (x0, x1), (y0, y1) = explorer.ranges
    low, high = coords.min(0), coords.max(0)
    np.testing.assert_allclose([x0, x1], [low[0] - 0.05 * (high[0] - low[0]), high[0] + 0.05 * (high[0] - low[0])])
    np.testing.assert_allclose([y0, y1], [low[1] - 0.05 * (high[1] - low[1]), high[1] + 0.05 * (high[1] - low[1])])
    hv.extension("bokeh")
    figure = hv.renderer("bokeh").get_plot(explorer.plot).state  # what the browser is sent
    np.testing.assert_allclose([figure.x_range.start, figure.x_range.end, figure.y_range.start, figure.y_range.end],
                               [x0, x1, y0, y1], rtol=1e-6)
    assert padded_range([3.0, 3.0]) == pytest.approx((2.85, 3.15)) and padded_range([0.0]) == (-0.5, 0.5)


def test_a_removed_cluster_loses_its_centre_marker(run):
    """A k-means centre is drawn while its cluster has particles shown; Remove takes it away, Reset brings it back."""
    import holoviews as hv

    explorer = LatentExplorer(run, coords="pca", k=3)
    hv.extension("bokeh")
    hv.renderer("bokeh").get_plot(explorer.plot)  # the plot is built and listens to the pipes

    def drawn():  # the centre markers in the overlay as it is drawn now
        (centres,) = [element for element in explorer.plot[()] if element.label == "k-means centres"]
        return centres.array()

    np.testing.assert_array_equal(drawn(), explorer.coords[explorer.clusters.on_data])
    gone = explorer.clusters.labels[0]
    explorer.select(np.flatnonzero(explorer.clusters.labels == gone))
    explorer.remove()
    np.testing.assert_array_equal(np.sort(explorer.centres), np.sort(np.delete(explorer.clusters.on_data, gone)))
    np.testing.assert_array_equal(drawn(), explorer.coords[explorer.centres])
    assert len(drawn()) == 2
    explorer.reset()
    assert len(drawn()) == 3


def test_the_rendered_plot_imports_no_stylesheet(run):
    """Issue 14, item 4: offline (clusters, Binder) no stylesheet can come from a CDN; Panel's are inline."""
    from bokeh.models import ImportedStyleSheet, InlineStyleSheet

    explorer = LatentExplorer(run, coords="pca", k=3)
    explorer.widget
    model = explorer._plot_widget._model  # the jupyter_bokeh widget's Bokeh model
    assert [s.url for s in model.select({"type": ImportedStyleSheet})] == []
    assert list(model.select({"type": InlineStyleSheet}))
    explorer.lasso.event(geometry=SQUARE)
    explorer.remove()
    explorer.reset()  # the plot is re-drawn: still nothing imported
    assert [s.url for s in model.select({"type": ImportedStyleSheet})] == []


def test_notebook_friction(run):
    """Issue 14, item 6: no wheel-zoom active, a legend entry for the selection's magenta, the clicked
    particle marked, and the Save message whole."""
    from bokeh.models import Legend, Toolbar

    explorer = LatentExplorer(run, coords="pca", k=3)
    explorer.widget
    model = explorer._plot_widget._model
    (toolbar,) = model.select({"type": Toolbar})
    assert toolbar.active_scroll is None
    labels = [getattr(item.label, "value", None) for legend in model.select({"type": Legend}) for item in legend.items]
    assert "selected" in labels and "clicked" in labels
    picked = explorer.pick(*explorer.coords[7])
    np.testing.assert_allclose(explorer._picked_pipe.data, explorer.coords[[picked]])
    explorer.select([picked])
    explorer.remove()  # the clicked particle is no longer shown: nor marked
    assert explorer.picked is None and len(explorer._picked_pipe.data) == 0
    explorer._save_clicked()
    assert explorer.saved_message == "selection: no particles are selected. Fix: select some with the lasso or box tool first"
    assert "overflow-wrap: anywhere" in explorer._saved.value


def test_select_range_of_any_value_combines_with_the_lasso(run):
    """Issue 14: selection by range on a histogram of a per-particle value, combined with lasso regions."""
    from cryonb.core.analysis import range_select

    explorer = LatentExplorer(run, coords="pca", k=3)
    assert explorer.value_names() == ["norm", "z1", "z2", "z3", *CTF_COLUMNS, "rot", "tilt", "psi"]
    norm = latent_norm(run.z)
    low, high = np.quantile(norm, [0.3, 0.7])
    explorer.select_range("norm", low, high)
    np.testing.assert_array_equal(explorer.positions, range_select(norm, low, high))
    explorer.lasso.event(geometry=SQUARE)
    lassoed = explorer.positions.copy()
    explorer.select_range("z2", 0.0, None, mode="within")  # lassoed and z2 >= 0
    np.testing.assert_array_equal(explorer.positions, np.intersect1d(lassoed, np.flatnonzero(run.z[:, 1] >= 0)))
    defocus = run.particles.ctf[:, 0]
    explorer.select_range("defocus_u", high=np.median(defocus), mode="add")
    expected = np.union1d(np.intersect1d(lassoed, np.flatnonzero(run.z[:, 1] >= 0)), np.flatnonzero(defocus <= np.median(defocus)))
    np.testing.assert_array_equal(explorer.positions, expected)
    explorer.select(range(10))
    explorer.remove()  # only shown particles are selected
    explorer.select_range("norm")
    np.testing.assert_array_equal(explorer.positions, np.arange(10, N))
    with pytest.raises(InputError, match="unknown value"):
        explorer.select_range("z9", 0, 1)
    with pytest.raises(InputError, match="unknown mode"):
        explorer.select_range("norm", 0, 1, mode="xor")


def test_range_control_in_the_view(run):
    explorer = LatentExplorer(run, coords="pca", k=3)
    explorer.widget  # built: its range controls exist
    assert bytes(explorer._histogram.value).startswith(b"\x89PNG")
    explorer._range_name.value = "z1"
    assert explorer._range_slider.value == pytest.approx((run.z[:, 0].min(), run.z[:, 0].max()), rel=1e-6)
    explorer._range_slider.value = (0.0, float(run.z[:, 0].max()))
    explorer._range_mode.value = "replace"
    button = [b for b in explorer._tools.children[0].children[0].children if getattr(b, "description", "") == "Select range"][0]
    button.click()
    np.testing.assert_array_equal(explorer.positions, np.flatnonzero(run.z[:, 0] >= 0))
    assert explorer._label.value == explorer.summary


def test_bokehjs_is_loaded_once_into_each_page(monkeypatch):
    """Once per client session (a browser page), not once per kernel: a reloaded page gets it again."""
    import holoviews as hv

    from cryonb.widgets import bokeh_views

    loads, page = [], ["page-1"]
    monkeypatch.setattr(bokeh_views, "_PAGES_LOADED", set())
    monkeypatch.setattr(bokeh_views, "_client_session", lambda: page[0])
    monkeypatch.setattr(hv, "extension", lambda *args, **kwargs: loads.append((page[0], args, kwargs)))
    bokeh_views.load_bokehjs()
    bokeh_views.load_bokehjs()
    page[0] = "page-2"  # JupyterLab reloaded: a new connection to the same kernel
    bokeh_views.load_bokehjs()
    assert loads == [("page-1", ("bokeh",), {"inline": True}), ("page-2", ("bokeh",), {"inline": True})]


def test_outside_a_kernel_there_is_no_client_session():
    from cryonb.widgets.bokeh_views import _client_session

    assert _client_session() is None
