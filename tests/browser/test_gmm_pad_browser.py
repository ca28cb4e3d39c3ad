"""The live latent pad in JupyterLab: moving or dragging the mouse over the latent scatter redraws
2,000 Gaussians in NGL at least 10 times a second.

The rate is counted in the browser: every drawing the NGL view receives appends its
``performance.now()`` to ``window.cryonbGaussianUpdates`` (cryonb.widgets.gmm_scripts); the test
counts those whose time falls inside the mouse gesture, over the gesture's browser time.
Acceptance: at least 10 drawings a second, both while the pointer moves and while it drags. Measured
12-17 a second in headless Chromium (software WebGL) on a shared two-core machine (load average 2-9);
a real Playwright move and drag check that the Gaussians follow the mouse at all.
"""

import io

import numpy as np
import pytest
from harness import element_pixels
from PIL import Image

pytestmark = pytest.mark.slow

N_GAUSSIANS = 2000
MIN_RATE = 10.0  # drawings per second the pad must deliver (the requirement)

PAD = f"""\
from types import SimpleNamespace
import numpy as np, torch
from cryonb.core.gmm import GaussianDecoder, GaussianMixture
from cryonb.widgets.gmm_view import GaussianView

torch.set_num_threads(1)
g = torch.Generator().manual_seed(0)
n = {N_GAUSSIANS}
neutral = GaussianMixture(torch.randn(n, 3, generator=g) * 6, torch.ones(n), torch.full((n,), 1.0), 48, 2.0)
decoder = GaussianDecoder(neutral, zdim=2, width=64, depth=2, mode="position")
with torch.no_grad():
    decoder.net[-1].weight.normal_(0, 0.5, generator=g)
z = np.random.default_rng(0).normal(size=(3000, 2)).astype(np.float32)
pad = GaussianView(SimpleNamespace(model=SimpleNamespace(decoder=decoder), z=z, apix=2.0, run_dir=None))
pad"""


def drawings(page) -> list[float]:
    return page.evaluate("() => (window.cryonbGaussianUpdates || []).slice()")


# Pointer events at 60 Hz over the pad for `seconds` (buttons pressed if `drag`), dispatched in the page:
# a real mouse delivers about one move per frame; Playwright's own moves wait for a round trip each,
# which on a loaded machine caps them below the rate under test. Returns the gesture's browser times.
GESTURE_JS = """async ([seconds, drag]) => {
  const img = document.querySelector('.jp-OutputArea-output img.widget-image');
  const r = img.getBoundingClientRect();
  const at = (i) => ({clientX: r.left + r.width * (0.5 + 0.3 * Math.cos(i / 15)),
                      clientY: r.top + r.height * (0.5 + 0.3 * Math.sin(i / 15)),
                      bubbles: true, pointerType: 'mouse', buttons: drag ? 1 : 0});
  if (drag) img.dispatchEvent(new PointerEvent('pointerdown', at(0)));
  const start = performance.now();
  let events = 0;
  await new Promise((done) => {
    const timer = setInterval(() => {
      img.dispatchEvent(new PointerEvent('pointermove', at(++events)));
      if (performance.now() - start >= seconds * 1000) { clearInterval(timer); done(); }
    }, 16);
  });
  if (drag) img.dispatchEvent(new PointerEvent('pointerup', at(events)));
  return {start, end: performance.now(), events};
}"""


def gesture(page, drag: bool, seconds: float = 4.0) -> tuple[int, int, float]:
    """Pointer events sent, drawings the NGL view received meanwhile, and the gesture's duration (s)."""
    times = page.evaluate(GESTURE_JS, [seconds, drag])
    received = [t for t in drawings(page) if times["start"] < t <= times["end"]]
    return times["events"], len(received), (times["end"] - times["start"]) / 1000


def screenshot(locator) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(locator.screenshot())).convert("RGB"), dtype=int)


def test_the_pad_redraws_2000_gaussians_at_least_ten_times_a_second(lab, lab_page):
    lab_page.run_notebook("gmm_pad.ipynb", PAD, "print('PAD SHOWN')", until="PAD SHOWN", timeout=120)
    page = lab_page.page

    scatter = lab_page.widget("img.widget-image")
    ngl = lab_page.widget(".ui-resizable canvas")
    lab_page.wait_until(lambda: element_pixels(scatter) > 500, message="the latent scatter drawn")
    lab_page.wait_until(lambda: element_pixels(ngl) > 500, timeout=60, message="the Gaussians drawn in NGL")
    assert len(drawings(page)) >= 1
    box = scatter.bounding_box()

    # moving to a corner of the pad moves the Gaussians on screen
    before = screenshot(ngl)
    page.mouse.move(box["x"] + 0.9 * box["width"], box["y"] + 0.1 * box["height"])
    lab_page.wait_until(lambda: (np.abs(screenshot(ngl) - before).max(-1) > 16).sum() > 200, message="the Gaussians moved")
    assert "z = (" in lab_page.execute("print(pad.label.value)")
    assert int(lab_page.execute("print(pad.pad.moves)")) >= 1

    # a real drag with Playwright's mouse moves them too
    moves = int(lab_page.execute("print(pad.pad.moves)"))
    page.mouse.down()
    page.mouse.move(box["x"] + 0.2 * box["width"], box["y"] + 0.8 * box["height"], steps=5)
    page.mouse.up()
    lab_page.wait_until(lambda: int(lab_page.execute("print(pad.pad.moves)")) > moves, message="the drag received")

    rates = {}
    for drag in (False, True):
        events, count, seconds = gesture(page, drag)
        rates["drag" if drag else "move"] = count / seconds
        print(f"{'drag' if drag else 'move'}: {events} pointer events, {count} drawings of {N_GAUSSIANS} Gaussians "
              f"in {seconds:.2f} s = {count / seconds:.1f} per second")
    assert rates["move"] >= MIN_RATE, rates
    assert rates["drag"] >= MIN_RATE, rates
