"""Take the widget pictures of the documentation: each view rendered in JupyterLab, in headless Chromium.

    python docs/screenshots.py            # every picture
    python docs/screenshots.py tools      # only the explorer's tools (a model of its own, no monitor)
    python docs/screenshots.py maps       # only MapCompare and SliceViewer (the hinge phantom, no model)

Writes PNGs to docs/_static/ (each under 150 KB): one per view, the explorer's tools (histogram
range, named regions, trajectory creator, pair grid, 3-D view), and a strip of maps rendered by
cryonb.core.movies. Uses the browser-test harness (tests/browser/harness.py), so it needs Chromium
and the ``browser`` and ``widgets`` extras.
"""

from __future__ import annotations

import io
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image, ImageChops

REPO = Path(__file__).resolve().parents[1]
STATIC = REPO / "docs" / "_static"
MAX_BYTES = 150_000
sys.path.insert(0, str(REPO / "tests" / "browser"))

from harness import JupyterLab, LabPage, element_pixels, launch_chromium, missing_requirements, write_notebook  # noqa: E402

# The quickstart's data and model (three assemblies, 4-D latents), trained in the background so
# that the monitor is caught mid-run; then one cell per view.
CELLS = [
    """\
import numpy as np, torch
import cryonb  # displays a Trainer as its monitor
from cryonb.core.analysis import pc_traversal
from cryonb.core.run import Run
from cryonb.core.simulate import simulate
from cryonb.core.training import TrainConfig, Trainer
from cryonb.widgets import LatentExplorer, TrajectoryPlayer, VolumeViewer

torch.set_num_threads(1)  # a core left for the browser
sim = simulate("mixture", 1500, D=24, apix=8.0, snr=1.0, seed=0, progress=False)
trainer = Trainer(sim.particles, TrainConfig(zdim=4, enc_width=128, dec_width=128, batch_size=32, lr=1e-3, device="cpu"))
trainer""",
    "trainer.fit(12, background=True)\nprint('TRAINING STARTED')",
    """\
trainer.wait()
run = Run.from_trainer(trainer)
explorer = LatentExplorer(run, coords="umap", color="cluster", k=3)
explorer.select(np.flatnonzero(explorer.clusters.labels == explorer.clusters.labels[0]))
explorer""",
    "explorer.gallery()",
    "VolumeViewer(run).show(run.z[explorer.positions].mean(0))",
    "player = TrajectoryPlayer(run, pc_traversal(run.z, pc=0, n=8))\nplayer.frame = 4\nplayer",
    "print('ALL SHOWN')",
]


def trim(image: Image.Image, margin: int = 8) -> Image.Image:
    """``image`` without the empty background right of and below its content (a view narrower than the page)."""
    background = Image.new("RGB", image.size, image.getpixel((image.width - 1, image.height - 1)))
    left, top, right, bottom = ImageChops.difference(image, background).getbbox() or (0, 0, *image.size)
    return image.crop((0, 0, min(right + margin, image.width), min(bottom + margin, image.height)))


def save_png(png: bytes, name: str, crop: bool = True) -> Path:
    """Write ``png`` as docs/_static/``name`` (``crop``: trimmed), reduced to fewer colours if it is too large."""
    path = STATIC / name
    image = Image.open(io.BytesIO(png)).convert("RGB")
    image = trim(image) if crop else image
    for colours in (None, 256, 128, 64):
        out = io.BytesIO()
        (image if colours is None else image.quantize(colours, dither=Image.Dither.NONE)).save(out, "png", optimize=True)
        if out.tell() < MAX_BYTES:
            path.write_bytes(out.getvalue())
            print(f"{path.relative_to(REPO)}: {image.width}×{image.height}, {out.tell() / 1e3:.0f} kB")
            return path
    raise ValueError(f"{name} stays over {MAX_BYTES} bytes even with 64 colours")


def settled(locator, timeout: float = 60) -> bytes:
    """A screenshot of ``locator`` once two taken half a second apart are the same (a view finished drawing)."""
    end = time.monotonic() + timeout
    last = locator.screenshot()
    while time.monotonic() < end:
        time.sleep(0.5)
        shot = locator.screenshot()
        if shot == last:
            return shot
        last = shot
    raise TimeoutError(f"{locator} kept changing for {timeout} s")


def wait_drawn(lab_page: LabPage, css: str, pixels: int, message: str):
    """Wait until the element matching ``css`` has more than ``pixels`` non-background pixels."""
    lab_page.wait_until(lambda: element_pixels(lab_page.widget(css)) > pixels, timeout=120, message=message)


def take(lab_page: LabPage):
    page = lab_page.page
    run = lambda command: page.evaluate(f"() => window.jupyterapp.commands.execute('notebook:{command}')")  # noqa: E731
    lab_page.open("widgets.ipynb")
    run("run-cell-and-select-next")  # the monitor
    run("run-cell-and-select-next")  # training in the background: the kernel is free, the monitor live
    lab_page.wait_for_output("TRAINING STARTED", timeout=300)
    epoch = lambda: int(re.match(r"epoch (\d+)", lab_page.text(".cryonb-monitor-epoch")).group(1))  # noqa: E731
    lab_page.wait_until(lambda: epoch() >= 3, timeout=300, message="three epochs on the monitor")
    save_png(lab_page.widget(".cryonb-monitor").screenshot(), "training_monitor.png")

    lab_page.wait_until(lambda: lab_page.text(".cryonb-monitor-state") == "idle", timeout=600, message="training done")
    run("run-all-below")
    lab_page.wait_for_output("ALL SHOWN", timeout=900)
    wait_drawn(lab_page, ".cryonb-explorer .bk-Canvas", 5000, "the latent scatter drawn")
    save_png(lab_page.widget(".cryonb-gallery").screenshot(), "particle_gallery.png")

    volume = page.locator(".jp-OutputArea-output .cryonb-volume-viewer").first
    volume.scroll_into_view_if_needed()
    lab_page.wait_until(lambda: element_pixels(volume.locator("canvas")) > 3000, timeout=120, message="the map drawn")
    save_png(settled(volume), "volume_viewer.png")

    player = lab_page.widget(".cryonb-trajectory-player")
    player.scroll_into_view_if_needed()
    lab_page.wait_until(lambda: element_pixels(player.locator("canvas")) > 3000, timeout=120, message="the frame drawn")
    save_png(settled(player), "trajectory_player.png")


# The explorer's tools: the same data and model, trained in the foreground; each tool is set up in
# the kernel (as a notebook would), its panel opened and its buttons clicked in the browser.
TOOL_CELLS = [
    CELLS[0].rsplit("\ntrainer", 1)[0] + """
trainer.fit(12, progress=False)
run = Run.from_trainer(trainer)
explorer = LatentExplorer(run, coords="umap", color="cluster", k=3)
explorer.select_clusters([0])
print("EXPLORER SHOWN")
explorer""",
    # The top fifth of ||z||, selected through the histogram's range.
    """\
high = float(np.quantile(explorer.values_of("norm"), 0.8))
explorer._range_slider.value = (high, explorer._range_slider.max)
explorer.select_range("norm", high)
print("STEP RANGE")""",
    # Named regions: the high-||z|| particles, a cluster, and where they meet.
    """\
explorer.store_region("high norm")
explorer.select_clusters([1])
explorer.store_region("state B")
explorer.combine_regions("B, high norm", "intersection", ["state B", "high norm"], show=False)
explorer.select(np.zeros(0, int))
print("STEP REGIONS")""",
    'explorer.show_regions([])\nprint("STEP HIDDEN")',
    'explorer.select_clusters([0])\nprint("STEP CLUSTER")',
]


def clip_between(page, top, bottom, margin: int = 6) -> bytes:
    """A screenshot of the page from ``top``'s upper edge to ``bottom``'s lower edge, as wide as ``top``
    (the explorer with one tool panel open, without the rows below it)."""
    top.evaluate("(e) => e.scrollIntoView({block: 'start'})")
    page.wait_for_timeout(1500)  # the kernel's last change reaches the plot
    a, b = top.bounding_box(), bottom.bounding_box()
    clip = {"x": a["x"] - margin, "y": a["y"] - margin, "width": a["width"] + 2 * margin,
            "height": b["y"] + b["height"] - a["y"] + 2 * margin}
    last = page.screenshot(clip=clip)
    for _ in range(60):  # until it stops changing: the plot and images finished drawing
        page.wait_for_timeout(500)
        shot = page.screenshot(clip=clip)
        if shot == last:
            return shot
        last = shot
    raise TimeoutError("the explorer kept changing")


def open_tool(lab_page: LabPage, title: str, css: str | None = None):
    """Open (or close) the explorer's tool panel ``title`` (an accordion section); its content's locator."""
    lab_page.page.locator(".jp-OutputArea-output .cryonb-explorer-tools").get_by_text(title, exact=True).click()
    return None if css is None else lab_page.widget(css)


def run_cell(lab_page: LabPage, index: int, sentinel: str, timeout: float = 120):
    """Run the notebook's cell ``index`` (the kernel's side of a step) and wait for it to print ``sentinel``.

    Cells rather than kernel requests from the page (``LabPage.execute``): under load, such a
    request's reply was lost now and then ("Resulting promise was garbage collected"). By index:
    a click in an output makes its cell the active one."""
    lab_page.page.evaluate("""async (index) => {
        const notebook = window.jupyterapp.shell.currentWidget.content;
        notebook.activeCellIndex = index;
        await window.jupyterapp.commands.execute('notebook:run-cell');
    }""", index)
    lab_page.wait_for_output(sentinel, timeout=timeout)


def take_tools(lab_page: LabPage):
    page = lab_page.page
    page.set_viewport_size({"width": 1400, "height": 1800})  # the explorer and an open panel at once
    lab_page.open("tools.ipynb")
    run_cell(lab_page, 0, "EXPLORER SHOWN", timeout=1200)
    explorer = lab_page.widget(".cryonb-explorer")
    wait_drawn(lab_page, ".cryonb-explorer .bk-Canvas", 5000, "the latent scatter drawn")
    save_png(clip_between(page, explorer, lab_page.widget(".cryonb-explorer-tools")), "latent_explorer.png")

    # Select by value: the particles with the largest ||z|| (the top fifth) replace the selection.
    run_cell(lab_page, 1, "STEP RANGE")
    panel = open_tool(lab_page, "Select by value (histogram)", ".cryonb-explorer-range")
    save_png(clip_between(page, explorer, panel), "explorer_histogram.png")
    open_tool(lab_page, "Select by value (histogram)")  # closed again

    # Named regions: a cluster and the high-||z|| particles kept side by side, each drawn as a halo.
    run_cell(lab_page, 2, "STEP REGIONS")
    panel = open_tool(lab_page, "Regions", ".cryonb-explorer-regions")
    lab_page.wait_until(lambda: panel.locator(".cryonb-explorer-region").count() == 3, message="three regions listed")
    save_png(clip_between(page, explorer, panel), "explorer_regions.png")
    open_tool(lab_page, "Regions")

    # Trajectory creator: the k-means centres as anchors, the shortest tour, a graph path.
    run_cell(lab_page, 3, "STEP HIDDEN")
    panel = open_tool(lab_page, "Trajectory", ".cryonb-explorer-trajectory")
    lab_page.click_button("k-means centres")
    page.locator(".jp-OutputArea-output .cryonb-explorer-trajectory-order").get_by_text("shortest", exact=True).click()
    lab_page.click_button("Make path")
    lab_page.wait_until(lambda: "latents through" in lab_page.text(".cryonb-explorer-trajectory-message"), timeout=120,
                        message="the path made")
    save_png(clip_between(page, explorer, panel), "explorer_trajectory.png")
    open_tool(lab_page, "Trajectory")

    # More views: the pair grid of the latent dimensions and the 3-D view of PC1-3.
    run_cell(lab_page, 4, "STEP CLUSTER")
    views = open_tool(lab_page, "More views: pair grid, 3-D", ".cryonb-explorer-views")
    lab_page.click_button("Pair grid")
    grid = lab_page.widget(".cryonb-pairgrid")
    lab_page.wait_until(lambda: element_pixels(grid) > 5000, timeout=120, message="the pair grid drawn")
    grid.scroll_into_view_if_needed()
    save_png(settled(grid), "pair_grid.png")
    lab_page.click_button("3-D (PC1-3)")
    three = lab_page.widget(".cryonb-scatter3d")
    lab_page.wait_until(lambda: element_pixels(three) > 5000, timeout=120, message="the 3-D view drawn")
    views.scroll_into_view_if_needed()
    save_png(settled(views), "scatter_3d.png")


# Two states of the hinge phantom side by side, and a tilted section of one: no model needed.
MAP_CELLS = [
    """\
from cryonb.core.phantoms import hinge_states
from cryonb.widgets import MapCompare, SliceViewer

maps = hinge_states(48, n_states=6)[0].numpy()
MapCompare(maps[0], maps[-1], 4.0, labels=("state 0 (open)", "state 5 (closed)"))""",
    'SliceViewer(maps[0], 4.0, size=280).set(axis="z", tilt=(25, 0), offset=2)',
    "print('ALL SHOWN')",
]


def take_maps(lab_page: LabPage):
    page = lab_page.page
    lab_page.open("maps.ipynb")
    lab_page.run_all()
    lab_page.wait_for_output("ALL SHOWN", timeout=300)
    compare = page.locator(".jp-OutputArea-output .cryonb-map-compare").first
    canvases = compare.locator("canvas")
    lab_page.wait_until(lambda: canvases.count() == 2 and all(element_pixels(canvases.nth(i)) > 3000 for i in range(2)),
                        timeout=120, message="both maps drawn")
    # A turn of the left view, which the right one follows.
    box = canvases.nth(0).bounding_box()
    page.mouse.move(box["x"] + 0.35 * box["width"], box["y"] + 0.5 * box["height"])
    page.mouse.down()
    page.mouse.move(box["x"] + 0.6 * box["width"], box["y"] + 0.4 * box["height"], steps=10)
    page.mouse.up()
    page.mouse.move(0, 0)
    save_png(settled(compare), "map_compare.png")
    slices = lab_page.widget(".cryonb-slice-viewer")
    slices.scroll_into_view_if_needed()
    save_png(settled(slices), "slice_viewer.png")


def hinge_strip():
    """The hinge phantom's motion in six frames, rendered by cryonb.core.movies (no browser needed)."""
    from cryonb.core.movies import write_strip
    from cryonb.core.phantoms import hinge_states

    maps, _ = hinge_states(48, n_states=6)
    with tempfile.TemporaryDirectory() as tmp:
        save_png(write_strip(maps.numpy(), Path(tmp) / "strip.png", size=160).read_bytes(), "hinge_strip.png", crop=False)


def main():
    reason = missing_requirements()
    if reason:
        sys.exit(f"cannot take the pictures: {reason}")
    from playwright.sync_api import sync_playwright

    if sys.argv[1:] == ["maps"]:
        with tempfile.TemporaryDirectory() as tmp, sync_playwright() as playwright:
            shoot(playwright, Path(tmp), take_maps, "maps.ipynb", MAP_CELLS)
        return
    if sys.argv[1:] != ["tools"]:
        hinge_strip()
        with tempfile.TemporaryDirectory() as tmp, sync_playwright() as playwright:
            shoot(playwright, Path(tmp), take, "widgets.ipynb", CELLS)
        # The tools as `python docs/screenshots.py tools` runs them: a process, a JupyterLab and a
        # browser of their own.
        subprocess.run([sys.executable, __file__, "tools"], check=True)
        subprocess.run([sys.executable, __file__, "maps"], check=True)
        return
    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as playwright:
        shoot(playwright, Path(tmp), take_tools, "tools.ipynb", TOOL_CELLS)


def shoot(playwright, tmp: Path, scenario, name: str, cells: list[str]):
    """Run ``scenario`` on notebook ``name`` of ``cells`` in a JupyterLab and a Chromium of its own."""
    no_news = tmp / "state" / "settings" / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
    (tmp / "root").mkdir()
    write_notebook(tmp / "root" / name, *cells)
    no_news.parent.mkdir(parents=True)  # no "notified about Jupyter news?" toast over the views
    no_news.write_text('{"fetchNews": "false"}')
    with JupyterLab(tmp / "root", tmp / "state") as lab:
        context = launch_chromium(playwright, tmp / "profile")
        context.set_default_timeout(60_000)
        lab_page = LabPage(context.new_page(), lab)
        try:
            scenario(lab_page)
        finally:
            lab_page.shutdown_kernel()
            context.close()


if __name__ == "__main__":
    main()
