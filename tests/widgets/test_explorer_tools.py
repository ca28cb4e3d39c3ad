"""The explorer's selection and trajectory tools without a browser: cluster toggles, named regions,
regions from index files, colours by pose and by any array, rare states drawn visibly, the pair
grid, the 3-D view and the trajectory creator."""

import numpy as np
import pytest

pytest.importorskip("holoviews")
pytest.importorskip("datashader")
pytest.importorskip("panel")

import holoviews as hv  # noqa: E402

from cryonb.core.errors import InputError  # noqa: E402
from cryonb.core.io.pickles import read_index, write_index_pickle  # noqa: E402
from cryonb.core.particles import load_particles, save_selection, write_star  # noqa: E402
from cryonb.core.rotations import matrix_to_relion  # noqa: E402
from cryonb.core.run import Run  # noqa: E402
from cryonb.widgets.latent_explorer import LatentExplorer  # noqa: E402
from cryonb.widgets.latent_views import PairGrid, Scatter3D, render_pair_grid, subsample  # noqa: E402
from test_latent_explorer import N, latent_run, tiny_particles  # noqa: E402

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def text(html_widget) -> str:
    """What an HTML widget says, tags dropped."""
    import html
    import re

    return html.unescape(re.sub(r"<[^>]+>", "", html_widget.value))


@pytest.fixture
def run():
    return latent_run(tiny_particles().subset(np.random.default_rng(2).permutation(200)[:N]))


@pytest.fixture
def explorer(run):
    return LatentExplorer(run, coords="pca", k=3)


def test_cluster_toggles_add_and_remove_whole_clusters(explorer):
    view = explorer.widget  # noqa: F841  (builds the toggles)
    labels = explorer.clusters.labels
    boxes = explorer._cluster_boxes
    assert len(boxes) == 3 and not any(b.value for b in boxes)
    boxes[0].value = True
    np.testing.assert_array_equal(explorer.positions, np.flatnonzero(labels == 0))
    boxes[2].value = True
    np.testing.assert_array_equal(explorer.positions, np.flatnonzero(labels != 1))
    boxes[0].value = False
    np.testing.assert_array_equal(explorer.positions, np.flatnonzero(labels == 2))
    # A lasso over part of cluster 2 and all of cluster 1 leaves only cluster 1's toggle on.
    explorer.select(np.r_[np.flatnonzero(labels == 1), np.flatnonzero(labels == 2)[:3]])
    assert [b.value for b in boxes] == [False, True, False]
    assert boxes[1].description == f"1 ({(labels == 1).sum()})"
    explorer.select_clusters([1])
    explorer.remove()  # cluster 1 out of view: its toggle is disabled
    assert boxes[1].disabled and not boxes[0].disabled
    explorer.select_clusters([0, 2], mode="replace")
    assert explorer.positions.size == (labels != 1).sum()
    with pytest.raises(InputError, match="cluster 5 does not exist"):
        explorer.select_clusters([5])


def test_named_regions_kept_combined_saved_and_removed(explorer, tmp_path):
    labels = explorer.clusters.labels
    explorer.select_clusters([0])
    first = explorer.store_region("zero")
    explorer.select_clusters([0, 1])
    explorer.store_region("zero and one")
    explorer.select_range("z1", low=0.0)
    explorer.store_region()  # "region"
    assert explorer.regions.names == ["zero", "zero and one", "region"] and first == "zero"
    assert explorer.shown_regions == explorer.regions.names
    explorer.combine_regions("only one", "difference", ["zero and one", "zero"])
    np.testing.assert_array_equal(explorer.regions["only one"], np.flatnonzero(labels == 1))
    explorer.combine_regions("both", "intersection", ["zero and one", "region"])
    explorer.select_region("only one")
    np.testing.assert_array_equal(explorer.positions, np.flatnonzero(labels == 1))
    explorer.select_region("zero", mode="add")
    assert explorer.positions.size == (labels <= 1).sum()
    written = explorer.save_region("only one", tmp_path / "one")
    np.testing.assert_array_equal(read_index(written["ind_npy"]), explorer.run.particles.indices[labels == 1])
    explorer.remove_region("zero")
    assert "zero" not in explorer.regions and "zero" not in explorer.shown_regions
    explorer.show_regions(["both"])
    drawn = explorer._regions_pipe.data
    assert len(drawn) == len(explorer.regions["both"])
    assert set(drawn["region"]) == {explorer.regions.names.index("both")}
    assert explorer.region_color("both") != explorer.region_color("only one")


def test_region_panel_buttons(explorer, tmp_path):
    view = explorer.widget  # noqa: F841
    panel = explorer._tools.children[1]  # the accordion's "Regions"
    name = panel.children[0].children[0]
    store = panel.children[0].children[1]
    explorer.select_clusters([2])
    name.value = "two"
    store.click()
    assert explorer.regions.names == ["two"]
    rows = panel.children[2].children
    assert len(rows) == 1 and "two" in rows[0].children[1].value
    rows[0].children[4].value = str(tmp_path / "two")
    rows[0].children[5].click()  # Save
    assert (tmp_path / "two.ind.npy").exists()
    assert "wrote 'two'" in text(panel.children[-1])
    rows[0].children[6].click()  # Remove
    assert not explorer.regions.names
    store.click()  # the same name again, and an empty path to load
    panel.children[1].children[1].click()
    assert "cannot read particle indices" in text(panel.children[-1])


def test_regions_from_index_files_and_star_subsets(tmp_path):
    particles = tiny_particles(60)
    write_star(particles, tmp_path / "all.star")
    stack = load_particles(tmp_path / "all.star")
    run = latent_run(stack.subset(np.arange(10, 60)))  # trained on rows 10..59
    explorer = LatentExplorer(run, coords="pca", k=None, color="norm")
    write_index_pickle(np.array([5, 12, 40]), tmp_path / "picked.pkl")  # row 5 is not in the run
    assert explorer.load_region(tmp_path / "picked.pkl") == "picked"
    np.testing.assert_array_equal(explorer.regions["picked"], [2, 30])
    save_selection(stack.subset([11, 20, 59]), tmp_path / "from_relion")
    name = explorer.load_region(tmp_path / "from_relion.star")
    np.testing.assert_array_equal(explorer.regions[name], [1, 10, 49])
    (tmp_path / "picked.txt").write_text("12\n")
    assert explorer.load_region(tmp_path / "picked.txt") == "picked 2"  # names stay unique
    assert explorer.shown_regions == ["picked", "from_relion", "picked 2"]


def test_colour_by_pose_and_by_any_array(explorer):
    rot, tilt, psi = matrix_to_relion(explorer.run.particles.rotations.astype(np.float64))
    assert {"rot", "tilt", "psi"} <= set(explorer.value_names())
    np.testing.assert_allclose(explorer.values_of("tilt"), tilt)
    view = explorer.widget
    explorer.colour_by("tilt")
    assert explorer.color == "tilt" and not explorer.categorical
    assert explorer._colour_menu.value == "tilt"
    resolution = np.linspace(3, 8, N)
    explorer.colour_by(resolution, "local resolution")
    assert "local resolution" in explorer.value_names() and "local resolution" in explorer._colour_menu.options
    assert "local resolution" in explorer._range_name.options  # the histogram can select on it
    explorer.select_range("local resolution", high=4.0)
    np.testing.assert_array_equal(explorer.positions, np.flatnonzero(resolution <= 4.0))
    assert explorer._pane.object is explorer.plot  # the view shows the plot drawn anew
    assert hv.renderer("bokeh").get_plot(explorer.plot).state.title.text == "coloured by local resolution"
    explorer._colour_menu.value = "cluster"  # the menu colours too
    assert explorer.categorical and explorer.color == "cluster"
    assert "application/vnd.jupyter.widget-view+json" in view._repr_mimebundle_()
    explorer.colour_by(np.arange(N) % 4, "quarter")
    assert explorer.categorical and list(explorer._table["color"].cat.categories) == ["0", "1", "2", "3"]
    with pytest.raises(InputError, match="expected \\(120,\\)"):
        explorer.colour_by(np.zeros(3))
    with pytest.raises(InputError, match="not numbers"):
        explorer.colour_by(np.array(["a"] * N))
    with pytest.raises(InputError, match="needs the particles' shifts"):
        explorer.colour_by("shift_x")  # tiny particles have no shifts


def shaded(explorer, width, height):
    """The explorer's shading of all its particles, evaluated at its own axis ranges."""
    (x0, x1), (y0, y1) = explorer.ranges
    image = explorer.shade(hv.Points(explorer._table, ["x", "y"], ["color"]), width=width, height=height, x_range=(x0, x1), y_range=(y0, y1))
    return image[()] if isinstance(image, hv.DynamicMap) else image


def test_regions_are_drawn_in_their_own_colours(explorer):
    explorer.select_clusters([0])
    explorer.store_region("zero")
    explorer.select_clusters([2])
    explorer.store_region("two")
    (x0, x1), (y0, y1) = explorer.ranges
    image = explorer.shade_regions(hv.Points(explorer._region_table(), ["x", "y"], ["region"]), width=300, height=200,
                                   x_range=(x0, x1), y_range=(y0, y1))
    image = image[()] if isinstance(image, hv.DynamicMap) else image
    rgba = np.dstack([image.dimension_values(d, flat=False) for d in "RGBA"]).astype(int)
    drawn = rgba[rgba[..., 3] > 0][:, :3]
    for name in ("zero", "two"):
        colour = np.array([int(explorer.region_color(name)[i:i + 2], 16) for i in (1, 3, 5)])
        assert (np.abs(drawn - colour).max(1) <= 3).sum() > 20, name  # exactly the swatch's colour
    assert explorer.region_color("zero") != explorer.region_color("two")


def rare_state(n_common=3000, n_rare=70, seed=0):
    rng = np.random.default_rng(seed)
    z = np.concatenate([rng.normal(0, 1, (n_common, 2)), rng.normal(0, 1, (n_rare, 2)) * 0.3 + (4.0, 4.0)]).astype(np.float32)
    return Run(model=None, scale=1.0, apix=1.0, z=z), np.r_[np.zeros(n_common, int), np.ones(n_rare, int)]


@pytest.mark.parametrize("point_size", [0, 1])
def test_a_rare_state_is_drawn_visibly(point_size):
    run, labels = rare_state()
    explorer = LatentExplorer(run, coords=run.z, color=labels, k=None, point_size=point_size)
    image = shaded(explorer, 600, 450)
    rgba = np.dstack([image.dimension_values(d, flat=False) for d in "RGBA"])
    import colorcet

    rare = tuple(int(colorcet.palette["glasbey_category10"][1][i:i + 2], 16) for i in (1, 3, 5))
    rare_pixels = ((np.abs(rgba[..., :3].astype(int) - rare).max(-1) < 40) & (rgba[..., 3] >= 150)).sum()
    if point_size:
        assert rare_pixels >= 5 * 70  # 70 particles: hundreds of strongly coloured pixels, not 70 faint ones
    else:
        assert rare_pixels >= 70


def test_numbers_keep_their_range_when_spread():
    run, _ = rare_state(300, 10)
    values = np.linspace(5.0, 6.0, len(run.z))
    explorer = LatentExplorer(run, coords=run.z, color=values, k=None)
    means = shaded(explorer, 300, 200).dimension_values(2)
    assert np.nanmin(means) >= 5.0 - 1e-6 and np.nanmax(means) <= 6.0 + 1e-6  # spreading once summed neighbours' means


def test_pair_grid_and_3d_view(explorer):
    explorer.select_clusters([1])
    grid = PairGrid.of(explorer)
    assert bytes(grid.image.value).startswith(PNG_MAGIC)
    plain = render_pair_grid(explorer.run.z, [0, 1])
    assert plain != render_pair_grid(explorer.run.z, [0, 1], highlight=explorer.positions)
    with pytest.raises(InputError, match="dimensions"):
        render_pair_grid(explorer.run.z, [0, 7])
    view = Scatter3D.of(explorer)
    first = bytes(view.image.value)
    assert first.startswith(PNG_MAGIC)
    view.azimuth.value = 30
    assert bytes(view.image.value) != first
    assert len(view.highlight) == (explorer.clusters.labels == 1).sum()
    rows = subsample(10_000, keep=[3, 9_999], most=100)
    assert len(rows) == 100 and {3, 9_999} <= set(rows.tolist())
    with pytest.raises(InputError, match="zdim >= 3"):
        Scatter3D(explorer.run.z[:, :2])


def test_trajectory_from_centres_and_clicks(explorer, tmp_path):
    explorer.anchors_from_centres()
    np.testing.assert_array_equal(explorer.anchors, explorer.centres)
    path = explorer.make_trajectory(order="shortest", path="graph", n=12, k=40)
    assert len(path.z) == 12 and sorted(explorer.anchors) == sorted(explorer.centres.tolist())
    np.testing.assert_array_equal(explorer.path, path.particles[path.particles >= 0])
    assert set(explorer.anchors) <= set(explorer.path.tolist())
    explorer.clear_anchors()
    assert explorer.anchors == [] and explorer.trajectory is None
    explorer.anchor_on_click = True
    for x, y in explorer.coords[[0, 50, 100]]:
        explorer.tap.event(x=float(x), y=float(y))
    assert explorer.anchors == [0, 50, 100]
    drawn = explorer._anchors_pipe.data
    assert list(drawn["label"]) == ["1", "2", "3"]
    line = explorer.make_trajectory(path="straight", n=9)
    assert len(line.z) == 9 and np.allclose(line.z[0], explorer.run.z[0]) and np.allclose(line.z[-1], explorer.run.z[100])
    written = explorer.export_trajectory(tmp_path / "traj", maps=False)
    np.testing.assert_allclose(np.loadtxt(written["z"]), line.z, atol=1e-4)
    with pytest.raises(InputError, match="no model"):
        explorer.export_trajectory(tmp_path / "traj")


def test_trajectory_maps_and_player(tiny_trainer, tmp_path):
    tiny_trainer.fit(1, progress=False)
    run = Run.from_trainer(tiny_trainer)
    explorer = LatentExplorer(run, coords="pca", k=3)
    view = explorer.widget  # noqa: F841
    panel = explorer._tools.children[2]  # the accordion's "Trajectory"
    buttons = {b.description: b for row in panel.children if hasattr(row, "children") for b in row.children if hasattr(b, "click")}
    buttons["k-means centres"].click()
    buttons["Make path"].click()
    assert explorer.trajectory is not None and "latents through 3 anchors" in text(panel.children[5])
    written = explorer.export_trajectory(tmp_path / "out")
    assert [p.name for p in written["maps"]][:2] == ["traj_000.mrc", "traj_001.mrc"]
    assert len(written["maps"]) == len(explorer.trajectory.z)
    player = explorer.play_trajectory()
    assert player.maps.shape[0] == len(explorer.trajectory.z)


def test_trajectory_across_separate_clusters_is_drawn_and_told(tmp_path):
    from cryonb.core.analysis import GraphGapWarning

    particles = tiny_particles()
    rng = np.random.default_rng(3)
    half = len(particles) // 2
    z = np.concatenate([rng.normal(0, 0.3, (half, 2)), rng.normal(0, 0.3, (len(particles) - half, 2)) + (8, 0)]).astype(np.float32)
    explorer = LatentExplorer(Run(model=None, scale=1.0, apix=particles.apix, z=z, particles=particles), coords="pca", k=2)
    view = explorer.widget  # noqa: F841
    panel = explorer._tools.children[2]  # the accordion's "Trajectory"
    controls = {c.description: c for row in panel.children if hasattr(row, "children") for c in row.children if hasattr(c, "description")}
    explorer.add_anchor(0)
    explorer.add_anchor(len(z) - 1)
    controls["Make path"].click()  # default: the path jumps the gap; the panel says so, the plot draws it dashed
    said = text(panel.children[5])
    across = explorer.trajectory.gaps
    assert across.any() and (explorer.trajectory.particles[across][:-1] == -1).all()  # latents on the jump: no particle's
    assert f"{across.sum()} of them across gaps between separate parts" in said and "2 separate parts" in said and "jumps 1 gap" in said
    assert "cryonb-notice" in panel.children[5].value
    (segment,) = explorer._gap_pipe.data
    particles_on_path = explorer.trajectory.particles[explorer.trajectory.particles >= 0]
    step = int(np.flatnonzero(np.diff(particles_on_path >= half))[0])
    np.testing.assert_allclose(segment, explorer.coords[particles_on_path[step:step + 2]])
    first, second = explorer._path_pipe.data  # the solid line stops on each side of the jump
    np.testing.assert_allclose(np.concatenate([first, second]), explorer.coords[particles_on_path])
    assert len(first) == step + 1
    # Called from the notebook, the same notice is a warning and stays on the explorer.
    with pytest.warns(GraphGapWarning, match="jumps 1 gap"):
        explorer.make_trajectory(n=10)
    assert "jumps 1 gap" in explorer.trajectory_notice
    # More neighbours: no gap, nothing dashed; refuse: the error, in red, and no new trajectory.
    controls["separate parts"].value = "grow"
    controls["Make path"].click()
    assert not explorer.trajectory.gaps.any() and explorer._gap_pipe.data == []
    assert "joins them" in text(panel.children[5]) and "across gaps" not in text(panel.children[5])
    controls["separate parts"].value = "raise"
    before = explorer.trajectory
    controls["Make path"].click()
    assert "are not connected in the graph" in text(panel.children[5]) and "#b00020" in panel.children[5].value
    assert explorer.trajectory is before
    explorer.clear_anchors()
    assert explorer.trajectory_notice == ""


def test_an_unexpected_error_of_a_button_is_told_in_its_panel(explorer, monkeypatch):
    """A defect in a button's action shows in the panel, not only in JupyterLab's log (ipywidgets logs
    what a callback raises)."""

    def broken(*_, **__):
        raise KeyError("a defect")

    monkeypatch.setattr(explorer, "anchors_from_centres", broken)
    view = explorer.widget  # noqa: F841  (builds the panels, whose buttons hold the action)
    panel = explorer._tools.children[2]  # the accordion's "Trajectory"
    controls = {c.description: c for row in panel.children if hasattr(row, "children") for c in row.children if hasattr(c, "description")}
    controls["k-means centres"].click()
    said = text(panel.children[5])
    assert "KeyError: 'a defect'" in said and "unexpected error" in said and "#b00020" in panel.children[5].value
