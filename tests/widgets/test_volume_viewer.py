"""VolumeViewer without a browser: what it queues for NGL (maps, surfaces, visibility) and its bad input.

Before a page displays an NGL view, nglview queues each call for the browser; the tests read that
queue. Rendering itself is checked in tests/browser/test_volume_browser.py.
"""

import base64
import importlib.metadata
import importlib.util
import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

if importlib.util.find_spec("nglview") is None:  # importing it here would come before cryonb's fix of it
    pytest.skip("nglview is not installed (pip install 'cryonb[widgets]')", allow_module_level=True)

from mrcfile.mrcinterpreter import MrcInterpreter  # noqa: E402

from cryonb.core.errors import InputError  # noqa: E402
from cryonb.core.run import Run  # noqa: E402
from cryonb.core.training import TrainConfig  # noqa: E402
from cryonb.widgets.volume_viewer import _SHIPPED_FRONTEND, VolumeViewer, mrc_bytes  # noqa: E402

WIDGET_MIME = "application/vnd.jupyter.widget-view+json"


def tiny_run() -> Run:
    """An untrained 16³ model with a 2-D latent space, 8 Å pixels."""
    config = TrainConfig(zdim=2, enc_width=32, enc_depth=2, dec_width=32, dec_depth=2, residual=False, encoding="geometric")
    model = config.build_model(16, n_particles=1).eval()
    return Run(model, scale=1.0, apix=8.0, z=None)


def queued(view) -> list[dict]:
    """The NGL calls waiting for the browser, in order."""
    return [callback._ngl_msg for callback in view._callbacks_before_loaded]


def read_mrc(data: bytes) -> tuple[np.ndarray, float, float]:
    """(map, pixel size, header rms) of MRC file bytes."""
    with MrcInterpreter(io.BytesIO(data)) as mrc:
        return mrc.data.copy(), float(mrc.voxel_size.x), float(mrc.header.rms)


def loaded_maps(view) -> list[np.ndarray]:
    """The maps of every loadFile call queued, decoded from what would go to the browser."""
    return [read_mrc(base64.b64decode(m["args"][0]["data"]))[0] for m in queued(view) if m["methodName"] == "loadFile"]


def visible(view) -> list[bool]:
    """Which components the browser would show after replaying the queued calls."""
    shown = []
    for m in queued(view):
        if m["methodName"] == "loadFile":
            shown.append(True)
        elif m["methodName"] == "removeComponent":
            shown.pop(m["args"][0])
        elif m["methodName"] == "setVisibility":
            shown[m["component_index"]] = m["args"][0]
    return shown


def surface_updates(view) -> list[tuple[int, dict]]:
    return [(m["args"][1], m["kwargs"]) for m in queued(view) if m["methodName"] == "updateRepresentationsByName"]


@pytest.fixture
def volume():
    return np.random.default_rng(0).standard_normal((12, 12, 12)).astype(np.float32)


def test_mrc_bytes_round_trip(volume):
    data, apix, rms = read_mrc(mrc_bytes(volume, 2.5))
    np.testing.assert_array_equal(data, volume)
    assert apix == pytest.approx(2.5) and rms == pytest.approx(volume.std(), rel=1e-5)


def test_show_map_loads_the_map_as_mrc_with_the_slider_surface(volume):
    viewer = VolumeViewer(threshold=1.5, opacity=0.7).show_map(volume, 2.0)
    load, update = queued(viewer.view)
    assert load["methodName"] == "loadFile"
    assert load["kwargs"] == {"ext": "mrc", "defaultRepresentation": True}
    data, apix, _ = read_mrc(base64.b64decode(load["args"][0]["data"]))
    np.testing.assert_array_equal(data, volume)
    assert apix == pytest.approx(2.0)
    assert update["args"] == ["surface", 0]
    assert update["kwargs"] == {"isolevelType": "sigma", "isolevel": 1.5, "opacity": 0.7, "color": viewer.color}
    assert viewer.level_label.value == f"level {volume.mean() + 1.5 * volume.std():.4g}"


def test_sliders_update_the_surface_without_archiving(volume):
    viewer = VolumeViewer()
    viewer.threshold.value = 2.5  # before any map: nothing to update
    assert queued(viewer.view) == [] and viewer.level_label.value == ""
    viewer.show_map(volume, 1.0)
    viewer.threshold.value = 3.0
    viewer.opacity.value = 0.4
    updates = surface_updates(viewer.view)
    assert [(index, kw["isolevelType"], kw["isolevel"], kw["opacity"]) for index, kw in updates[-2:]] == [
        (0, "sigma", 3.0, 1.0), (0, "sigma", 3.0, 0.4)]
    assert viewer.level_label.value == f"level {volume.mean() + 3.0 * volume.std():.4g}"
    # Slider moves stay out of nglview's archive, which is re-sent whole (maps included) on every change.
    assert [m["methodName"] for m in viewer.view._ngl_msg_archive] == ["loadFile"]


def test_a_new_map_replaces_the_old_and_keeps_the_camera(volume):
    viewer = VolumeViewer(threshold=2.5).show_map(volume, 1.0)
    viewer.show_map(2 * volume, 1.0)
    calls = queued(viewer.view)
    second = [m for m in calls if m["methodName"] == "loadFile"][1]
    assert not second["kwargs"]["defaultRepresentation"]  # no new camera fit
    add = calls[calls.index(second) + 1]
    assert add["methodName"] == "addRepresentation" and add["args"][0] == "surface"
    assert add["kwargs"]["isolevel"] == 2.5 and add["kwargs"]["isolevelType"] == "sigma"
    assert visible(viewer.view) == [True]
    np.testing.assert_array_equal(loaded_maps(viewer.view)[-1], 2 * volume)

    # A map of another extent is fitted again.
    viewer.show_map(volume[:8, :8, :8], 1.0)
    assert [m for m in queued(viewer.view) if m["methodName"] == "loadFile"][-1]["kwargs"]["defaultRepresentation"]
    assert visible(viewer.view) == [True]


def test_show_generates_the_run_map():
    run = tiny_run()
    z = np.array([0.5, -1.0], np.float32)
    viewer = VolumeViewer(run).show(z)
    (shown,) = loaded_maps(viewer.view)
    np.testing.assert_allclose(shown, run.volumes(z)[0], rtol=1e-6)
    assert viewer.apix == 8.0
    assert WIDGET_MIME in viewer._repr_mimebundle_()


def test_bad_input(volume):
    with pytest.raises(InputError, match="no run"):
        VolumeViewer().show([0.0, 0.0])
    viewer = VolumeViewer(tiny_run())
    with pytest.raises(InputError, match=r"shape \(B, 2\) for this run, got \(1, 3\)"):
        viewer.show([0.0, 0.0, 0.0])
    with pytest.raises(InputError, match="takes one latent, got 2"):
        viewer.show(np.zeros((2, 2)))
    with pytest.raises(InputError, match=r"shape \(D, D, D\) or \(B, D, D, D\).*got \(12, 12\)"):
        viewer.show_map(volume[0], 1.0)
    with pytest.raises(InputError, match="NaN"):
        viewer.show_map(np.full((4, 4, 4), np.nan), 1.0)
    with pytest.raises(InputError, match="pixel size"):
        viewer.show_map(volume, -1.0)
    assert queued(viewer.view) == []


def run_python(code: str):
    return subprocess.run([sys.executable, "-W", "always", "-c", code], capture_output=True, text=True, check=True)


def test_nglview_asks_jupyterlab_for_the_frontend_it_ships():
    package = Path(sys.prefix) / "share" / "jupyter" / "labextensions" / "nglview-js-widgets" / "package.json"
    if not package.exists():
        pytest.skip(f"nglview's JupyterLab extension is not installed here ({package})")
    shipped = json.loads(package.read_text())["version"]
    asked = run_python("import cryonb.widgets.volume_viewer, nglview; print(nglview.NGLWidget()._view_module_version)")
    assert asked.stdout.split()[-1] == shipped


def test_importing_nglview_first_is_reported():
    if importlib.metadata.version("nglview") not in _SHIPPED_FRONTEND:
        pytest.skip("this nglview asks for the frontend it ships")
    out = run_python("import nglview, cryonb.widgets.volume_viewer")
    assert "nglview was imported before cryonb's volume views" in out.stderr
