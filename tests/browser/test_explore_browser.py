"""cryonb.explore() in JupyterLab, as a new user meets it (issue 14, item 6): scrolling over the plot
leaves it alone, the legend names the selection's colour, the gallery and the 3D view say what to do
before anything is selected, the Save message stays whole, and a clicked particle is marked and
its map drawn."""

import numpy as np
import pytest
from harness import element_pixels
from test_explorer_browser import _FRAME_JS, kernel_json

pytestmark = [pytest.mark.slow, pytest.mark.warm_kernel]
pytest.importorskip("holoviews")
pytest.importorskip("nglview")

NOTEBOOK = [
    """\
import torch
from cryonb.core.run import Run
from cryonb.core.simulate import simulate
from cryonb.core.training import TrainConfig, Trainer
from cryonb.widgets.explore import explore

torch.set_num_threads(1)
particles = simulate("hinge", 64, D=16, apix=8.0, snr=1.0, seed=3, progress=False).particles
config = TrainConfig(zdim=2, enc_width=32, enc_depth=2, dec_width=32, dec_depth=2, batch_size=16, device="cpu")
run = Run.from_trainer(Trainer(particles, config).fit(1, progress=False))
view = explore(run, coords="pca", k=3)
explorer = view.explorer
view""",
    "print('EXPLORE SHOWN')",
]

# Labels of the plot's legends and the points of its one-point glyph sources, as BokehJS has them.
_LEGEND_JS = """() => {
  const labels = [], points = [];
  for (const view of window.Bokeh.index.all_views()) {
    const m = view.model;
    if (m.type === 'Legend' || m.constructor.name === 'Legend')
      for (const item of m.items) if (item.label && item.label.value) labels.push(item.label.value);
    if (m.data_source && m.data_source.data && m.data_source.data.x && m.data_source.data.x.length === 1)
      points.push([m.data_source.data.x[0], m.data_source.data.y[0]]);
  }
  return {labels, points};
}"""


def fits(locator) -> bool:
    """Whether an element shows its whole content (no overflow cut off or run past its box)."""
    return locator.evaluate("(e) => e.scrollWidth <= e.clientWidth + 1 && e.scrollHeight <= e.clientHeight + 1")


def test_explore_as_a_new_user_meets_it(lab, lab_page):
    lab_page.run_notebook("explore.ipynb", *NOTEBOOK, until="EXPLORE SHOWN", timeout=120)
    page = lab_page.page
    canvas = lab_page.widget(".bk-Canvas")
    lab_page.wait_until(lambda: element_pixels(canvas) > 500, message="the shaded particles drawn")

    # Before any selection: a message, not a broken image; a hint, not an empty 3D view.
    assert lab_page.text(".cryonb-gallery-caption").startswith("No particles selected")
    assert not page.locator(".jp-OutputArea-output .cryonb-gallery-images").is_visible()
    assert "click a particle" in lab_page.text(".cryonb-explore-volume-hint")
    assert page.locator(".jp-OutputArea-output .cryonb-volume-view").count() == 0

    # The legend says what magenta and the ring mean.
    legend = page.evaluate(_LEGEND_JS)
    assert {"selected", "clicked"} <= set(legend["labels"]), legend

    # The wheel over the plot does not zoom it.
    frame = page.evaluate(_FRAME_JS)
    box = canvas.bounding_box()
    page.mouse.move(box["x"] + frame["left"] + frame["width"] / 2, box["y"] + frame["top"] + frame["height"] / 2)
    for _ in range(5):
        page.mouse.wheel(0, -200)
    page.wait_for_timeout(500)
    after = page.evaluate(_FRAME_JS)
    assert (after["x"], after["y"]) == (frame["x"], frame["y"])

    # Save with nothing selected, then to a long path: the button's and the message's text are whole.
    save = lab_page.button("Save selection")
    assert fits(save)
    save.click()
    lab_page.wait_until(lambda: "no particles are selected" in lab_page.text(".cryonb-explorer-saved"), message="why not saved")
    message = lab_page.widget(".cryonb-explorer-saved")
    assert fits(message)
    lab_page.execute("explorer.select(range(10))")
    prefix = lab.root / ("a_long_folder_name_" * 6) / "selection_of_ten_particles"
    prefix.parent.mkdir()
    page.locator(".jp-OutputArea-output .cryonb-explorer-prefix input").fill(str(prefix))
    save.click()
    lab_page.wait_until(lambda: lab_page.text(".cryonb-explorer-saved").startswith("wrote 10"), message="saved")
    explore_box = lab_page.widget(".cryonb-explore").bounding_box()
    shown = message.bounding_box()
    assert fits(message) and shown["x"] + shown["width"] <= explore_box["x"] + explore_box["width"] + 1
    assert str(prefix.with_suffix(".star")) in lab_page.text(".cryonb-explorer-saved").replace("\n", "")

    # A click picks a particle: it is ringed on the plot and its map replaces the hint.
    coords = np.array(kernel_json(lab_page, "explorer.coords.tolist()"))
    target = 0
    (x0, x1), (y0, y1) = frame["x"], frame["y"]
    u, v = (coords[target, 0] - x0) / (x1 - x0), (y1 - coords[target, 1]) / (y1 - y0)
    page.locator(".jp-OutputArea-output .bk-tool-icon-tap-select").click()
    canvas.scroll_into_view_if_needed()  # clicking Save scrolled the page: the plot is elsewhere now
    box = canvas.bounding_box()
    page.mouse.click(box["x"] + frame["left"] + u * frame["width"], box["y"] + frame["top"] + v * frame["height"])
    lab_page.wait_until(lambda: kernel_json(lab_page, "explorer.picked") is not None, message="a particle picked")
    picked = kernel_json(lab_page, "explorer.picked")
    lab_page.wait_until(lambda: any(np.allclose(p, coords[picked], atol=1e-5) for p in page.evaluate(_LEGEND_JS)["points"]),
                        message="the clicked particle marked")
    lab_page.wait_until(lambda: page.locator(".jp-OutputArea-output .cryonb-explore-volume-hint").count() == 0, message="hint gone")
    ngl = lab_page.widget(".ui-resizable canvas")
    lab_page.wait_until(lambda: element_pixels(ngl) > 200, timeout=60, message="the clicked particle's map drawn")
