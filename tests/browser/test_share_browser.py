"""A shared bundle in Chromium: its notebook renders the explorer, the gallery of thumbnails and NGL
in JupyterLab, and its read-only page (index.html) draws the scatter, the cluster maps and NGL offline."""

import importlib.util
import shutil

import numpy as np
import pytest
from harness import element_pixels

pytestmark = pytest.mark.slow
pytest.importorskip("holoviews")
if importlib.util.find_spec("nglview") is None:  # not imported here: cryonb's volume views import it first
    pytest.skip("the volume views need nglview", allow_module_level=True)


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    """A bundle of a tiny run trained on a .star, with clusters, a selection and thumbnails."""
    import torch

    from cryonb.core.analysis import kmeans, pca
    from cryonb.core.particles import load_particles, write_star
    from cryonb.core.run import Run
    from cryonb.core.simulate import simulate
    from cryonb.core.training import TrainConfig, Trainer

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("shared")
    write_star(simulate("hinge", 64, D=16, apix=8.0, snr=1.0, seed=3, progress=False).particles, root / "particles.star")
    config = TrainConfig(zdim=2, enc_width=32, enc_depth=2, dec_width=32, dec_depth=2, batch_size=16, device="cpu")
    run = Run.from_trainer(Trainer(load_particles(root / "particles.star"), config).fit(1, progress=False))
    clusters = kmeans(run.z, 3)
    run.share(root / "bundle", coords=pca(run.z, 2).coords, clusters=clusters,
              selections={"cluster0": np.flatnonzero(clusters.labels == 0)}, thumbnails=40, progress=False)
    return root / "bundle"


def test_the_bundle_notebook_renders_the_explorer(bundle, lab, lab_page):
    shutil.copytree(bundle, lab.root / "shared")
    lab_page.open("shared/explore.ipynb")
    lab_page.run_all()
    text = lab_page.wait_for_output("my_selection", timeout=240)  # the last cell saved the sharer's selection
    assert "cluster0" in text
    canvas = lab_page.widget(".bk-Canvas")
    lab_page.wait_until(lambda: element_pixels(canvas) > 500, message="the shaded particles drawn")
    caption = lab_page.text(".cryonb-gallery-caption")
    assert "thumbnails of a shared bundle" in caption, caption
    assert element_pixels(lab_page.page.locator(".jp-OutputArea-output .cryonb-gallery-images").first) > 500
    ngl = lab_page.page.locator(".jp-OutputArea-output .ui-resizable canvas").first
    ngl.wait_for(state="visible", timeout=60_000)
    lab_page.wait_until(lambda: element_pixels(ngl) > 200, timeout=60, message="a map drawn by NGL")
    assert (lab.root / "shared" / "my_selection.star").exists()


def test_the_page_works_offline(bundle, page):
    from cryonb.widgets.share_page import ngl_source, write_page

    if ngl_source() is None:
        pytest.skip("nglview's classic-notebook script is not installed")
    index = write_page(bundle)
    fetched = []
    page.on("request", lambda request: fetched.append(request.url)
            if not request.url.startswith(("file:", "data:", "blob:")) else None)
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(index.as_uri())
    page.wait_for_function("() => document.getElementById('ngl').dataset.ngl !== 'pending'", timeout=60_000)
    assert page.evaluate("document.getElementById('ngl').dataset.ngl") == "ready"
    page.wait_for_timeout(1000)
    assert element_pixels(page.locator(".bk-Canvas").first) > 300  # the scatter
    assert element_pixels(page.locator("#ngl canvas")) > 300  # the isosurface
    widths = page.evaluate("Array.from(document.querySelectorAll('figure.cluster img')).map(i => i.naturalWidth)")
    assert len(widths) == 3 and min(widths) > 100  # a picture per cluster, decoded
    assert not fetched and not errors
