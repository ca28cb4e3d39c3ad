"""The model recovers known heterogeneity on small simulated datasets (CPU, seeded).

Full-size versions (50,000 images at D=128, SNR 0.1, on a GPU) are in benchmarks/bench_accuracy.py.
"""

import numpy as np
import pytest
from scipy.stats import spearmanr
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score

from cryonb.core.simulate import simulate
from cryonb.core.training import Trainer, TrainConfig

SMALL = dict(enc_width=128, dec_width=128, batch_size=32, lr=1e-3, seed=0, device="cpu")


@pytest.mark.slow
def test_hinge_latent_follows_the_reaction_coordinate():
    sim = simulate("hinge", 2000, D=24, apix=8.0, snr=1.0, seed=0, progress=False)
    trainer = Trainer(sim.particles, TrainConfig(zdim=1, **SMALL)).fit(20, progress=False)
    rho = spearmanr(trainer.embed()[:, 0], sim.reaction_coordinate)[0]
    assert abs(rho) >= 0.9, f"|Spearman(z, hinge angle)| = {abs(rho):.3f}"


def test_mixture_latents_separate_the_assemblies():
    sim = simulate("mixture", 1000, D=24, apix=8.0, snr=1.0, seed=0, progress=False)
    trainer = Trainer(sim.particles, TrainConfig(zdim=4, **SMALL)).fit(12, progress=False)
    labels = KMeans(3, n_init=10, random_state=0).fit_predict(trainer.embed())
    ari = adjusted_rand_score(sim.state, labels)
    assert ari >= 0.9, f"k-means ARI = {ari:.3f}"
    assert np.bincount(labels).min() > 200  # three real clusters, not one outlier group
