"""cryonb share: a run folder becomes a bundle (with --html a page too); an existing bundle needs --force."""

import json

import numpy as np
import pytest

from cryonb.cli import main
from cryonb.core.particles import load_particles, write_star
from cryonb.core.share import MANIFEST, open_bundle
from cryonb.core.simulate import simulate
from cryonb.core.training import TrainConfig, Trainer

TINY = dict(zdim=2, enc_width=32, enc_depth=2, dec_width=32, dec_depth=2, batch_size=16, lr=1e-3, device="cpu")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli-share")
    star = root / "particles.star"
    write_star(simulate("hinge", 48, D=16, apix=8.0, snr=1.0, seed=5, progress=False).particles, star)
    trainer = Trainer(load_particles(star), TrainConfig(**TINY), run_dir=root / "run").fit(1, progress=False)
    np.save(root / "run" / "z.npy", trainer.embed())  # as cryonb train leaves it
    return root / "run", star


@pytest.mark.slow  # three commands end to end, k-means included
def test_share_a_run_folder(run_dir, tmp_path, capsys):
    run, star = run_dir
    out = tmp_path / "bundle"
    assert main(["share", str(run), "-o", str(out), "--particles", str(star), "--coords", "pca", "--clusters", "2",
                 "--thumbnails", "8"]) == 0
    printed = capsys.readouterr().out
    assert f"wrote {out}:" in printed and "in all" in printed and "latents stored as float16" in printed
    assert "https://mybinder.org/v2/gh/OWNER/REPO/HEAD?labpath=explore.ipynb" in printed
    bundle = open_bundle(out)
    assert len(np.unique(bundle.clusters)) == 2 and bundle.coords.shape == (48, 2) and len(bundle.thumbnails.positions) == 8
    assert json.loads((out / MANIFEST).read_text())["particles"]["source"] == "particles.star"

    assert main(["share", str(run), "-o", str(out), "--particles", str(star)]) == 2
    assert "already holds a bundle" in capsys.readouterr().err

    assert main(["share", str(out), "-o", str(tmp_path / "again"), "--thumbnails", "0"]) == 0  # a bundle shared again
    again = open_bundle(tmp_path / "again")
    np.testing.assert_array_equal(again.clusters, bundle.clusters)
    assert again.thumbnails is None and "thumbnails: none" in repr(again)


def test_share_without_a_particle_file_says_what_to_pass(run_dir, tmp_path, capsys):
    run, _ = run_dir
    assert main(["share", str(run), "-o", str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err
    assert "does not record its particle file" in err and "--particles FILE" in err and "Traceback" not in err
