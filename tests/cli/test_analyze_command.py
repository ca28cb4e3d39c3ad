"""`cryonb analyze RUN`: the files it writes on a small trained run, and a report that links them."""

import html
import json
import re
import shutil
from pathlib import Path
from urllib.parse import unquote

import numpy as np
import pytest

from cryonb.cli import main as cli
from cryonb.core.analysis.landscape import Landscape
from cryonb.core.io.mrc import read_map
from cryonb.core.simulate import simulate

SMALL = ["--zdim", "2", "--width", "32", "--depth", "2", "--batch-size", "16", "--lr", "1e-3", "--device", "cpu"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sim")
    star = simulate("hinge", 80, D=16, apix=8.0, snr=1.0, seed=1, progress=False).save(folder)["star"]
    run = folder / "run"
    assert cli(["train", str(star), "--outdir", str(run), "--epochs", "1", *SMALL]) == 0
    return run


def linked(report):
    return {unquote(html.unescape(m)) for m in re.findall(r'href="([^"]+)"', report.read_text())}


def test_analyze_writes_maps_figures_and_a_report_linking_them(run_dir, tmp_path, capsys):
    out = tmp_path / "analysis"
    args = ["analyze", str(run_dir), "--outdir", str(out), "-k", "3", "--pc-steps", "4", "--no-umap", "--device", "cpu",
            "--landscape", "--landscape-maps", "40", "--landscape-box", "8", "--landscape-pcs", "3",
            "--landscape-states", "2", "--landscape-epochs", "20"]
    assert cli(args) == 0
    assert "wrote" in capsys.readouterr().out
    maps = sorted((out / "kmeans3").glob("vol_*.mrc"))
    assert [m.name for m in maps] == ["vol_000.mrc", "vol_001.mrc", "vol_002.mrc"]
    volume, apix = read_map(maps[0])
    assert volume.shape == (16, 16, 16) and apix == pytest.approx(8.0)
    assert len(list((out / "pc1").glob("vol_*.mrc"))) == 4 and len(list((out / "pc2").glob("vol_*.mrc"))) == 4
    labels = np.load(out / "kmeans3" / "labels.npy")
    assert labels.shape == (80,) and set(labels) == {0, 1, 2}
    assert np.load(out / "z_pca.npy").shape == (80, 2) and not (out / "z_umap.npy").exists()
    # The simulated particles are found from the run's config: galleries and defocus are there.
    assert len(list((out / "kmeans3").glob("gallery_*.png"))) == 3 and (out / "pca_defocus.png").exists()
    land = out / "landscape"
    assert read_map(land / "mask.mrc")[0].shape == (8, 8, 8) and read_map(land / "mask.mrc")[1] == pytest.approx(16.0)
    assert np.load(land / "particle_states.npy").shape == (80,) and np.load(land / "map_pcs.npy").shape == (40, 3)
    assert len(list(land.glob("state_*.mrc"))) == 2
    saved = Landscape.load(land)  # what a notebook opens for LandscapeView
    assert saved.box == 8 and saved.particle_coords.shape == (80, 3) and saved.heldout_r2 <= 1
    report = out / "report.html"
    text = report.read_text()
    # Self-contained: figures embedded, no scripts, nothing fetched from the network.
    assert "data:image/png;base64," in text and "<script" not in text and not re.search(r'(src|href)="(https?:)?//', text)
    links = linked(report)
    for must in ["kmeans3/vol_000.mrc", "kmeans3/labels.npy", "pc1/vol_003.mrc", "pc2/vol_000.mrc", "pca_kmeans.png",
                 "graph_path/vol_003.mrc", "graph_path/particles.npy", "landscape/mask.mrc", "landscape/state_001.mrc", "landscape/particle_map_pcs.npy", "summary.json"]:
        assert must in links, must
    assert all((out / link).is_file() for link in links)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["k"] == 3 and summary["notes"] == []
    assert summary["landscape"]["maps"] == 40 and sum(summary["landscape"]["state_counts"]) == 80
    assert summary["landscape"]["r2_heldout"] <= 1 and len(summary["landscape"]["r2_heldout_per_pc"]) == 3


def test_analyze_without_particles_says_so(run_dir, tmp_path, capsys):
    config = json.loads((run_dir / "config.json").read_text())
    moved = Path(shutil.copytree(run_dir, tmp_path / "run", ignore=shutil.ignore_patterns("analysis")))
    config["config"]["particles"] = str(tmp_path / "gone.star")
    (moved / "config.json").write_text(json.dumps(config))
    assert cli(["analyze", str(moved), "-k", "2", "--pcs", "1", "--pc-steps", "2", "--no-umap", "--device", "cpu"]) == 0
    printed = capsys.readouterr().out
    assert "could not be read" in printed and "no particle galleries" in printed
    text = (moved / "analysis" / "report.html").read_text()
    assert "No particle images" in text and "No defocus colouring" in text
    assert not list((moved / "analysis" / "kmeans2").glob("gallery_*.png")) and not (moved / "analysis" / "pc2").exists()


def test_analyze_divide_asks_each_large_enough_cluster(run_dir, tmp_path):
    out = tmp_path / "divided"
    assert cli(["analyze", str(run_dir), "--outdir", str(out), "-k", "2", "--pcs", "0", "--no-umap", "--device", "cpu", "--divide"]) == 0
    assert json.loads((out / "summary.json").read_text())["divisions"] == []  # 80 particles: no cluster reaches 100
    assert "Clusters that hide two states" in (out / "report.html").read_text()

def test_analyze_refuses_bad_options(run_dir, capsys):
    assert cli(["analyze", str(run_dir), "-k", "0", "--no-umap", "--device", "cpu"]) == 2
    assert "k=0 is out of range" in capsys.readouterr().err


@pytest.mark.slow
def test_analyze_a_cryodrgn_run_folder(tmp_path):
    run = Path(shutil.copytree(Path(__file__).resolve().parents[1] / "data" / "cryodrgn_runs" / "vae_gaussian_fourier",
                               tmp_path / "drgn"))
    assert cli(["analyze", str(run), "-k", "2", "--pcs", "1", "--pc-steps", "2", "--no-umap", "--device", "cpu"]) == 0
    links = linked(run / "analysis" / "report.html")
    assert {"kmeans2/vol_001.mrc", "pc1/vol_001.mrc", "graph_path/vol_001.mrc"} <= links
    assert read_map(run / "analysis" / "kmeans2" / "vol_000.mrc")[0].shape == (16, 16, 16)
