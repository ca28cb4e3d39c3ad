"""cryonb.explore on a cryoDRGN run folder: the explorer, the map of a selection, a selection exported for RELION."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("holoviews")
pytest.importorskip("ipywidgets")

import cryonb  # noqa: E402
import cryonb.widgets  # noqa: E402
from cryonb.core.io.pickles import read_index  # noqa: E402
from cryonb.core.io.star import read_star  # noqa: E402
from cryonb.core.simulate import simulate  # noqa: E402

from conftest import write_cryodrgn_particles  # noqa: E402


class RecordingViewer:
    """Stands in for the NGL viewer: renders the map as the real one would, and remembers it."""

    def __init__(self, run):
        import ipywidgets as w

        self.run, self.widget, self.maps = run, w.Label("viewer"), []

    def show(self, z):
        self.maps.append(self.run.volumes(z))


def test_explore_a_cryodrgn_run_folder(cryodrgn_run, tmp_path, monkeypatch):
    run_dir = cryodrgn_run("vae_gaussian_fourier")
    particles = simulate("hinge", 200, D=16, apix=6.0, snr=1.0, seed=7, progress=False).particles
    files = write_cryodrgn_particles(run_dir.parent, particles, 16)  # found by name beside the moved run
    monkeypatch.setattr(cryonb.widgets, "VolumeViewer", RecordingViewer)
    view = cryonb.explore(str(run_dir), coords="pca", k=3)
    assert view.run.z.shape == (200, 2) and view.run.apix == pytest.approx(6.0)
    assert str(view.run.particles.source.path) == str(files["particles"])

    view.explorer.select([5, 1, 9])
    view.show_mean_volume()
    assert view.viewer.maps[-1].shape == (1, 16, 16, 16) and np.isfinite(view.viewer.maps[-1]).all()
    np.testing.assert_allclose(view.viewer.maps[-1], view.run.volumes(view.run.z[[1, 5, 9]].mean(0, keepdims=True)), rtol=1e-6)

    written = view.explorer.save(tmp_path / "selected")
    assert read_star(written["star"]).rotations.shape == (3, 3, 3)
    np.testing.assert_array_equal(read_index(written["ind_pkl"]), [1, 5, 9])
