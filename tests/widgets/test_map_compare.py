"""MapCompare without a browser: two maps, linked cameras and sliders, the explorer's and player's compare.

The browser side (one view rotated, the other following) is in tests/browser/test_map_compare_browser.py.
"""

import base64
import importlib.util
import io

import numpy as np
import pytest

if importlib.util.find_spec("nglview") is None:
    pytest.skip("nglview is not installed (pip install 'cryonb[widgets]')", allow_module_level=True)

from mrcfile.mrcinterpreter import MrcInterpreter  # noqa: E402

from cryonb.core.errors import InputError  # noqa: E402
from cryonb.core.run import Run  # noqa: E402
from cryonb.core.training import TrainConfig  # noqa: E402
from cryonb.widgets.map_compare import MapCompare  # noqa: E402
from cryonb.widgets.trajectory_player import TrajectoryPlayer  # noqa: E402

TURNED = [0.0, -1.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, -40.0, 1.0]


def queued(view) -> list[dict]:
    return [callback._ngl_msg for callback in view._callbacks_before_loaded]


def loaded(view) -> list[np.ndarray]:
    maps = []
    for m in queued(view):
        if m["methodName"] == "loadFile":
            with MrcInterpreter(io.BytesIO(base64.b64decode(m["args"][0]["data"]))) as mrc:
                maps.append(mrc.data.copy())
    return maps


def tiny_run(n: int = 40) -> Run:
    config = TrainConfig(zdim=2, enc_width=32, enc_depth=2, dec_width=32, dec_depth=2, residual=False, encoding="geometric")
    model = config.build_model(16, n_particles=1).eval()
    z = np.random.default_rng(0).standard_normal((n, 2)).astype(np.float32)
    return Run(model, scale=1.0, apix=8.0, z=z)


@pytest.fixture
def maps():
    rng = np.random.default_rng(0)
    return rng.standard_normal((12, 12, 12)).astype(np.float32), rng.standard_normal((12, 12, 12)).astype(np.float32)


def test_each_view_loads_its_map_and_the_sliders_act_on_both(maps):
    compare = MapCompare(*maps, 2.0, labels=("open", "closed"), threshold=1.5)
    a, b = compare.views
    np.testing.assert_array_equal(loaded(a)[0], maps[0])
    np.testing.assert_array_equal(loaded(b)[0], maps[1])
    np.testing.assert_array_equal(compare.maps, np.stack(maps))
    compare.threshold.value = 3.0
    compare.opacity.value = 0.5
    for view in (a, b):
        last = [m for m in queued(view) if m["methodName"] == "updateRepresentationsByName"][-1]
        assert last["kwargs"]["isolevel"] == 3.0 and last["kwargs"]["opacity"] == 0.5
    assert compare.other.level_label.value == f"level {maps[1].mean() + 3.0 * maps[1].std():.4g}"
    assert "open" in compare.widget.children[0].children[0].children[0].value


def test_cameras_are_linked_in_the_browser_and_start_together(maps):
    compare = MapCompare(*maps)
    a, b = compare.views
    # nglview's own link: each view orients the other as the pointer moves it.
    assert a._synced_model_ids == [b._model_id] and b._synced_model_ids == [a._model_id]
    # A's first camera, once it reaches the kernel, is sent to B; later ones travel in the browser only
    # (through the kernel too they would race the browser's link and pull a view back mid-drag).
    a._camera_orientation = TURNED
    a._camera_orientation = list(reversed(TURNED))
    b._camera_orientation = list(TURNED[::2] * 2)
    assert [m["args"] for m in queued(b) if m["methodName"] == "set_camera_orientation"] == [[TURNED]]
    assert not [m for m in queued(a) if m["methodName"] == "set_camera_orientation"]
    # orient() sets both, outside nglview's archive (re-sent whole, maps included, to each new page).
    compare.orient(np.eye(4))
    for view in (a, b):
        assert [m["args"] for m in queued(view) if m["methodName"] == "set_camera_orientation"][-1] == [
            list(np.eye(4).ravel())]
        assert "set_camera_orientation" not in [m["methodName"] for m in view._ngl_msg_archive]
    with pytest.raises(InputError, match="16 numbers"):
        compare.orient([1, 2, 3])


def test_from_selections_shows_the_mean_and_medoid_maps():
    run = tiny_run()
    first, second = np.arange(0, 10), np.arange(20, 35)
    compare = MapCompare.from_selections(run, first, second)
    np.testing.assert_allclose(compare.maps, run.volumes(np.stack([run.z[first].mean(0), run.z[second].mean(0)])),
                               rtol=1e-5, atol=1e-6)
    assert compare.labels == ("A: mean of 10", "B: mean of 15")
    medoid = MapCompare.from_selections(run, first, second, "medoid")
    zs = run.z[first]
    member = zs[np.linalg.norm(zs[:, None] - zs[None], axis=-1).sum(1).argmin()]
    np.testing.assert_allclose(medoid.maps[0], run.volumes(member[None])[0], rtol=1e-5, atol=1e-6)


def test_trajectory_player_compares_two_frames():
    run = tiny_run()
    player = TrajectoryPlayer(run, np.linspace([-2, -2], [2, 2], 4))
    player.frame = 2
    player.compare_button.click()
    compare = player.comparison
    assert player.compare_box.children == (compare.widget,)
    np.testing.assert_array_equal(compare.maps, player.maps[[0, 2]])
    assert compare.labels == ("frame 0", "frame 2")
    assert MapCompare.from_trajectory(player).labels == ("frame 0", "frame 3")


def test_explorer_pins_a_selection_and_compares(monkeypatch):
    from cryonb.widgets.explore import Exploration
    from cryonb.widgets.latent_explorer import LatentExplorer

    run = tiny_run()
    view = Exploration(run, LatentExplorer(run, coords="pca", color="norm", k=None))
    assert view.compare_button.disabled
    view.explorer.select(np.arange(5))
    view.compare_button.click()
    assert view.compare_button.description == "Compare with A (5)"
    view.explorer.select(np.arange(10, 30))
    view.compare_button.click()
    np.testing.assert_allclose(view.comparison.maps[1], run.volumes(run.z[10:30].mean(0, keepdims=True))[0],
                               rtol=1e-5, atol=1e-6)
    assert view.volume_box.children == (view.comparison.widget,)
    assert view.compare_button.description == "Compare: pin A"


def test_bad_input(maps):
    with pytest.raises(InputError, match="one map on each side"):
        MapCompare(np.stack(maps), maps[1])
    with pytest.raises(InputError, match="two labels"):
        MapCompare(*maps, labels=("a",))
    with pytest.raises(InputError, match="out of range"):
        MapCompare.from_trajectory(np.stack(maps), 0, 5)
