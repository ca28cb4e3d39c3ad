"""The explorer's compare in JupyterLab: pin a selection, select others, and both selections' maps are
drawn side by side, their cameras linked."""

import numpy as np
import pytest
from harness import drag, element_pixels, write_notebook
from test_explore_browser import NOTEBOOK
from test_map_compare_browser import EXPOSE, linked, orientations, turned

pytestmark = [pytest.mark.slow, pytest.mark.warm_kernel]
pytest.importorskip("holoviews")
pytest.importorskip("nglview")

CANVASES = ".jp-OutputArea-output .cryonb-map-compare .ui-resizable canvas"


def test_pin_a_selection_then_compare(lab, lab_page):
    write_notebook(lab.root / "explore_compare.ipynb", *NOTEBOOK)
    page = lab_page.page
    lab_page.open("explore_compare.ipynb")
    lab_page.run_all()
    lab_page.wait_for_output("EXPLORE SHOWN", timeout=120)
    assert lab_page.button("Compare: pin A").is_disabled()  # nothing selected yet

    lab_page.execute("import numpy as np; explorer.select(np.arange(10))")
    lab_page.wait_until(lambda: not lab_page.button("Compare: pin A").is_disabled(), message="the button enabled")
    lab_page.click_button("Compare: pin A")
    lab_page.execute("explorer.select(np.arange(30, 60))")
    lab_page.wait_until(lambda: lab_page.button("Compare with A (10)").count() == 1, message="A pinned")
    lab_page.click_button("Compare with A (10)")

    canvases = page.locator(CANVASES)
    lab_page.wait_until(lambda: canvases.count() == 2, timeout=60, message="two NGL views")
    # Both drawn: the views are made with the explorer (NGL views first made in a button's callback stay blank).
    for i in range(2):
        lab_page.wait_until(lambda i=i: element_pixels(canvases.nth(i)) > 100, message=f"map {i} drawn")
    # The maps are those of the two selections' mean latents.
    means = lab_page.execute(
        "c = view.comparison; print(np.allclose(c.maps, run.volumes(np.stack([run.z[:10].mean(0), "
        "run.z[30:60].mean(0)])), atol=1e-5), c.labels)")
    assert means.startswith("True") and "A: mean of 10" in means and "B: mean of 30" in means

    exposed = lab_page.execute("from cryonb.widgets.volume_viewer import _call_ngl\n"
                               + EXPOSE.replace("compare.views", "view.comparison.views"))
    assert "STAGES SENT" in exposed, exposed
    lab_page.wait_until(lambda: all(o is not None for o in orientations(page)), message="both stages in the page")
    start = orientations(page)[1]
    drag(page, canvases.nth(1), (0.3, 0.5), (0.7, 0.4))
    lab_page.wait_until(lambda: turned(page, start, 1), message="view B rotated")
    lab_page.wait_until(lambda: turned(page, start, 0) and linked(page), message="view A following view B")
    assert np.allclose(*orientations(page), atol=1e-4)
