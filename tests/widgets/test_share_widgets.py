"""The views on a shared bundle: the explorer opens with the sharer's view, the gallery shows the
thumbnails (or says images are absent), Save writes the original rows; the read-only HTML page."""

import re

import numpy as np
import pytest

pytest.importorskip("holoviews")

from cryonb.core.io.star import read_blocks  # noqa: E402
from cryonb.core.particles import load_particles, save_selection, write_star  # noqa: E402
from cryonb.core.run import Run  # noqa: E402
from cryonb.core.share import open_bundle, share  # noqa: E402
from cryonb.core.simulate import simulate  # noqa: E402
from cryonb.core.training import TrainConfig, Trainer  # noqa: E402
from cryonb.widgets.explore import explore  # noqa: E402

TINY = dict(zdim=2, enc_width=32, enc_depth=2, dec_width=32, dec_depth=2, batch_size=16, lr=1e-3, device="cpu")


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    root = tmp_path_factory.mktemp("shared-views")
    write_star(simulate("hinge", 40, D=16, apix=8.0, snr=1.0, seed=4, progress=False).particles, root / "particles.star")
    run = Run.from_trainer(Trainer(load_particles(root / "particles.star"), TrainConfig(**TINY)).fit(1, progress=False))
    view = explore(run, coords="pca", k=2)
    view.explorer.select(np.arange(0, 40, 3))
    share(run, root / "bundle", explorer=view, thumbnails=10, progress=False)  # its view, clusters and selection
    return root, run, view


def test_explore_a_bundle_folder_shows_the_sharers_view(shared, tmp_path):
    root, run, original = shared
    view = explore(root / "bundle")
    np.testing.assert_allclose(view.explorer.coords, original.explorer.coords, atol=1e-2)  # float16 coordinates
    np.testing.assert_array_equal(view.explorer.values, original.explorer.clusters.labels)
    assert view.explorer.clusters is None  # the saved labels colour the plot: no k-means of its own
    bundle = open_bundle(root / "bundle")
    np.testing.assert_array_equal(bundle.selections["selection"], np.arange(0, 40, 3))

    # The gallery: the selected particles that have a thumbnail, said so.
    view.explorer.select(bundle.selections["selection"])
    with_thumbnail = np.intersect1d(bundle.thumbnails.positions, bundle.selections["selection"])
    assert len(with_thumbnail) > 0
    caption = view.gallery.caption.value
    assert caption.startswith(f"{len(with_thumbnail)} of {len(with_thumbnail)} particles shown")
    assert f"{len(with_thumbnail)} of the 14 selected have one" in caption and view.gallery.grid.value[:4] == b"\x89PNG"
    lonely = np.setdiff1d(np.arange(40), bundle.thumbnails.positions)[:1]
    view.explorer.select(lonely)
    assert view.gallery.caption.value.startswith("None of the 1 selected particles has a thumbnail")

    # Save from the bundle: the same rows as from the original run.
    view.explorer.select(bundle.selections["selection"])
    written = view.explorer.save(tmp_path / "from_bundle")
    expected = save_selection(run.particles.subset(bundle.selections["selection"]), tmp_path / "from_run")
    a, b = read_blocks(written["star"]), read_blocks(expected["star"])
    assert all(a[name].equals(b[name]) for name in b)


def test_a_bundle_without_thumbnails_says_images_are_absent(shared, tmp_path):
    _, run, _ = shared
    share(run, tmp_path / "bare", thumbnails=0, progress=False)
    view = explore(tmp_path / "bare", coords="pca", k=None, color="norm")
    view.explorer.select([1, 2])
    assert view.gallery.caption.value.startswith("Particle images are absent") and view.gallery.grid.value == b""


def test_the_page_is_one_offline_file(shared):
    from cryonb.widgets.share_page import ngl_source, write_page

    root = shared[0]
    page = write_page(root / "bundle", points=25)
    text = page.read_text()
    assert page == root / "bundle" / "index.html" and text.startswith("<!DOCTYPE html>")
    assert not re.search(r"<(script|link)[^>]+(src|href)=\"https?:", text)  # nothing fetched from the network
    assert "Bokeh" in text and "25 of 40 particles, drawn at random" in text
    assert len(re.findall(r'<figure class="cluster"><img alt="cluster \d', text)) == 2  # one picture per cluster
    if ngl_source() is not None:
        assert "window.cryonbNGL" in text and 'id="ngl"' in text
