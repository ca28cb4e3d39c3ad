"""The explorer's tools in JupyterLab: a cluster toggle selects its cluster in the kernel, a stored
region is drawn, the colour menu redraws the plot by pose, and the trajectory creator draws a path
through the k-means centres, with no console errors on the way."""

import pytest
from harness import element_pixels
from test_explorer_browser import kernel_json, show_explorer

pytestmark = pytest.mark.slow
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
