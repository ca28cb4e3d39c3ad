"""MapCompare in JupyterLab: rotating one NGL view turns the other; the cameras are read from the two
NGL stages in the page."""

import json

import numpy as np
import pytest
from harness import drag, element_pixels, write_notebook

pytestmark = [pytest.mark.slow, pytest.mark.warm_kernel]

CANVASES = ".jp-OutputArea-output .cryonb-map-compare .ui-resizable canvas"

COMPARE = """\
import numpy as np
from cryonb.widgets.map_compare import MapCompare
from cryonb.widgets.volume_viewer import _call_ngl

z, y, x = np.mgrid[-16:16, -16:16, -16:16]
blob = lambda cx, cy, cz, s: np.exp(-((x - cx)**2 + (y - cy)**2 + (z - cz)**2) / (2 * s**2))
a = (blob(0, 0, 0, 6) + blob(9, 0, 0, 3)).astype(np.float32)   # a body with an arm along x
b = (blob(0, 0, 0, 6) + blob(0, 9, 0, 3)).astype(np.float32)   # the arm along y
compare = MapCompare(a, b, 4.0, labels=("arm x", "arm y"))
compare"""

# Each view hands its NGL stage to the page (nglview's executeCode runs with the view as `this`).
EXPOSE = """\
for name, view in zip("ab", compare.views):
    _call_ngl(view, "executeCode", f"(window.cryonbStages = window.cryonbStages || {{}})['{name}'] = this.stage")
print('STAGES SENT')"""

ORIENTATIONS_JS = """() => {
  const s = window.cryonbStages || {};
  return ['a', 'b'].map((k) => s[k] ? Array.from(s[k].viewerControls.getOrientation().elements) : null);
}"""


def orientations(page):
    return [None if o is None else np.array(o) for o in page.evaluate(ORIENTATIONS_JS)]


def linked(page) -> bool:
    a, b = orientations(page)
    return a is not None and b is not None and np.allclose(a, b, rtol=1e-4, atol=1e-4)


def turned(page, before: np.ndarray, which: int) -> bool:
    return not np.allclose(orientations(page)[which], before, rtol=1e-3, atol=1e-3)


def test_rotating_one_view_turns_the_other(lab, lab_page):
    write_notebook(lab.root / "compare.ipynb", COMPARE, EXPOSE)
    page = lab_page.page
    lab_page.open("compare.ipynb")
    lab_page.run_all()
    lab_page.wait_for_output("STAGES SENT")
    canvases = page.locator(CANVASES)
    lab_page.wait_until(lambda: canvases.count() == 2, message="two NGL views")
    for i in range(2):
        lab_page.wait_until(lambda i=i: element_pixels(canvases.nth(i)) > 200, message=f"map {i} drawn")
    lab_page.wait_until(lambda: all(o is not None for o in orientations(page)), message="both stages in the page")
    start = orientations(page)[0]

    # Drag across view A: its camera turns, and view B's camera becomes the same.
    drag(page, canvases.nth(0), (0.3, 0.5), (0.7, 0.35))
    lab_page.wait_until(lambda: turned(page, start, 0), message="view A rotated")
    lab_page.wait_until(lambda: turned(page, start, 1) and linked(page), message="view B following view A")

    # Then the other way round: drag B, and A follows; the kernel holds the same camera for both.
    second = orientations(page)[1]
    drag(page, canvases.nth(1), (0.5, 0.3), (0.45, 0.75))
    lab_page.wait_until(lambda: turned(page, second, 1), message="view B rotated")
    lab_page.wait_until(lambda: turned(page, second, 0) and linked(page), message="view A following view B")
    final = orientations(page)[0]

    def kernel_cameras():
        return lab_page.execute("import json; print(json.dumps([v._camera_orientation for v in compare.views]))")

    lab_page.wait_until(lambda: all(np.allclose(c, final, rtol=1e-4, atol=1e-4) for c in json.loads(kernel_cameras())),
                        message="the kernel's cameras matching the page")
    # Still together once everything has settled (no echo between the two views turning them on).
    assert linked(page) and np.allclose(orientations(page)[0], final, rtol=1e-4, atol=1e-4)
