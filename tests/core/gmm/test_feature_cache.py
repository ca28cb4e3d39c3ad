"""The gradient encoder's features are computed once per particle for training, not at every step."""

import torch

from cryonb.core.gmm import GradientEncoder, moving_domain
from cryonb.core.simulate import simulate
from cryonb.core.training import Trainer, TrainConfig


def trainer(tmp_path, name):
    system = moving_domain(16, n_body=16, n_domain=4)
    maps, _ = system.maps(4)
    ps = simulate(list(maps), n=64, snr=1.0, apix=4.0, progress=False, seed=1).particles
    system.at(0.5).save(tmp_path / "neutral.npz")
    config = TrainConfig(zdim=1, decoder="gmm", neutral_map=str(tmp_path / "neutral.npz"), dec_width=16, dec_depth=1,
                         enc_width=16, enc_depth=1, batch_size=16, lr=1e-3, device="cpu")
    return Trainer(ps, config, run_dir=tmp_path / name)


def count_feature_batches(monkeypatch):
    calls = []
    original = GradientEncoder.features

    def counted(self, images, rotations, ctf):
        calls.append(len(images))
        return original(self, images, rotations, ctf)

    monkeypatch.setattr(GradientEncoder, "features", counted)
    return calls


def test_cached_features_train_as_per_step_features_do(tmp_path, monkeypatch):
    calls = count_feature_batches(monkeypatch)
    cached = trainer(tmp_path, "cached")
    calls.clear()  # the scaler's pass in prepare
    cached.fit(2, progress=False)
    assert sum(calls) == 64  # every particle once, for two epochs of training

    per_step = trainer(tmp_path, "per_step")
    assert not per_step.model.latents.cache_features(per_step.data, budget=0)  # too big: computed per step
    calls.clear()
    per_step.fit(2, progress=False)
    assert sum(calls) == 2 * 64

    for a, b in zip(cached.history, per_step.history):
        assert abs(a["loss"] - b["loss"]) <= 1e-5 * abs(b["loss"])
    z_cached, z_per_step = cached.embed(), per_step.embed()
    assert torch.allclose(torch.as_tensor(z_cached), torch.as_tensor(z_per_step), atol=1e-4)


def test_a_new_neutral_snapshot_drops_the_cache(tmp_path):
    t = trainer(tmp_path, "run")
    t.fit(1, progress=False)
    encoder = t.model.latents
    assert encoder._cache is not None and encoder._cache.shape == (64, encoder.scaler.mean.numel())
    encoder.snapshot()
    assert encoder._cache is None
