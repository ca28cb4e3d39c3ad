"""Each particle's density in regions of the consensus: fixed features the encoder reads."""

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import balanced_accuracy_score, roc_auc_score
from sklearn.model_selection import cross_val_predict

from cryonb.core.errors import InputError
from cryonb.core.phantoms import hinge
from cryonb.core.region_features import feature_count, region_features
from cryonb.core.simulate import simulate
from cryonb.core.training import Trainer, TrainConfig

D = 32
TINY = dict(zdim=2, enc_width=32, enc_depth=2, dec_width=32, dec_depth=2, batch_size=50, lr=1e-3)



def _probe(features: np.ndarray, labels: np.ndarray) -> float:
    """Balanced accuracy of a linear probe's out-of-fold predictions (0.5: chance)."""
    predicted = cross_val_predict(LogisticRegression(max_iter=2000, class_weight="balanced"), features, labels, cv=5)
    return balanced_accuracy_score(labels, predicted)


def test_the_regions_hold_a_missing_subunit_in_every_view(rare_state):
    features = region_features(rare_state.particles, resolution=12.0, progress=False)
    assert features.shape == (1000, feature_count(32)) == (1000, 96) and features.dtype == np.float32
    np.testing.assert_allclose(features.mean(0), 0, atol=1e-4)
    np.testing.assert_allclose(features.std(0), 1, atol=1e-3)
    rare = rare_state.state == 1
    best = max(max(a, 1 - a) for a in (roc_auc_score(rare, column) for column in features.T))
    assert best > 0.93, best  # one region alone: the subunit
    assert _probe(features, rare) > 0.85  # measured 0.89


def test_images_of_noise_hold_nothing():
    noise = simulate(torch.stack([hinge(D)]), 1000, D=D, snr=1e-8, seed=4, progress=False)
    features = region_features(noise.particles, resolution=12.0, centres=8, progress=False)
    assert features.shape == (1000, 24)
    assert abs(_probe(features, np.arange(1000) % 5 == 0) - 0.5) < 0.06  # measured 0.50 with 96


def test_the_encoder_reads_them_and_a_resumed_run_keeps_them(rare_state, tmp_path, monkeypatch):
    particles = rare_state.particles.subset(np.arange(200))
    trainer = Trainer(particles, TrainConfig(regions=4, seed=0, **TINY), run_dir=tmp_path / "run")
    features = trainer.model.latents.features
    assert features.shape == (200, 12) and float(features.std()) > 0.5
    assert trainer.model.latents.predict is None  # no weight: nothing predicts them
    np.testing.assert_allclose(features.cpu().numpy(), region_features(particles, centres=4, progress=False), atol=1e-5)
    trainer.fit(1, progress=False)
    z = trainer.embed()
    with monkeypatch.context() as patch:  # a resumed run reads them from its checkpoint, not the images
        patch.setattr("cryonb.core.region_features.region_features", lambda *a, **k: pytest.fail("computed again"))
        resumed = Trainer.from_run(tmp_path / "run", particles)
    assert torch.equal(resumed.model.latents.features, features)
    np.testing.assert_allclose(resumed.embed(), z, atol=1e-5)
    with torch.no_grad():  # the latents move with the features: the encoder reads them
        trainer.model.latents.features.mul_(-1)
    assert np.abs(trainer.embed() - z).max() > 1e-3


@pytest.mark.parametrize("change", [dict(regions=-1), dict(regions=4, latents="table"), dict(regions=4, poses="table"),
                                    dict(region_weight=1.0), dict(regions=4, region_weight=-1.0),
                                    dict(regions=4, region_input=False)])
def test_regions_need_an_encoder_and_known_poses(change):
    with pytest.raises(InputError, match="regions"):
        TrainConfig(**change).validate()


@pytest.mark.parametrize("read", [True, False])
def test_with_a_weight_z_is_trained_to_predict_them(rare_state, read):
    """The loss adds the weighted squared error of z's linear prediction of the features, per particle
    as the KL term; trained, z explains part of their variance (12: four centres' standardised features),
    whether the encoder reads them or (``region_input`` False) must find them in the images."""
    particles = rare_state.particles.subset(np.arange(200))
    trainer = Trainer(particles, TrainConfig(regions=4, region_weight=500.0, region_input=read, seed=0, **TINY))
    idx = torch.arange(50)

    def features_error():
        images, rotations, ctf = trainer.data.batch(idx)
        return trainer.model(idx, images, rotations, ctf).features_error

    with torch.no_grad():
        before = features_error()
        loss, error, kl = trainer.loss(idx)
    pixels = len(trainer.data.half)
    assert before.shape == (50,)
    assert float(loss) == pytest.approx(float(error + trainer.config.kl_weight * kl / pixels + 500.0 * before.mean() / pixels), rel=1e-5)
    trainer.fit(60, progress=False)
    with torch.no_grad():
        after = float(features_error().mean())
    assert after < 0.8 * 12 < float(before.mean()), (after, float(before.mean()))
    z = trainer.embed()
    with torch.no_grad():
        trainer.model.latents.features.mul_(-1)
    assert (np.abs(trainer.embed() - z).max() > 1e-3) == read  # read, the latents move with them
