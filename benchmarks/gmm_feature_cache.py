"""The Gaussian-mixture model's training speed with its gradient features cached once per particle
against computed at every step (same data, same losses expected).

    python benchmarks/gmm_feature_cache.py

e2gmm's moving domain at box 32 (250 Gaussians), 1,000 particles, one CPU thread; prints images/s
and the last loss of two epochs for each way.
"""

import tempfile
import time
from pathlib import Path

import torch

from cryonb.core.gmm import moving_domain
from cryonb.core.simulate import simulate
from cryonb.core.training import Trainer, TrainConfig


def main():
    tmp = Path(tempfile.mkdtemp())
    torch.set_num_threads(1)
    system = moving_domain(32, n_body=200, n_domain=50)
    maps, _ = system.maps(10)
    ps = simulate(list(maps), n=1000, snr=0.3, apix=4.0, progress=False, seed=1).particles
    system.at(0.5).save(tmp / "neutral.npz")
    for cache in (False, True):
        cfg = TrainConfig(zdim=1, decoder="gmm", neutral_map=str(tmp / "neutral.npz"), dec_width=64, dec_depth=2,
                          enc_width=64, enc_depth=2, batch_size=50, lr=1e-3, device="cpu")
        t = Trainer(ps, cfg)
        if not cache:
            t.model.latents.cache_features(t.data, budget=0)
        t.fit(1, progress=False)
        start = time.perf_counter()
        t.fit(2, progress=False)
        seconds = time.perf_counter() - start
        print(f"cache={cache}: {2 * len(ps) / seconds:.0f} images/s, loss {t.history[-1]['loss']:.6f}, gaussians {len(t.model.decoder)}")


if __name__ == "__main__":
    main()
