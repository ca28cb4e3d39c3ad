"""SliceViewer without a browser: the PNG shown is the section that the sliders describe."""

import io

import numpy as np
import pytest
from PIL import Image

from cryonb.core.errors import InputError
from cryonb.core.slicing import map_slice
from cryonb.widgets.slice_viewer import SliceViewer, slice_png

D = 16


def shown(viewer) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(viewer.image.value)).convert("L"))


@pytest.fixture
def volume():
    """A bright block in the octant x, y, z > centre, on zero."""
    v = np.zeros((D, D, D), np.float32)
    v[D // 2 + 2:, D // 2 + 2:, D // 2 + 2:] = 1.0
    return v


def test_the_image_is_the_section_of_the_sliders(volume):
    viewer = SliceViewer(volume, 2.0, size=D)
    np.testing.assert_array_equal(viewer.section, volume[D // 2])  # the z plane through the centre: empty
    assert shown(viewer).max() == 0
    viewer.offset.value = 4
    np.testing.assert_array_equal(viewer.section, volume[D // 2 + 4])
    image = shown(viewer)
    assert image.shape == (D, D)
    assert (image[D // 2 + 2:, D // 2 + 2:] == 255).all() and not image[:D // 2 + 2].any()
    assert viewer.label.value == "offset 8.0 Å"
    assert viewer.offset.min == -D / 2 and viewer.offset.max == D / 2


def test_axis_and_tilt_sliders(volume):
    viewer = SliceViewer(volume, size=D).set(axis="x", tilt=(25, -10), offset=3)
    np.testing.assert_allclose(viewer.section, map_slice(volume, "x", 3, tilt=(25, -10)))
    before = viewer.image.value
    viewer.tilt_b.value = 30
    assert viewer.image.value != before
    np.testing.assert_allclose(viewer.section, map_slice(volume, "x", 3, tilt=(25, 30)))


def test_show_map_and_from_run(volume):
    viewer = SliceViewer(volume, size=D).show_map(2 * volume[:8, :8, :8], 1.0)
    assert viewer.section.shape == (8, 8) and viewer.offset.max == 4
    from cryonb.core.run import Run
    from cryonb.core.training import TrainConfig

    config = TrainConfig(zdim=2, enc_width=32, enc_depth=2, dec_width=32, dec_depth=2, residual=False, encoding="geometric")
    run = Run(config.build_model(16, n_particles=1).eval(), scale=1.0, apix=8.0, z=None)
    z = np.array([0.5, -1.0], np.float32)
    from_run = SliceViewer.from_run(run, z)
    np.testing.assert_allclose(from_run.volume, run.volumes(z)[0], rtol=1e-6)
    assert "application/vnd.jupyter.widget-view+json" in from_run._repr_mimebundle_()


def test_png_of_a_flat_section_and_bad_input(volume):
    assert Image.open(io.BytesIO(slice_png(np.ones((4, 4)), 8))).size == (8, 8)
    with pytest.raises(InputError, match="one map"):
        SliceViewer(np.stack([volume, volume]))
