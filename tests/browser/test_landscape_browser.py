"""LandscapeView in JupyterLab: both plots drawn, and choosing a state draws its map in NGL."""

import pytest
from harness import element_pixels

pytestmark = [pytest.mark.slow, pytest.mark.warm_kernel]

LANDSCAPE = """\
import numpy as np, torch
from cryonb.core.analysis.landscape import analyze_landscape
from cryonb.core.phantoms import hinge_states
from cryonb.widgets.landscape import LandscapeView

torch.set_num_threads(1)

class HingeRun:  # a run whose map for z is the hinge state nearest z[0]
    maps = hinge_states(24, 10)[0].numpy()
    z = np.column_stack([np.random.default_rng(0).uniform(0, 9, 300), np.random.default_rng(1).normal(size=300)]).astype(np.float32)
    apix, box_size, zdim, particles = 8.0, 24, 2, None
    def volumes(self, z):
        return self.maps[np.clip(np.round(np.asarray(z)[:, 0]), 0, 9).astype(int)]

run = HingeRun()
result = analyze_landscape(run, 80, k=3, n_components=3, progress=False, regression_kw={"width": 32, "epochs": 30})
view = LandscapeView(result, run)
view"""


def test_landscape_view_draws_its_plots_and_a_state_map(lab, lab_page):
    lab_page.run_notebook("landscape.ipynb", LANDSCAPE, "print('LANDSCAPE SHOWN')", until="LANDSCAPE SHOWN", timeout=120)

    canvases = lab_page.page.locator(".jp-OutputArea-output .bk-Canvas")
    lab_page.wait_until(lambda: canvases.count() >= 2, message="two Bokeh plots")
    for i in range(2):
        lab_page.wait_until(lambda i=i: element_pixels(canvases.nth(i)) > 500, message=f"plot {i} drawn")

    lab_page.execute("view.state.value = 2")
    ngl = lab_page.widget(".ui-resizable canvas")
    lab_page.wait_until(lambda: element_pixels(ngl) > 200, timeout=60, message="the state's map drawn in NGL")
    assert "state 2" in lab_page.execute("print(view.caption.value)")
