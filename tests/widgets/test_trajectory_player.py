"""TrajectoryPlayer without a browser: all frames loaded, exactly one shown, movies of its frames."""

import importlib.util

import numpy as np
import pytest
from PIL import Image

if importlib.util.find_spec("nglview") is None:
    pytest.skip("nglview is not installed (pip install 'cryonb[widgets]')", allow_module_level=True)

from test_volume_viewer import WIDGET_MIME, loaded_maps, queued, tiny_run, visible  # noqa: E402

from cryonb.core.errors import InputError  # noqa: E402
from cryonb.widgets.trajectory_player import TrajectoryPlayer  # noqa: E402


@pytest.fixture(scope="module")
def run():
    return tiny_run()


@pytest.fixture(scope="module")
def zs():
    return np.linspace([-2.0, -2.0], [2.0, 2.0], 4, dtype=np.float32)


def test_frames_are_the_run_maps_and_only_the_first_is_shown(run, zs):
    player = TrajectoryPlayer(run, zs)
    np.testing.assert_array_equal(player.maps, run.volumes(zs))
    np.testing.assert_array_equal(player.z, zs)
    sent = loaded_maps(player.viewer.view)
    assert len(sent) == 4 and all(np.array_equal(a, b) for a, b in zip(sent, player.maps))
    assert visible(player.viewer.view) == [True, False, False, False]
    assert player.frame == 0 and player.apix == 8.0
    assert (player.play.min, player.play.max, player.slider.max) == (0, 3, 3)
    assert WIDGET_MIME in player._repr_mimebundle_()


def test_frame_switching_shows_exactly_one_frame(run, zs):
    player = TrajectoryPlayer(run, zs)
    for frame in [2, 3, 0, 3]:
        player.frame = frame
        assert visible(player.viewer.view) == [i == frame for i in range(4)]
    player.slider.value = 1  # what Play does, through the slider it is linked to
    assert player.frame == 1 and visible(player.viewer.view) == [False, True, False, False]
    level = player.maps[1].mean() + player.viewer.threshold.value * player.maps[1].std()
    assert player.viewer.level_label.value == f"level {level:.4g}"
    with pytest.raises(InputError, match="frame 4 is out of range"):
        player.frame = 4


def test_sliders_update_every_frame(run, zs):
    player = TrajectoryPlayer(run, zs)
    before = len(queued(player.viewer.view))
    player.viewer.threshold.value = 3.5
    updates = [m for m in queued(player.viewer.view)[before:] if m["methodName"] == "updateRepresentationsByName"]
    assert [m["args"] for m in updates] == [["surface", i] for i in range(4)]
    assert all(m["kwargs"]["isolevel"] == 3.5 for m in updates)


def test_from_maps_and_movies(tmp_path):
    maps = np.zeros((3, 16, 16, 16), np.float32)
    for i, m in enumerate(maps):
        m[4 + 3 * i : 8 + 3 * i, 6:10, 6:10] = 1.0  # a block moving along z
    player = TrajectoryPlayer.from_maps(maps, 2.0)
    assert player.z is None and player.apix == 2.0 and len(loaded_maps(player.viewer.view)) == 3

    gif = Image.open(player.save_gif(tmp_path / "t.gif", fps=4, size=40, view="slice"))
    assert gif.n_frames == 3 and gif.size == (40, 40) and gif.info["duration"] == 250
    strip = Image.open(player.save_strip(tmp_path / "t.png", size=40))
    assert strip.size == (3 * 40, 40)


def test_bad_trajectories(run):
    with pytest.raises(InputError, match="no latents"):
        TrajectoryPlayer(run, np.zeros((0, 2)))
    with pytest.raises(InputError, match=r"shape \(B, 2\) for this run, got \(3, 5\)"):
        TrajectoryPlayer(run, np.zeros((3, 5)))
    with pytest.raises(InputError, match=r"B ≥ 1, got \(0, 8, 8, 8\)"):
        TrajectoryPlayer.from_maps(np.zeros((0, 8, 8, 8)), 1.0)
