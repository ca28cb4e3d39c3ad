import io

import numpy as np
import pytest
from PIL import Image

from cryonb.core.errors import InputError
from cryonb.core.particles import ParticleSet
from cryonb.core.run import Run
from cryonb.widgets.gallery import ParticleGallery


@pytest.fixture
def run():
    """Ten 6² images, image i filled with the value i, kept as rows 100..109 of an original file."""
    images = np.repeat(np.arange(10, dtype=np.float32), 36).reshape(10, 6, 6)
    images[:, 0, 0] += 1  # a pixel of contrast in each
    particles = ParticleSet(images=images, apix=2.0, indices=np.arange(100, 110))
    return Run(model=None, scale=1.0, apix=2.0, z=np.zeros((10, 2), np.float32), particles=particles)


def png_size(data: bytes) -> tuple[int, int]:
    return Image.open(io.BytesIO(data)).size


def test_grid_and_average_of_the_selection(run):
    gallery = ParticleGallery(run, [7, 2, 5], n=2, average_of=2)
    assert gallery.average.shape == (6, 6)
    np.testing.assert_allclose(gallery.average[1:, 1:], 4.5)  # images 7 and 2: only the first average_of
    assert gallery.caption.value == "2 of 3 particles shown; average of 2"
    width, height = png_size(gallery.grid.value)
    assert width > height > 0  # average + 2 images in one row


def test_show_updates_and_empty_selection(run):
    gallery = ParticleGallery(run)
    assert gallery.caption.value == "no particles selected" and gallery.grid.value == b""
    gallery.show(np.arange(10))
    np.testing.assert_allclose(gallery.average[1:, 1:], 4.5)
    assert gallery.caption.value == "10 of 10 particles shown; average of 10"
    one_row = png_size(ParticleGallery(run, [0, 1], columns=8).grid.value)
    two_rows = png_size(gallery.grid.value)  # average + 10 images in rows of 8
    assert two_rows[1] > one_row[1]


def test_needs_images(run):
    run.particles = ParticleSet(ctf=None, rotations=np.tile(np.eye(3, dtype=np.float32), (10, 1, 1)))
    with pytest.raises(InputError, match="no particle images"):
        ParticleGallery(run)
