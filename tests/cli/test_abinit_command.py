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
    out = capsys.readouterr().out
    assert "continuing" in out and "of 2 kept; the others' poses from its" in out
    checks = json.loads((run / "checks.json").read_text())  # the findings, for scripts
    assert checks["settled"] is None and len(checks["poses_moved"]) == 1  # one search epoch: not judged
    assert len(checks["start_agreement"]) == 2 and checks["start_agreement"][checks["kept_start"]] == 0.0
    assert checks["reproduced"] == (max(checks["start_agreement"]) <= 25) and f"checks: {run / 'checks.json'}" in out
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


def test_abinit_warns_when_the_poses_have_not_settled(tmp_path, capsys):
    """Images of noise: every search epoch turns the poses far, and the run says they are likely wrong."""
    star = simulate("hinge", 48, D=16, apix=8.0, snr=1e-6, seed=2, progress=False).save(tmp_path / "noise")["star"]
    quick = [*QUICK]
    quick[quick.index("--search-epochs") + 1] = "3"
    assert cli(["abinit", str(star), "--outdir", str(tmp_path / "run"), "--epochs", "7", "--starts", "1", *quick]) == 0
    captured = capsys.readouterr()
    turned = [float(t.rstrip("°")) for t in captured.out.split("search epoch (median): ")[1].splitlines()[0].split(", ")]
    assert len(turned) == 3 and turned[-1] > 20
    assert "the poses had not settled" in captured.err and "--classes K" in captured.err
    checks = json.loads((tmp_path / "run" / "checks.json").read_text())
    assert checks["settled"] is False and [round(m, 1) for m in checks["poses_moved"]] == turned


def report(history, classes):
    from cryonb.cli.abinit import _report
    from cryonb.core.abinit import pose_checks

    checks = pose_checks(history, classes)
    _report(checks, classes)
    return checks


def test_settled_poses_are_reported_without_a_warning(capsys):
    found = report([{"epoch": 1}, {"poses_moved": 131.2}, {"poses_moved": 13.9}, {"poses_moved": 7.0}], classes=False)
    assert found == {"poses_moved": [131.2, 13.9, 7.0], "settled": True}
    captured = capsys.readouterr()
    assert "131.2°, 13.9°, 7.0°" in captured.out and captured.err == ""
    assert report([{"poses_moved": 130.5}], classes=False)["settled"] is None  # one search epoch: from random poses, no judgement
    assert capsys.readouterr().err == ""
    assert report([{"poses_moved": 130.5}, {"poses_moved": 29.4}], classes=True)["settled"] is False
    assert "try another --classes or --seed" in capsys.readouterr().err


def test_the_other_starts_agreement_is_reported_and_a_solution_found_once_warned(capsys):
    found = report([{"epoch": 1}, {"start": 1, "start_scores": [2.0, 1.0, 1.5, 3.0], "start_agreement": [46.4, 0.0, 9.4, 9.9]}], classes=False)
    assert found == {"kept_start": 1, "start_agreement": [46.4, 0.0, 9.4, 9.9], "reproduced": True}
    captured = capsys.readouterr()
    assert "start 1 of 4 kept" in captured.out and "46.4°, 9.4°, 9.9°; 2 found the same poses" in captured.out
    assert captured.err == ""
    assert report([{"start": 2, "start_scores": [1, 1, 0], "start_agreement": [66.9, 58.1, 0.0]}], classes=False)["reproduced"] is False
    err = capsys.readouterr().err
    assert "no other start found the poses of the one kept (the nearest 58° away" in err and "--classes K" in err
    assert report([{"start": 2, "start_scores": [1, 1, 0], "start_agreement": [79.3, 121.5, 0.0]}], classes=True)["reproduced"] is None
    captured = capsys.readouterr()  # each class's map has a frame of its own: no judgement
    assert "79.3°, 121.5°; not judged with classes" in captured.out and captured.err == ""
    assert report([{"epoch": 1}], classes=False) == {}  # one start, no search yet: nothing to compare
    assert capsys.readouterr() == ("", "")
