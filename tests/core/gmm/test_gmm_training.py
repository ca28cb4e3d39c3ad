"""The Gaussian decoder inside cryonb's Trainer and Run (TrainConfig(decoder="gmm"))."""

import numpy as np
import torch

from cryonb.core.gmm import GaussianDecoder, GradientEncoder, moving_domain
from cryonb.core.gmm.config import decoder_from_config, neutral_for_box
from cryonb.core.io.mrc import write_map
from cryonb.core.run import Run
from cryonb.core.simulate import simulate
from cryonb.core.training import Trainer, TrainConfig


def particles(D=16, n=64):
    system = moving_domain(D, n_body=16, n_domain=4)
    maps, _ = system.maps(4)
    return system, simulate(list(maps), n=n, snr=1.0, apix=4.0, progress=False, seed=1).particles


def test_trainer_trains_and_a_run_reopens_a_gaussian_decoder(tmp_path):
    system, ps = particles()
    system.at(0.5).save(tmp_path / "neutral.npz")
    config = TrainConfig(zdim=1, decoder="gmm", neutral_map=str(tmp_path / "neutral.npz"), dec_width=16, dec_depth=1,
                         enc_width=16, enc_depth=1, batch_size=16, lr=1e-3, device="cpu")
    trainer = Trainer(ps, config, run_dir=tmp_path / "run")
    assert isinstance(trainer.model.decoder, GaussianDecoder) and len(trainer.model.decoder) == 20
    assert isinstance(trainer.model.latents, GradientEncoder) and trainer.config.latents == "gradient"  # gmm's default
    assert trainer.model.latents.ready  # the feature scale was set from the first particles
    trainer.fit(2, progress=False)
    assert trainer.history[-1]["loss"] < trainer.history[0]["loss"]
    run = Run.open(tmp_path / "run", particles=ps, device="cpu")
    assert isinstance(run.model.decoder, GaussianDecoder)
    z = torch.zeros(1, 1)
    assert torch.allclose(run.model.decoder.volumes(z), trainer.model.decoder.volumes(z), atol=1e-6)


def test_a_map_is_fitted_once_and_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("CRYONB_CACHE", str(tmp_path / "cache"))
    system = moving_domain(16, n_body=16, n_domain=4)
    write_map(tmp_path / "consensus.mrc", system.at(0.5).render().numpy(), 4.0)
    first = neutral_for_box(tmp_path / "consensus.mrc", 16, resolution_px=4.0, max_gaussians=64, progress=False)
    assert len(list((tmp_path / "cache" / "gmm").glob("*.npz"))) == 1
    again = neutral_for_box(tmp_path / "consensus.mrc", 16, resolution_px=4.0, max_gaussians=64, progress=False)
    assert torch.equal(first.positions, again.positions) and first.apix == 4.0
    config = TrainConfig(zdim=0, decoder="gmm", neutral_map=str(tmp_path / "consensus.mrc"), dec_depth=1)
    from cryonb.core.gmm import config as gmm_config

    monkeypatch.setitem(gmm_config.GMM_DEFAULTS, "gmm_resolution", 4.0)  # the cached fit's options
    monkeypatch.setitem(gmm_config.GMM_DEFAULTS, "gmm_max_gaussians", 64)
    decoder = decoder_from_config(config, 16)
    assert len(decoder) == len(first)
    assert np.isfinite(decoder.volumes().numpy()).all()


def test_a_mask_chooses_the_movable_gaussians(tmp_path):
    from cryonb.core.gmm.config import movable_from_mask

    system = moving_domain(16, n_body=16, n_domain=4)
    neutral = system.at(0.0)
    domain_map = system.start.select(system.domain).render()
    mask = (domain_map > 0.5 * domain_map.max()).float()
    write_map(tmp_path / "mask.mrc", torch.nn.functional.interpolate(mask[None, None], size=32)[0, 0].numpy(), 2.0)
    movable = movable_from_mask(neutral, tmp_path / "mask.mrc")  # a mask of another box, same field of view
    assert movable[system.domain].float().mean() >= 0.75 and not movable[~system.domain].any()
