"""Map movies: orientation (x right, y up, seen from +z), a shared grey scale, GIF and PNG strip files."""

import numpy as np
import pytest
from PIL import Image

from cryonb.core.errors import InputError
from cryonb.core.movies import render_frames, write_gif, write_strip

D = 16


def ball(centre, radius=3.0, D=D) -> np.ndarray:
    """A solid ball of density 1 at ``centre`` (z, y, x) voxels."""
    z, y, x = np.indices((D, D, D))
    return (((z - centre[0]) ** 2 + (y - centre[1]) ** 2 + (x - centre[2]) ** 2) <= radius**2).astype(np.float32)


def bright_centre(image: np.ndarray) -> tuple[float, float]:
    """(row, column) of the intensity-weighted centre of an image."""
    rows, cols = np.indices(image.shape)
    weight = image.astype(float)
    return (rows * weight).sum() / weight.sum(), (cols * weight).sum() / weight.sum()


@pytest.mark.parametrize("view", ["surface", "projection", "slice"])
def test_x_right_and_y_up(view):
    # A ball at large x and large y, in the central section, shows in the top-right quadrant.
    (frame,) = render_frames(ball((D // 2, 12, 12)), view=view, size=D)
    assert frame.dtype == np.uint8 and frame.shape == (D, D)
    row, col = bright_centre(frame)
    assert row == pytest.approx(D - 1 - 12, abs=1) and col == pytest.approx(12, abs=1)


def test_surface_is_seen_from_plus_z_and_shaded_by_slope():
    near, far = render_frames(np.stack([ball((11, 8, 8)), ball((4, 8, 8))]), view="surface", size=D)
    assert near[7, 8] > far[7, 8] > 0  # same silhouette, the nearer ball is brighter
    assert near[7, 8] > near[7, 5] > 0  # its centre faces the viewer, its rim turns away
    assert near[0, 0] == 0  # no surface: background


def test_frames_share_one_grey_scale():
    z, y, x = np.indices((D, D, D)) - D // 2
    blob = np.exp(-(x**2 + y**2 + z**2) / 8).astype(np.float32)
    full, half = render_frames(np.stack([blob, 0.5 * blob]), view="projection", size=D)
    unclipped = (full > 20) & (full < 255)
    assert full.max() == 255 and unclipped.sum() > 20
    np.testing.assert_allclose(half[unclipped], full[unclipped] / 2, atol=1)  # half the density: half as bright


def test_slice_is_the_central_section():
    volume = np.zeros((D, D, D), np.float32)
    volume[D // 2, 2:5, 2:5] = 1.0  # only in the central section
    volume[D // 2 + 1] = 5.0  # the next section would saturate everything
    (frame,) = render_frames(volume, view="slice", size=D)
    assert frame[D - 1 - 3, 3] == 255 and frame[8, 8] == 0


def test_gif_and_strip(tmp_path):
    maps = np.stack([ball((8, 8, x)) for x in (4, 8, 12)])
    gif = Image.open(write_gif(maps, tmp_path / "m.gif", fps=10, size=24))
    assert gif.n_frames == 3 and gif.size == (24, 24) and gif.info["duration"] == 100 and gif.info["loop"] == 0
    frames = render_frames(maps, size=24)
    for i in range(3):
        gif.seek(i)
        np.testing.assert_array_equal(np.asarray(gif.convert("L")), frames[i])

    strip = Image.open(write_strip(maps, tmp_path / "m.png", size=24))
    assert strip.size == (3 * 24, 24)
    np.testing.assert_array_equal(np.asarray(strip), np.concatenate(list(frames), axis=1))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.gif", "m.png"]  # no temporary file left


def test_bad_input(tmp_path):
    with pytest.raises(InputError, match=r"or \(B, D, D, D\) with B ≥ 1, got \(4, 4\)"):
        render_frames(np.zeros((4, 4)))
    with pytest.raises(InputError, match="NaN"):
        render_frames(np.full((1, 4, 4, 4), np.nan))
    with pytest.raises(InputError, match="unknown view 'mip'"):
        render_frames(np.zeros((4, 4, 4)), view="mip")
    with pytest.raises(InputError, match="frames per second"):
        write_gif(np.zeros((4, 4, 4)), tmp_path / "m.gif", fps=0)
    assert list(tmp_path.iterdir()) == []
