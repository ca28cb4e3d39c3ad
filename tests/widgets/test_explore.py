import ipywidgets as w
import numpy as np
import pytest

pytest.importorskip("holoviews")

import cryonb.widgets  # noqa: E402
from cryonb.core.errors import InputError  # noqa: E402
from cryonb.core.run import Run  # noqa: E402
from cryonb.core.simulate import simulate  # noqa: E402
from cryonb.core.training import TrainConfig, Trainer  # noqa: E402
from cryonb.widgets.explore import explore  # noqa: E402

TINY = dict(zdim=2, enc_width=32, enc_depth=2, dec_width=32, dec_depth=2, batch_size=16, device="cpu")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """64 simulated particles of 16² pixels after one epoch, saved in a run folder."""
    particles = simulate("hinge", 64, D=16, apix=8.0, snr=1.0, seed=3, progress=False).particles
    run_dir = tmp_path_factory.mktemp("run")
    return Trainer(particles, TrainConfig(**TINY), run_dir=run_dir).fit(1, progress=False), run_dir


class RecordingViewer:
    """Stands in for the volume viewer: remembers the latents it was asked to show."""

    def __init__(self, run):
        self.widget = w.Label("viewer")
        self.shown = []

    def show(self, z):
        self.shown.append(np.asarray(z))


def test_gallery_and_volume_follow_the_selection(trained, monkeypatch):
    monkeypatch.setattr(cryonb.widgets, "VolumeViewer", RecordingViewer)
    view = explore(Run.from_trainer(trained[0]), coords="pca", k=3)
    assert isinstance(view.viewer, RecordingViewer) and view.volume_button.disabled
    view.explorer.select([3, 1, 4])
    np.testing.assert_array_equal(view.gallery.positions, [1, 3, 4])
    assert view.gallery.caption.value.startswith("3 of 3 particles")
    assert not view.volume_button.disabled
    # Issue 14, item 6: a hint, not an empty 3D view, until a map is asked for.
    assert view.volume_box.children == (view.volume_hint,) and "click a particle" in view.volume_hint.value
    view.volume_button.click()
    np.testing.assert_allclose(view.viewer.shown[-1], view.run.z[[1, 3, 4]].mean(0, keepdims=True))
    assert view.volume_box.children == (view.viewer.widget,)
    view.explorer.pick(*view.explorer.coords[5])
    np.testing.assert_allclose(view.viewer.shown[-1], view.run.z[5])
    view.explorer.remove()
    assert view.gallery.positions.size == 0 and view.volume_button.disabled


def test_without_a_volume_viewer_says_why(trained, monkeypatch):
    def unavailable(run):
        raise ImportError("nglview is not installed")

    monkeypatch.setattr(cryonb.widgets, "VolumeViewer", unavailable)
    view = explore(trained[0], coords="pca", k=2)
    assert view.viewer is None
    assert "No 3D view: nglview is not installed" in [getattr(c, "value", None) for c in view.children]


def test_explores_a_run_folder(trained, monkeypatch):
    monkeypatch.setattr(cryonb.widgets, "VolumeViewer", RecordingViewer)
    trainer, run_dir = trained
    view = explore(run_dir, coords="pca", color="norm", k=None, particles=trainer.particles)
    np.testing.assert_allclose(view.run.z, trainer.embed(), rtol=1e-5, atol=1e-6)
    view.explorer.select(np.arange(5))
    np.testing.assert_array_equal(view.gallery.positions, np.arange(5))


def test_lazy_names_and_bad_input():
    from cryonb.widgets.explore import Exploration
    from cryonb.widgets.latent_explorer import LatentExplorer

    assert cryonb.widgets.Exploration is Exploration and cryonb.widgets.LatentExplorer is LatentExplorer
    with pytest.raises(InputError, match="cannot explore a int"):
        explore(42)


def test_clicking_a_particle_shows_its_map(trained, monkeypatch):
    monkeypatch.setattr(cryonb.widgets, "VolumeViewer", RecordingViewer)
    view = explore(Run.from_trainer(trained[0]), coords="pca", k=3)
    coords = view.explorer.coords
    target = 17
    view.explorer.tap.event(x=float(coords[target, 0]) + 1e-6, y=float(coords[target, 1]))
    assert view.explorer.picked == target
    np.testing.assert_array_equal(view.viewer.shown[-1], view.run.z[target])
    view.explorer.select(np.arange(0, 64, 2))
    view.explorer.keep()  # only even rows are shown now: a click picks the nearest shown particle
    picked = view.explorer.pick(*coords[target])
    shown = np.arange(0, 64, 2)
    assert picked == shown[np.argmin(((coords[shown] - coords[target]) ** 2).sum(1))]


@pytest.mark.parametrize("n", [10, 30])
def test_small_datasets_get_sane_umap_and_kmeans_defaults(n, monkeypatch):
    """UMAP's n_neighbors=15 and 8 k-means clusters do not fit 10 or 30 particles: the defaults follow N."""
    from cryonb.core.analysis import auto_clusters, auto_neighbors
    from cryonb.core.particles import ParticleSet

    monkeypatch.setattr(cryonb.widgets, "VolumeViewer", RecordingViewer)
    rng = np.random.default_rng(n)
    particles = ParticleSet(rng.standard_normal((n, 8, 8), dtype=np.float32), apix=4.0)
    z = (rng.normal(size=(n, 3)) + np.arange(n)[:, None] % 2 * 4).astype(np.float32)
    run = Run(model=None, scale=1.0, apix=4.0, z=z, particles=particles)
    view = explore(run)  # UMAP and k-means, with the defaults
    assert view.explorer.coords.shape == (n, 2) and np.isfinite(view.explorer.coords).all()
    assert len(view.explorer.clusters.centers) == auto_clusters(n) == {10: 2, 30: 3}[n]
    assert auto_neighbors(n) == {10: 3, 30: 10}[n] and auto_neighbors(10**6) == 15 and auto_clusters(10**6) == 8
    view = explore(run, k=4, n_neighbors=5, min_dist=0.5)  # the parameters, exposed
    assert len(view.explorer.clusters.centers) == 4
    with pytest.raises(InputError, match=r"n_neighbors=40 is out of range.*n_neighbors <= " + str(n - 1)):
        explore(run, n_neighbors=40)
    with pytest.raises(InputError, match=r"k=40 is out of range.*k <= " + str(n)):
        explore(run, coords="pca", k=40)
    with pytest.raises(InputError, match="not a number of clusters"):
        explore(run, coords="pca", k="many")
