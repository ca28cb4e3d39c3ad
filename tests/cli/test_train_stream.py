"""`cryonb train --stream`: the run streams from RUN/cache, continues from it, and ends as in memory."""

import json

import numpy as np
import pytest

from cryonb.cli import main as cli
from cryonb.core.simulate import simulate

SMALL = ["--zdim", "2", "--width", "32", "--depth", "2", "--batch-size", "16", "--lr", "1e-3", "--device", "cpu"]


@pytest.fixture(scope="module")
def star(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sim")
    return simulate("hinge", 96, D=16, apix=8.0, snr=1.0, seed=1, progress=False).save(folder)["star"]


def test_train_streamed_from_the_run_folders_cache(star, tmp_path):
    run = tmp_path / "run"
    assert cli(["train", str(star), "--outdir", str(run), "--epochs", "1", "--stream", *SMALL]) == 0
    config = json.loads((run / "config.json").read_text())["config"]
    assert config["stream"] is True and config["cache_dir"] == str((run / "cache").resolve())
    cache = run / "cache" / "images_16_complex64.npy"
    built = cache.stat().st_mtime_ns
    assert cli(["train", str(star), "--outdir", str(run), "--epochs", "2"]) == 0  # continues, reusing the cache
    assert cache.stat().st_mtime_ns == built
    assert cli(["train", str(star), "--outdir", str(tmp_path / "memory"), "--epochs", "2", "--no-stream", *SMALL]) == 0
    np.testing.assert_array_equal(np.load(run / "z.npy"), np.load(tmp_path / "memory" / "z.npy"))


def test_runs_share_a_cache_given_by_cache_dir(star, tmp_path):
    shared = tmp_path / "shared-cache"
    for name in ("first", "second"):
        assert cli(["train", str(star), "--outdir", str(tmp_path / name), "--epochs", "1", "--stream",
                    "--cache-dir", str(shared), *SMALL]) == 0
        if name == "first":
            built = (shared / "images_16_complex64.npy").stat().st_mtime_ns
    assert (shared / "images_16_complex64.npy").stat().st_mtime_ns == built  # the second run read the first's cache
    assert not (tmp_path / "second" / "cache").exists()
    config = json.loads((tmp_path / "second" / "config.json").read_text())["config"]
    assert config["cache_dir"] == str(shared.resolve())
