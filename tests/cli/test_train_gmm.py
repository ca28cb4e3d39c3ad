"""`cryonb train --decoder gmm --neutral-map MAP`: a run whose decoder is a Gaussian mixture."""

import json

import pytest

from cryonb.cli import main as cli
from cryonb.core.gmm import GaussianDecoder, moving_domain
from cryonb.core.run import Run
from cryonb.core.simulate import simulate


pytestmark = pytest.mark.usefixtures("one_torch_thread")

SMALL = ["--zdim", "1", "--width", "16", "--depth", "1", "--batch-size", "16", "--lr", "1e-3", "--device", "cpu"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("gmm")
    system = moving_domain(16, n_body=16, n_domain=4, apix=4.0)
    maps, _ = system.maps(4)
    star = simulate(list(maps), n=64, apix=4.0, snr=1.0, seed=1, progress=False).save(folder)["star"]
    system.at(0.5).save(folder / "neutral.npz")  # a fitted mixture: no fit in this test (tests/core/gmm fit maps)
    return star, folder / "neutral.npz"


def test_train_with_a_gaussian_decoder(data, tmp_path):
    star, consensus = data
    assert cli(["train", str(star), "--outdir", str(tmp_path / "run"), "--epochs", "1", "--decoder", "gmm",
                "--neutral-map", str(consensus), "--gmm-mode", "position", *SMALL]) == 0
    config = json.loads((tmp_path / "run" / "config.json").read_text())["config"]
    assert config["decoder"] == "gmm" and config["neutral_map"] == str(consensus.resolve())
    assert config["gmm_mode"] == "position" and config["latents"] == "gradient"
    run = Run.open(tmp_path / "run", device="cpu")
    assert isinstance(run.model.decoder, GaussianDecoder) and run.z.shape == (64, 1)


def test_a_gaussian_decoder_needs_a_neutral_map(data, tmp_path, capsys):
    star, _ = data
    assert cli(["train", str(star), "--outdir", str(tmp_path / "run"), "--epochs", "1", "--decoder", "gmm", *SMALL]) != 0
    assert "needs neutral_map" in capsys.readouterr().err
