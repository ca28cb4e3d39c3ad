"""analyze_run on anything with a run's interface, and the HTML report it writes."""

import re

import numpy as np
import pytest

from cryonb.core.analysis.report import HtmlReport, html_link
from cryonb.core.analysis.run_analysis import analyze_run
from cryonb.core.errors import InputError
from cryonb.core.io.mrc import read_map
from cryonb.core.phantoms import hinge_states


class MinimalRun:
    """Only what a run of any origin offers: z, volumes(z), particles, apix, box_size, zdim."""

    def __init__(self, zdim=3, n=90):
        self.maps = hinge_states(12, 6)[0].numpy()
        self.z = np.random.default_rng(0).normal(size=(n, zdim)).astype(np.float32)
        self.apix, self.box_size, self.zdim, self.particles = 5.0, 12, zdim, None

    def volumes(self, z):
        z = np.asarray(z)
        return self.maps[np.clip(np.round(z[:, 0] + 2.5), 0, 5).astype(int)]


def test_any_run_interface_is_enough(tmp_path):
    run = MinimalRun()
    out = analyze_run(run, tmp_path, k=4, pcs=3, pc_steps=5, umap=False, progress=False)
    assert len(list((tmp_path / "kmeans4").glob("vol_*.mrc"))) == 4
    volume, apix = read_map(tmp_path / "pc3" / "vol_004.mrc")
    assert volume.shape == (12, 12, 12) and apix == pytest.approx(5.0)
    # The first principal axis of z runs along z[0], which picks the map: the PC1 maps change, in order.
    pc1 = np.stack([read_map(tmp_path / "pc1" / f"vol_{i:03d}.mrc")[0] for i in range(5)])
    assert not np.allclose(pc1[0], pc1[-1])
    # The graph path runs between two of the on-data centres, through particles of the run.
    path = np.load(tmp_path / "graph_path" / "particles.npy")
    centres = np.load(tmp_path / "kmeans4" / "centers.npy")
    assert len(path) == 5 and path[0] in centres and path[-1] in centres and path[0] != path[-1]
    assert len(out.notes) == 2 and any("particles are not available" in n for n in out.notes)
    assert set(out.files) >= {"kmeans4/vol_003.mrc", "pc3/vol_004.mrc", "summary.json", "pca_kmeans.png"}


def test_a_homogeneous_or_tiny_run_is_refused(tmp_path):
    run = MinimalRun()
    run.zdim, run.z = 0, None
    with pytest.raises(InputError, match="no latent space"):
        analyze_run(run, tmp_path, progress=False)
    with pytest.raises(InputError, match="k=500 is out of range"):
        analyze_run(MinimalRun(), tmp_path / "out", k=500, progress=False)
    assert not (tmp_path / "out").exists()  # nothing written for a refused run


def test_report_links_are_relative_and_text_is_escaped(tmp_path):
    report = HtmlReport("a <title>", tmp_path)
    (tmp_path / "sub").mkdir()
    report.text("x < y & z")
    report.table(["file"], [[html_link(report, tmp_path / "sub" / "m a.mrc", "m a.mrc")], ["<b>"]])
    text = report.write(tmp_path / "report.html").read_text()
    assert "a &lt;title&gt;" in text and "x &lt; y &amp; z" in text and "<td class=\"left\">&lt;b&gt;</td>" in text
    assert re.findall(r'href="([^"]+)"', text) == ["sub/m%20a.mrc"] and report.files == ["sub/m a.mrc"]


@pytest.mark.slow
def test_umap_figures_when_asked(tmp_path):
    out = analyze_run(MinimalRun(n=120), tmp_path, k=3, pcs=1, pc_steps=2, umap=True, progress=False)
    assert np.load(tmp_path / "z_umap.npy").shape == (120, 2)
    assert {"umap_kmeans.png", "umap_norm.png"} <= set(out.files)


def test_a_graph_path_between_separate_clusters_is_made_and_noted(tmp_path):
    from cryonb.core.analysis.run_analysis import _graph_traversal

    run = MinimalRun(zdim=2, n=120)
    run.z[60:] += np.float32(40)  # two clusters far apart: a k-NN graph in two parts
    notes = []
    (a, b), maps, paths = _graph_traversal(run, run.z, np.array([0, 119]), 6, tmp_path / "graph_path", run.apix, notes)
    particles = np.load(tmp_path / "graph_path" / "particles.npy")
    assert len(maps) == len(paths) == 6 and particles[0] == 0 and particles[-1] == 119
    assert (particles < 60).any() and (particles >= 60).any()  # it crosses from one cluster to the other
    assert len(notes) == 1 and notes[0].startswith("graph path: ") and "2 separate parts" in notes[0] and "jumps 1 gap" in notes[0]
