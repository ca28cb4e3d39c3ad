import io

import numpy as np
import pytest
from PIL import Image

from cryonb.core.particles import ParticleSet
from cryonb.core.run import Run
from cryonb.widgets.gallery import ParticleGallery, gallery_figure


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
    # A message, and no image element (an empty one is drawn as a broken image).
    assert gallery.caption.value.startswith("No particles selected") and gallery.grid.value == b""
    assert gallery.grid.layout.display == "none"
    gallery.show(np.arange(10))
    assert gallery.grid.layout.display is None
    np.testing.assert_allclose(gallery.average[1:, 1:], 4.5)
    assert gallery.caption.value == "10 of 10 particles shown; average of 10"
    one_row = png_size(ParticleGallery(run, [0, 1], columns=8).grid.value)
    two_rows = png_size(gallery.grid.value)  # average + 10 images in rows of 8
    assert two_rows[1] > one_row[1]


def test_without_images_says_they_are_absent(run):
    run.particles = ParticleSet(ctf=None, rotations=np.tile(np.eye(3, dtype=np.float32), (10, 1, 1)))
    gallery = ParticleGallery(run, [1, 2])
    assert gallery.caption.value.startswith("Particle images are absent") and gallery.grid.value == b""
    gallery.show([])
    assert gallery.caption.value.startswith("Particle images are absent") and gallery.average is None


def test_titles_are_whole_on_256_pixel_images():
    """Issue 14, item 6: every title lies inside the figure, above its own image, clear of the row above."""
    rng = np.random.default_rng(0)
    images = rng.standard_normal((17, 256, 256)).astype(np.float32)
    figure = gallery_figure(images, [f"#{i}" for i in range(1234560, 1234577)], images.mean(0), columns=8)
    renderer = figure.canvas.get_renderer()
    figure.draw(renderer)
    frame = figure.bbox
    panels = [axes.get_window_extent(renderer) for axes in figure.axes]
    for axes, panel in zip(figure.axes, panels):
        title = axes.title.get_window_extent(renderer)
        assert frame.x0 <= title.x0 and title.x1 <= frame.x1 and frame.y0 <= title.y0 and title.y1 <= frame.y1
        assert title.y0 >= panel.y1 - 1 and panel.x0 - 2 <= title.x0 and title.x1 <= panel.x1 + 2
        assert not any(title.overlaps(other) for other in panels if other is not panel)
