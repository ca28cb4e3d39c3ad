"""The latent explorer in JupyterLab: real lasso and box drags select, in the kernel, the particles inside
them, and a click picks the particle under the mouse."""

import json

import numpy as np
import pytest
from harness import drag, element_pixels, lasso

pytestmark = [pytest.mark.slow, pytest.mark.warm_kernel]
pytest.importorskip("holoviews")

NOTEBOOK = [
    # 64 simulated particles of 16² pixels, one epoch of a 32-wide model, on one thread.
    """\
import torch
from cryonb.core.run import Run
from cryonb.core.simulate import simulate
from cryonb.core.training import TrainConfig, Trainer
from cryonb.widgets import LatentExplorer

torch.set_num_threads(1)
particles = simulate("hinge", 64, D=16, apix=8.0, snr=1.0, seed=3, progress=False).particles
config = TrainConfig(zdim=2, enc_width=32, enc_depth=2, dec_width=32, dec_depth=2, batch_size=16, device="cpu")
run = Run.from_trainer(Trainer(particles, config).fit(1, progress=False))
explorer = LatentExplorer(run, coords="pca", k=3)""",
    "explorer",
    "print('EXPLORER SHOWN')",
]

# The plot's frame (inner plot area) relative to its canvas, and its axis ranges, as Bokeh has them.
_FRAME_JS = """() => {
  for (const view of window.Bokeh.index.all_views()) {
    if (!view.frame || !view.model.x_range) continue;
    const b = view.frame.bbox, x = view.model.x_range, y = view.model.y_range;
    return {left: b.left, top: b.top, width: b.width, height: b.height,
            x: [x.start, x.end], y: [y.start, y.end]};
  }
  return null;
}"""


def kernel_json(lab_page, expression: str):
    return json.loads(lab_page.execute(f"import json; print(json.dumps({expression}))"))


def show_explorer(lab, lab_page, name: str):
    """Run the notebook; return the page, the plot's canvas and its frame (see ``_FRAME_JS``)."""
    lab_page.run_notebook(name, *NOTEBOOK, until="EXPLORER SHOWN", timeout=120)
    canvas = lab_page.widget(".bk-Canvas")
    lab_page.wait_until(lambda: element_pixels(canvas) > 500, message="the shaded particles drawn")
    return lab_page.page, canvas, lab_page.page.evaluate(_FRAME_JS)


def to_data(frame, box, pixels) -> np.ndarray:
    """Page pixels (M, 2) in the plot's data coordinates."""
    (x0, x1), (y0, y1) = frame["x"], frame["y"]
    u = (pixels[:, 0] - box["x"] - frame["left"]) / frame["width"]
    v = (pixels[:, 1] - box["y"] - frame["top"]) / frame["height"]
    return np.column_stack([x0 + u * (x1 - x0), y1 - v * (y1 - y0)])


def pixel_size(frame) -> float:
    return max((frame["x"][1] - frame["x"][0]) / frame["width"], (frame["y"][1] - frame["y"][0]) / frame["height"])


def test_lasso_selects_in_the_kernel_and_save_writes_the_selection(lab, lab_page):
    page, canvas, frame = show_explorer(lab, lab_page, "explorer.ipynb")
    page.locator(".jp-OutputArea-output .bk-tool-icon-lasso-select").click()
    box = canvas.bounding_box()
    # A pentagon over the middle of the frame, in fractions of the frame, y downwards.
    shape = [(0.15, 0.2), (0.7, 0.1), (0.85, 0.6), (0.5, 0.9), (0.2, 0.7)]
    fractions = [((frame["left"] + fx * frame["width"]) / box["width"], (frame["top"] + fy * frame["height"]) / box["height"])
                 for fx, fy in shape]
    pixels = np.array(lasso(page, canvas, fractions))
    lab_page.wait_until(lambda: kernel_json(lab_page, "explorer.positions.size") > 0, message="a selection in the kernel")

    polygon = to_data(frame, box, pixels)
    received = np.array(kernel_json(lab_page, "explorer.lasso.geometry.tolist()"))
    nearest = np.abs(received[:, None, :] - polygon[None, :-1, :]).max(2).min(1)
    assert nearest[0] < pixel_size(frame)  # the drag starts where the test pressed the mouse
    np.testing.assert_allclose(received.min(0), polygon.min(0), atol=pixel_size(frame))
    np.testing.assert_allclose(received.max(0), polygon.max(0), atol=pixel_size(frame))

    from cryonb.core.analysis import lasso_select

    coords = np.array(kernel_json(lab_page, "explorer.coords.tolist()"))
    selected = kernel_json(lab_page, "explorer.positions.tolist()")
    assert set(selected) == set(lasso_select(coords, received).tolist()) == set(lasso_select(coords, polygon).tolist())
    assert 0 < len(selected) < 64
    expected = f"{len(selected)} selected of 64"  # the label's update may still be on its way to the page
    lab_page.wait_until(lambda: lab_page.text(".cryonb-explorer-count") == expected, message=f"the label to read {expected!r}")

    prefix = lab.root / "picked"
    page.locator(".jp-OutputArea-output .cryonb-explorer-prefix input").fill(str(prefix))
    lab_page.click_button("Save selection")
    lab_page.wait_until(lambda: lab_page.text(".cryonb-explorer-saved").startswith("wrote"), message="saved")

    from cryonb.core.io.pickles import read_index
    from cryonb.core.io.star import read_star

    star = read_star(prefix.with_suffix(".star"))
    defocus = kernel_json(lab_page, "explorer.run.particles.ctf[explorer.positions, 0].tolist()")
    np.testing.assert_array_equal(star.ctf[:, 0], np.float32(defocus))
    np.testing.assert_array_equal(read_index(prefix.with_name("picked.ind.npy")), selected)


def test_a_click_picks_a_particle_and_a_box_drag_selects(lab, lab_page):
    page, canvas, frame = show_explorer(lab, lab_page, "explorer_box.ipynb")
    box = canvas.bounding_box()
    coords = np.array(kernel_json(lab_page, "explorer.coords.tolist()"))
    # The axes fit the particles with 5 % to spare on each side (issue 14, item 2), as Bokeh has them.
    low, high = coords.min(0) - 0.05 * np.ptp(coords, 0), coords.max(0) + 0.05 * np.ptp(coords, 0)
    np.testing.assert_allclose([*frame["x"], *frame["y"]], [low[0], high[0], low[1], high[1]], rtol=1e-5)

    # Click the particle farthest from its neighbours, so that the nearest one is unambiguous.
    gaps = np.linalg.norm(coords[:, None] - coords[None], axis=-1) + np.eye(len(coords)) * 1e9
    target = int(gaps.min(1).argmax())
    (x0, x1), (y0, y1) = frame["x"], frame["y"]
    u, v = (coords[target, 0] - x0) / (x1 - x0), (y1 - coords[target, 1]) / (y1 - y0)
    page.locator(".jp-OutputArea-output .bk-tool-icon-tap-select").click()
    page.mouse.click(box["x"] + frame["left"] + u * frame["width"], box["y"] + frame["top"] + v * frame["height"])
    lab_page.wait_until(lambda: kernel_json(lab_page, "explorer.picked") == target, message=f"particle {target} picked")

    page.locator(".jp-OutputArea-output .bk-tool-icon-box-select").click()
    corners = [((frame["left"] + fx * frame["width"]) / box["width"], (frame["top"] + fy * frame["height"]) / box["height"])
               for fx, fy in [(0.1, 0.2), (0.6, 0.9)]]
    dragged = to_data(frame, box, np.array(drag(page, canvas, *corners)))
    lab_page.wait_until(lambda: kernel_json(lab_page, "explorer.positions.size") > 0, message="a box selection in the kernel")
    bounds = np.array(kernel_json(lab_page, "explorer.box.bounds"))  # left, bottom, right, top
    np.testing.assert_allclose(bounds[[0, 2]], np.sort(dragged[:, 0]), atol=pixel_size(frame))
    np.testing.assert_allclose(bounds[[1, 3]], np.sort(dragged[:, 1]), atol=pixel_size(frame))

    from cryonb.core.analysis import box_select

    selected = kernel_json(lab_page, "explorer.positions.tolist()")
    assert set(selected) == set(box_select(coords, bounds[0], bounds[2], bounds[1], bounds[3]).tolist())
    assert 0 < len(selected) < 64


def test_offline_the_explorer_renders_without_leaving_the_machine(lab, lab_page):
    """Issue 14, item 4: with every request off 127.0.0.1 refused (no internet: clusters, Binder),
    nothing is asked of a CDN, the explorer is drawn, and the server log has no HoloViews traceback."""
    from urllib.parse import urlsplit

    page = lab_page.page
    outside, failed, errors = [], [], []

    def refuse_outside(route):
        if urlsplit(route.request.url).hostname in ("127.0.0.1", "localhost"):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort("internetdisconnected")

    page.route("**/*", refuse_outside)
    page.on("requestfailed", lambda request: failed.append(request.url))
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    log_start = lab.log.stat().st_size
    show_explorer(lab, lab_page, "explorer_offline.ipynb")

    assert not outside, f"requests left the machine: {outside}"
    assert not [url for url in failed if not url.startswith(lab.base)]
    assert not [e for e in errors if "ERR_" in e or "Failed to load" in e], errors
    # Panel's stylesheets are in the page (inline), not links: its list panel lays out the explorer.
    styled = page.evaluate("""() => { let n = 0;
      for (const view of window.Bokeh.index.all_views()) n += (view.model.stylesheets || []).length; return n; }""")
    assert styled > 0
    log = lab.log.read_bytes()[log_start:].decode(errors="replace")
    assert "UnsetValueError" not in log and "Traceback" not in log, log[-3000:]


def test_after_jupyterlab_is_reloaded_the_explorer_is_drawn_again(lab, lab_page):
    """The kernel loaded BokehJS into the page before the reload; shown again, the explorer loads it
    into the new page rather than staying blank."""
    page, canvas, _ = show_explorer(lab, lab_page, "explorer_reload.ipynb")
    kernel = lab_page.kernel_id()
    page.reload()
    lab_page.open("explorer_reload.ipynb")
    assert lab_page.kernel_id() == kernel  # the same kernel, which has loaded BokehJS before
    lab_page.run_all()
    lab_page.wait_for_output("EXPLORER SHOWN", timeout=120)
    canvas = lab_page.widget(".bk-Canvas")
    lab_page.wait_until(lambda: element_pixels(canvas) > 500, message="the particles drawn after the reload")


def test_a_lasso_started_in_the_axis_margin_selects_without_console_errors(lab, lab_page):
    """Issue 14, item 2: a lasso pressed down left of the frame, over the y axis, and drawn over the
    particles selects them in the kernel, and the browser logs no error ("Assertion failed")."""
    page = lab_page.page
    errors = []
    page.on("console", lambda message: errors.append(message.text) if message.type in ("error", "assert") else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    page, canvas, frame = show_explorer(lab, lab_page, "explorer_margin.ipynb")
    page.locator(".jp-OutputArea-output .bk-tool-icon-lasso-select").click()
    box = canvas.bounding_box()
    # From the middle of the y axis's margin, over the frame's middle, and back into the margin.
    shape = [(-0.5, 0.3), (0.6, 0.15), (0.8, 0.7), (0.3, 0.85), (-0.5, 0.6)]
    fractions = [((frame["left"] * (1 + fx) if fx < 0 else frame["left"] + fx * frame["width"]) / box["width"],
                  (frame["top"] + fy * frame["height"]) / box["height"]) for fx, fy in shape]
    errors.clear()
    lasso_start = lasso(page, canvas, fractions)[0]
    lab_page.wait_until(lambda: kernel_json(lab_page, "explorer.positions.size") > 0, message="a selection in the kernel")
    from cryonb.core.analysis import lasso_select

    coords = np.array(kernel_json(lab_page, "explorer.coords.tolist()"))
    received = np.array(kernel_json(lab_page, "explorer.lasso.geometry.tolist()"))
    assert set(kernel_json(lab_page, "explorer.positions.tolist()")) == set(lasso_select(coords, received).tolist())
    # The lasso starts where it was pressed, moved onto the frame's left edge.
    np.testing.assert_allclose(received[0], to_data(frame, box, np.array([[box["x"] + frame["left"], lasso_start[1]]]))[0],
                               atol=2 * pixel_size(frame))

    # A box dragged from the margin also starts on the frame's edge.
    page.locator(".jp-OutputArea-output .bk-tool-icon-box-select").click()
    start = ((frame["left"] / 2) / box["width"], (frame["top"] + 0.2 * frame["height"]) / box["height"])
    end = ((frame["left"] + 0.5 * frame["width"]) / box["width"], (frame["top"] + 0.8 * frame["height"]) / box["height"])
    dragged = to_data(frame, box, np.array(drag(page, canvas, start, end)))
    lab_page.wait_until(lambda: kernel_json(lab_page, "explorer.box.bounds") is not None, message="a box in the kernel")
    bounds = kernel_json(lab_page, "explorer.box.bounds")  # left, bottom, right, top
    np.testing.assert_allclose([bounds[0], bounds[2]], [frame["x"][0], dragged[1, 0]], atol=2 * pixel_size(frame))
    page.wait_for_timeout(500)
    assert not errors, errors[:5]


def test_a_range_on_a_histogram_narrows_a_lasso_selection(lab, lab_page):
    """Issue 14 (tools): lasso, then open "Select by value", pick a latent dimension and "within",
    set the range and press Select range: the kernel keeps the lassoed particles in the range."""
    page, canvas, frame = show_explorer(lab, lab_page, "explorer_range.ipynb")
    page.locator(".jp-OutputArea-output .bk-tool-icon-lasso-select").click()
    box = canvas.bounding_box()
    shape = [(0.05, 0.05), (0.95, 0.05), (0.95, 0.95), (0.05, 0.95)]
    lasso(page, canvas, [((frame["left"] + fx * frame["width"]) / box["width"], (frame["top"] + fy * frame["height"]) / box["height"])
                         for fx, fy in shape])
    lab_page.wait_until(lambda: kernel_json(lab_page, "explorer.positions.size") > 0, message="a lasso selection")
    lassoed = kernel_json(lab_page, "explorer.positions.tolist()")

    page.get_by_text("Select by value (histogram)").click()
    histogram = lab_page.widget(".cryonb-explorer-range-histogram")
    lab_page.wait_until(lambda: element_pixels(histogram) > 500, message="the histogram drawn")
    page.locator(".jp-OutputArea-output .cryonb-explorer-range-name select").select_option("z1")
    page.locator(".jp-OutputArea-output .cryonb-explorer-range-mode button").filter(has_text="within").click()
    lab_page.wait_until(lambda: kernel_json(lab_page, "explorer._range_name.value") == "z1"
                        and kernel_json(lab_page, "explorer._range_mode.value") == "within", message="z1 and within chosen")
    lab_page.execute("explorer._range_slider.value = (float(run.z[:, 0].mean()), float(run.z[:, 0].max()))")
    page.wait_for_timeout(300)  # the slider may round the range to its step and send it back
    lab_page.click_button("Select range")
    low = kernel_json(lab_page, "explorer._range_slider.value[0]")
    z1 = np.array(kernel_json(lab_page, "run.z[:, 0].tolist()"))
    expected = sorted(set(lassoed) & set(np.flatnonzero(z1 >= low).tolist()))
    assert 0 < len(expected) < len(lassoed)
    lab_page.wait_until(lambda: kernel_json(lab_page, "explorer.positions.tolist()") == expected, message="the range within the lasso")
    lab_page.wait_until(lambda: lab_page.text(".cryonb-explorer-count") == f"{len(expected)} selected of 64", message="the count")
