import json

import numpy as np
import pytest

from cryonb.cli import main as cli
from cryonb.core.io.pickles import read_cryodrgn_poses
from cryonb.core.particles import load_particles
from cryonb.core.simulate import simulate

QUICK = ["--width", "32", "--depth", "1", "--batch-size", "16", "--lr", "1e-3", "--device", "cpu", "--pretrain-images", "16",
         "--search-epochs", "1", "--map-epochs", "1", "--base-resolution", "0", "--iterations", "1", "--keep", "2", "--radius", "3", "6",
         "--shifts", "3", "--shift-extent", "1"]


@pytest.fixture(scope="module")
def star(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sim")
    return simulate("hinge", 48, D=16, apix=8.0, snr=10.0, seed=1, progress=False).save(folder)["star"]


def test_abinit_writes_poses_map_and_alignment_then_continues(star, tmp_path, capsys):
    run = tmp_path / "run"
    assert cli(["abinit", str(star), "--outdir", str(run), "--epochs", "2", "--reference", str(star), "--starts", "2", *QUICK]) == 0
    out = capsys.readouterr().out
    assert "median error" in out and "map:" in out
    poses = load_particles(run / "poses.star")
    R, t = read_cryodrgn_poses(run / "poses.pkl", 16)
    np.testing.assert_allclose(poses.rotations, R, atol=1e-4)
    assert len(poses) == 48 and poses.images is not None and poses.ctf is not None
    report = json.loads((run / "alignment.json").read_text())
    assert report["median_error_degrees"] <= report["median_error_other_hand_degrees"]
    assert (run / "map.mrc").exists() and json.loads((run / "abinit.json").read_text())["search_epochs"] == 1
    assert json.loads((run / "abinit.json").read_text())["starts"] == 2 and (run / "starts" / "1" / "checkpoints").is_dir()
    # the same command with more epochs continues the run
    assert cli(["abinit", str(star), "--outdir", str(run), "--epochs", "3", "--device", "cpu"]) == 0
    assert "continuing" in capsys.readouterr().out
    assert json.loads((run / "config.json").read_text())["config"]["epochs"] == 3
    from cryonb.core.abinit import Abinit

    chosen = Abinit.from_run(run).history[2]  # the second start caught up and the better of two kept at epoch 3
    assert chosen["start"] in (0, 1) and len(chosen["start_scores"]) == 2


def test_abinit_refuses_a_reference_of_other_particles(star, tmp_path, capsys):
    other = simulate("hinge", 10, D=16, apix=8.0, snr=None, seed=2, progress=False).save(tmp_path / "other")["star"]
    assert cli(["abinit", str(star), "--outdir", str(tmp_path / "run"), "--reference", str(other), *QUICK]) == 2
    assert "10 poses for 48 particles" in capsys.readouterr().err


def test_abinit_classes_write_labels_and_a_map_per_class(star, tmp_path, capsys):
    run = tmp_path / "run"
    assert cli(["abinit", str(star), "--outdir", str(run), "--epochs", "2", "--classes", "2", "--starts", "1", *QUICK]) == 0
    labels = np.load(run / "classes.npy")
    assert labels.shape == (48,) and set(labels.tolist()) <= {0, 1}
    assert (run / "map_class0.mrc").exists() and (run / "map_class1.mrc").exists() and not (run / "map.mrc").exists()
    assert json.loads((run / "abinit.json").read_text())["classes"] == 2
    assert cli(["abinit", str(star), "--outdir", str(tmp_path / "both"), "--classes", "2", "--zdim", "4", *QUICK]) == 2
    assert "use one: --classes K" in capsys.readouterr().err
