"""A trainer small enough to train a few epochs in a second or two on a laptop CPU."""

import numpy as np
import pytest
import torch

from cryonb.core.particles import ParticleSet
from cryonb.core.rotations import random_rotations
from cryonb.core.training import TrainConfig, Trainer


@pytest.fixture
def tiny_trainer():
    """256 noise images of 16² pixels with random poses and CTFs: 8 batches of 32 per epoch."""
    n, box = 256, 16
    rng = np.random.default_rng(0)
    ctf = np.tile(np.array([15000, 15000, 0, 300, 2.7, 0.1, 0, 0], np.float32), (n, 1))
    particles = ParticleSet(
        images=rng.standard_normal((n, box, box), dtype=np.float32),
        rotations=random_rotations(n, torch.Generator().manual_seed(0)).numpy(),
        ctf=ctf,
        apix=4.0,
    )
    trainer = Trainer(particles, TrainConfig(zdim=2, enc_width=32, dec_width=32, batch_size=32, device="cpu"))
    yield trainer
    trainer.stop()
