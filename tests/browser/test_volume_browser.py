"""Volumes in JupyterLab: NGL draws a real map, its sliders redraw it, and Play steps through a trajectory."""

import io
import time

import numpy as np
import pytest
from harness import element_pixels, write_notebook
from PIL import Image

pytestmark = [pytest.mark.slow, pytest.mark.warm_kernel]

NGL_CANVAS = ".ui-resizable canvas"  # the NGL stage (a bare `canvas` would also match other views)


def ngl_canvas(lab_page):
    return lab_page.widget(NGL_CANVAS)


def canvas_image(lab_page) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(ngl_canvas(lab_page).screenshot())).convert("RGB"), dtype=int)


def drawn(image: np.ndarray, tolerance: int = 16) -> int:
    """Pixels that differ from the most common colour (the background)."""
    colours, counts = np.unique(image.reshape(-1, 3), axis=0, return_counts=True)
    return int((np.abs(image - colours[counts.argmax()]).max(-1) > tolerance).sum())


def changed_pixels(a: np.ndarray, b: np.ndarray, tolerance: int = 16) -> int:
    return int((np.abs(a - b).max(-1) > tolerance).sum())


def settled_canvas(lab_page) -> np.ndarray:
    """The NGL canvas once two screenshots half a second apart agree."""
    images = [canvas_image(lab_page)]
    while True:
        time.sleep(0.5)
        images.append(canvas_image(lab_page))
        if changed_pixels(*images[-2:]) == 0:
            return images[-1]
        assert len(images) < 40, "the NGL canvas never stopped changing"


def wait_for_pixels(lab_page, condition, message: str) -> int:
    """Poll the NGL canvas' drawn pixels until ``condition(pixels)``; returns them."""
    seen = []
    lab_page.wait_until(lambda: condition(seen.append(element_pixels(ngl_canvas(lab_page))) or seen[-1]),
                        message=f"{message} (last pixel counts: {seen[-5:]})")
    return seen[-1]


def test_volume_viewer_draws_a_real_map(lab, lab_page, real_data):
    path = real_data / "relion" / "ref_model.mrc"
    write_notebook(
        lab.root / "volume.ipynb",
        f"""\
from cryonb.core.io.mrc import read_map
from cryonb.widgets.volume_viewer import VolumeViewer

volume, apix = read_map({str(path)!r})
viewer = VolumeViewer().show_map(volume, apix)
viewer""",
        "print('VIEWER SHOWN')",
    )
    lab_page.open("volume.ipynb")
    lab_page.run_all()
    lab_page.wait_for_output("VIEWER SHOWN")

    # β-galactosidase at 2 σ fills a good part of the 100³ box: thousands of shaded pixels.
    wait_for_pixels(lab_page, lambda n: n > 5000, "the map drawn")
    at_2 = settled_canvas(lab_page)
    area_2 = drawn(at_2)

    # A higher threshold keeps only the dense core: the drawn surface shrinks.
    lab_page.execute("viewer.threshold.value = 5.0")
    wait_for_pixels(lab_page, lambda n: 0 < n < 0.8 * area_2, "a smaller surface at 5 σ")

    lab_page.execute("viewer.threshold.value = 2.0")
    lab_page.wait_until(lambda: changed_pixels(canvas_image(lab_page), at_2) == 0, message="the 2 σ surface again")

    # A second map of the same box replaces the first under the same camera: the map turned a
    # quarter turn about z (the line of sight) covers about the same area, elsewhere.
    lab_page.execute("import numpy as np; viewer.show_map(np.rot90(volume, axes=(1, 2)).copy(), apix)")
    lab_page.wait_until(lambda: changed_pixels(canvas_image(lab_page), at_2) > 0.2 * area_2, message="second map")
    turned = settled_canvas(lab_page)
    assert drawn(turned) == pytest.approx(area_2, rel=0.15)


TINY_RUN = """\
import numpy as np, torch
from cryonb.core.run import Run
from cryonb.core.simulate import simulate
from cryonb.core.training import TrainConfig, Trainer
from cryonb.widgets.trajectory_player import TrajectoryPlayer

torch.set_num_threads(1)
particles = simulate("hinge", 64, D=16, apix=8.0, snr=1.0, seed=3, progress=False).particles
config = TrainConfig(zdim=2, enc_width=32, enc_depth=2, dec_width=32, dec_depth=2, batch_size=16)
run = Run.from_trainer(Trainer(particles, config).fit(1, progress=False))
zs = np.linspace([-3, -3], [3, 3], 6)
player = TrajectoryPlayer(run, zs, interval=800)
player"""


def test_trajectory_player_plays(lab, lab_page):
    lab_page.run_notebook("trajectory.ipynb", TINY_RUN, "print('PLAYER SHOWN')", until="PLAYER SHOWN", timeout=120)

    def frame() -> int:
        return int(lab_page.execute("print(player.frame)"))

    wait_for_pixels(lab_page, lambda n: n > 200, "frame 0 drawn")
    first = settled_canvas(lab_page)  # every frame loaded, all but frame 0 hidden
    assert frame() == 0

    lab_page.widget(".cryonb-trajectory-play button:has(i.fa-play)").click()
    lab_page.wait_until(lambda: frame() > 0, message="player.frame advancing")
    lab_page.wait_until(lambda: changed_pixels(canvas_image(lab_page), first) > 100, message="another frame drawn")
    lab_page.wait_until(lambda: frame() == 5, message="Play reaching the last frame")
    last = settled_canvas(lab_page)
    assert changed_pixels(last, first) > 100

    # What is drawn follows the frame: back to frame 0 redraws the first picture, and again the last.
    lab_page.execute("player.frame = 0")
    lab_page.wait_until(lambda: changed_pixels(canvas_image(lab_page), first) == 0, message="frame 0 drawn again")
    lab_page.execute("player.frame = 5")
    lab_page.wait_until(lambda: changed_pixels(canvas_image(lab_page), last) == 0, message="frame 5 drawn again")
