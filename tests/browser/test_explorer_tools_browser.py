"""The explorer's tools in JupyterLab: a cluster toggle selects its cluster in the kernel, a stored
region is drawn, the colour menu redraws the plot by pose, and the trajectory creator draws a path
through the k-means centres, with no console errors on the way; a path between separate clusters
is made, and the panel says that it jumps a gap (or shows the refusal when asked to refuse)."""

import pytest
from harness import element_pixels
from test_explorer_browser import kernel_json, show_explorer

pytestmark = [pytest.mark.slow, pytest.mark.warm_kernel]
pytest.importorskip("holoviews")


def test_cluster_toggle_region_colour_and_trajectory(lab, lab_page):
    page, canvas, frame = show_explorer(lab, lab_page, "explorer_tools.ipynb")
    errors = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)

    # Ticking cluster 1's box selects exactly cluster 1, in the kernel and in the count line.
    page.locator(".jp-OutputArea-output .cryonb-explorer-cluster").filter(has_text="1 (").locator("input").check()
    members = kernel_json(lab_page, "explorer.cluster_members(1).tolist()")
    lab_page.wait_until(lambda: kernel_json(lab_page, "explorer.positions.tolist()") == members, message="cluster 1 selected")
    lab_page.wait_until(lambda: lab_page.text(".cryonb-explorer-count") == f"{len(members)} selected of 64", message="the count")

    # Stored as a region: listed with its size, and drawn (the canvas changes).
    page.get_by_text("Regions", exact=True).click()
    page.locator(".jp-OutputArea-output .cryonb-explorer-region-name input").fill("state B")
    before = canvas.screenshot()
    lab_page.click_button("Store selection")
    lab_page.wait_until(lambda: kernel_json(lab_page, "explorer.regions.names") == ["state B"], message="the region stored")
    row = lab_page.widget(".cryonb-explorer-region")
    assert f"state B ({len(members)})" in row.inner_text()
    lab_page.wait_until(lambda: canvas.screenshot() != before, message="the region drawn")

    # The colour menu redraws the plot coloured by tilt, with a colour bar.
    page.locator(".jp-OutputArea-output .cryonb-explorer-colour select").select_option("tilt")
    lab_page.wait_until(lambda: kernel_json(lab_page, "explorer.color") == "tilt", message="coloured by tilt")
    lab_page.wait_until(lambda: "coloured by tilt" in page.evaluate(_TITLES_JS), message="the new title drawn")
    canvas = lab_page.widget(".bk-Canvas").first
    lab_page.wait_until(lambda: element_pixels(canvas) > 500, message="the particles drawn again")

    # Trajectory: the k-means centres as anchors, a path made and drawn.
    page.get_by_text("Trajectory", exact=True).click()
    lab_page.click_button("k-means centres")
    lab_page.wait_until(lambda: len(kernel_json(lab_page, "explorer.anchors")) == 3, message="three anchors")
    lab_page.click_button("Make path")
    lab_page.wait_until(lambda: kernel_json(lab_page, "explorer.trajectory is not None"), timeout=60, message="a trajectory")
    assert "anchors" in lab_page.text(".cryonb-explorer-trajectory-message")
    page.wait_for_timeout(500)
    assert not errors, errors[:5]


# The titles of every Bokeh plot on the page (the title is drawn on the canvas, not in the DOM).
_TITLES_JS = """() => Array.from(window.Bokeh.index.all_views(), v => v.model?.title?.text ?? "").join("\\n")"""


SEPARATE_CLUSTERS = [
    # Two clusters of latents far apart (a run without a model): a k-NN graph in two parts.
    """\
import numpy as np, torch
from cryonb.core.particles import ParticleSet
from cryonb.core.rotations import random_rotations
from cryonb.core.run import Run
from cryonb.widgets import LatentExplorer

rng = np.random.default_rng(0)
n = 80
particles = ParticleSet(images=rng.standard_normal((n, 8, 8), dtype=np.float32),
                        rotations=random_rotations(n, torch.Generator().manual_seed(0)).numpy(),
                        ctf=np.tile(np.array([15000, 15000, 0, 300, 2.7, 0.1, 0, 0], np.float32), (n, 1)), apix=4.0)
z = np.concatenate([rng.normal(0, 0.3, (40, 2)), rng.normal(0, 0.3, (40, 2)) + (8, 0)]).astype(np.float32)
explorer = LatentExplorer(Run(model=None, scale=1.0, apix=4.0, z=z, particles=particles), coords="pca", k=2)
explorer.add_anchor(0)
explorer.add_anchor(79)
explorer""",
    "print('EXPLORER SHOWN')",
]


def test_a_path_between_separate_clusters_is_told_in_the_panel(lab, lab_page):
    lab_page.run_notebook("separate_clusters.ipynb", *SEPARATE_CLUSTERS, until="EXPLORER SHOWN", timeout=120)
    page = lab_page.page
    canvas = lab_page.widget(".bk-Canvas")
    lab_page.wait_until(lambda: element_pixels(canvas) > 200, message="the particles drawn")
    errors = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.get_by_text("Trajectory", exact=True).click()
    before = canvas.screenshot()
    lab_page.click_button("Make path")
    lab_page.wait_until(lambda: kernel_json(lab_page, "explorer.trajectory is not None"), timeout=60, message="a trajectory")
    # The panel's message follows the trajectory in a later widget update: waited for, not read at once
    # (a loaded machine has taken over 30 s to render it).
    message = page.locator(".jp-OutputArea-output .cryonb-explorer-trajectory-message")
    lab_page.wait_until(lambda: "across gaps between separate parts of the graph" in message.inner_text(), timeout=90,
                        message="the panel's message of the jump",
                        describe=lambda: (message.inner_text(), kernel_json(lab_page, "[explorer.trajectory_notice, int(explorer.trajectory.gaps.sum())]")))
    assert "2 separate parts" in lab_page.text(".cryonb-explorer-trajectory-message .cryonb-notice")
    assert kernel_json(lab_page, "int(explorer.trajectory.gaps.sum())") > 0
    lab_page.wait_until(lambda: canvas.screenshot() != before, message="the path drawn")
    # Refused on request: the error is shown, in place of the notice.
    page.locator(".jp-OutputArea-output .cryonb-explorer-trajectory-disconnected select").select_option(label="refuse")
    lab_page.click_button("Make path")
    lab_page.wait_until(lambda: "not connected in the graph" in lab_page.text(".cryonb-explorer-trajectory-message"),
                        message="the refusal shown")
    page.wait_for_timeout(500)
    assert not errors, errors[:5]
