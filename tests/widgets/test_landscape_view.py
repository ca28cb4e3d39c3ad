"""LandscapeView without a browser: its plots hold the landscape's arrays, and the map it shows is the one asked for."""

import importlib.util

import numpy as np
import pytest

if importlib.util.find_spec("nglview") is None:
    pytest.skip("nglview is not installed (pip install 'cryonb[widgets]')", allow_module_level=True)

from test_volume_viewer import WIDGET_MIME, loaded_maps  # noqa: E402

from cryonb.core.analysis.landscape import analyze_landscape  # noqa: E402
from cryonb.core.errors import InputError  # noqa: E402
from cryonb.core.phantoms import hinge_states  # noqa: E402
from cryonb.widgets.landscape import LandscapeView  # noqa: E402


class HingeRun:
    """A stand-in run whose map for z is the hinge state nearest z[0] (the interface the view uses)."""

    def __init__(self):
        self.maps = hinge_states(16, 10)[0].numpy()
        rng = np.random.default_rng(0)
        self.z = np.column_stack([rng.uniform(0, 9, 150), rng.normal(size=150)]).astype(np.float32)
        self.apix, self.box_size, self.zdim, self.particles = 8.0, 16, 2, None

    def volumes(self, z):
        return self.maps[np.clip(np.round(np.asarray(z)[:, 0]), 0, 9).astype(int)]


@pytest.fixture(scope="module")
def landscape():
    run = HingeRun()
    result = analyze_landscape(run, 60, k=3, n_components=3, box=12, progress=False,
                               regression_kw={"width": 32, "depth": 2, "epochs": 20})
    return run, result


def test_plots_hold_the_landscape_and_the_pc_menu_recolours(landscape):
    run, result = landscape
    view = LandscapeView(result, run)
    latent, maps = view.plots
    np.testing.assert_allclose(view._latent_pipe.data["value"], result.particle_coords[:, 0])
    view.pc.value = 2
    np.testing.assert_allclose(view._latent_pipe.data["value"], result.particle_coords[:, 2])
    points = view.map_points
    np.testing.assert_allclose(points.dimension_values("x"), result.coords[:, 0])
    assert list(points.dimension_values("state")) == [str(s) for s in result.labels]
    assert WIDGET_MIME in view._repr_mimebundle_()


def test_a_state_or_a_clicked_map_is_shown_at_the_run_s_box(landscape):
    run, result = landscape
    view = LandscapeView(result, run)
    view.state.value = 1
    sample = result.representative[1]
    np.testing.assert_array_equal(view.viewer.maps[0], run.volumes(result.z[sample : sample + 1])[0])
    assert view.shown == ("state", 1) and "state 1" in view.caption.value and view.viewer.apix == 8.0
    target = 7
    assert view.pick(*result.coords[target, :2]) == target and view.shown == ("map", target)
    assert len(loaded_maps(view.viewer.view)) >= 2
    np.testing.assert_array_equal(view._picked_pipe.data, result.coords[target : target + 1, :2])


def test_without_the_run_the_landscape_s_own_model_is_shown(landscape):
    _, result = landscape
    view = LandscapeView(result)
    view.show_state(0)
    assert view.viewer.maps.shape == (1, 12, 12, 12) and view.viewer.apix == pytest.approx(result.apix)
    with pytest.raises(InputError, match="expected"):
        LandscapeView(result, coords=np.zeros((3, 2)))
