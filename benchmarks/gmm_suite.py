"""Gaussian-mixture decoder against cryonb's MLP decoder on e2gmm's "rigid body with a small domain
moving linearly" (JSON lines on stdout).

    python benchmarks/gmm_suite.py --box 64 --particles 20000 --epochs 20 --device cuda
    python benchmarks/gmm_suite.py --box 32 --particles 1000 --epochs 6 --device cpu --models gmm   # CPU check

Simulates the moving domain (:func:`cryonb.core.gmm.moving_domain`, ``--states`` maps along the
line) with cryonb's simulator (CTF, noise at ``--snr``), fits the neutral mixture to the particles'
consensus back-projection, trains the Gaussian model and the MLP model with a ``--zdim`` latent,
and reports per model: |Spearman(z₁, truth)| (the best of the latent dimensions), the FSC=0.5
resolution of the maps at the median latent of the first, middle and last states against their
true maps, seconds per epoch, images/s and peak GPU memory.

CPU check (1,000 images, box 32, SNR 0.3, 20 states, 6 epochs, widths 64, the command above plus
``--states 20 --snr 0.3 --apix 4 --threads 1 --width 64 --depth 2 --max-gaussians 256
--fit-resolution 4 --batch 50``): the Gaussian model's |Spearman| 0.959, maps at FSC 0.5 of
12.3-12.7 Å (Nyquist 8 Å), 224 Gaussians fitted in 12 s; the MLP model (image encoder, width 256)
0.005 and 23-26 Å at cryonb's CPU learning rate (1e-4), 0.075 and 13.7 Å with ``--mlp-lr 1e-3``.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch


def spearman(z: np.ndarray, truth: np.ndarray) -> float:
    from scipy.stats import spearmanr

    z = z.reshape(len(z), -1)
    return max(abs(float(spearmanr(z[:, i], truth).statistic)) for i in range(z.shape[1]))


def map_resolutions(volumes_for, z: np.ndarray, sim, apix: float) -> list[float]:
    """FSC=0.5 resolution (Å) of the map at the median latent of the first, middle and last states."""
    from cryonb.core.fsc import fsc

    K = len(sim.volumes)
    out = []
    for k in (0, K // 2, K - 1):
        members = sim.state == k
        if not members.any():
            continue
        zk = np.median(z[members], axis=0, keepdims=True)
        vol = volumes_for(zk)[0]
        out.append(round(fsc(vol, sim.volumes[k], apix=apix, mask="soft").resolution(0.5), 2))
    return out


def peak_memory(device) -> float | None:
    if torch.device(device).type != "cuda":
        return None
    return round(torch.cuda.max_memory_allocated() / 2**30, 3)


def train_gmm(particles, args, device):
    """The neutral model fitted to the consensus map, then the Gaussian model trained by cryonb's Trainer
    (``decoder="gmm", latents="gradient"``) when it offers the gradient encoder, else by the loop below."""
    import tempfile

    from cryonb.core import training
    from cryonb.core.gmm.config import decoder_from_config, latents_from_config
    from cryonb.core.gmm.loss import image_loss
    from cryonb.core.gmm.setup import neutral_model, prepare

    t0 = time.perf_counter()
    data = training.ImageData(particles, device=device)
    fit = neutral_model(particles, data.D, data.apix, resolution=args.fit_resolution * data.apix,
                        max_gaussians=args.max_gaussians, device=device, progress=False)
    fit_seconds = time.perf_counter() - t0
    neutral = Path(tempfile.mkdtemp()) / "neutral.npz"
    fit.mixture.save(neutral)
    extra = {"gaussians": len(fit.mixture), "fit_seconds": round(fit_seconds, 2),
             "fit_resolution_095": round(fit.resolution(0.95), 2), "fit_stages": len(fit.stages)}
    config = training.TrainConfig(zdim=args.zdim, decoder="gmm", neutral_map=str(neutral), dec_width=args.width,
                                  dec_depth=args.depth, enc_width=args.width, enc_depth=args.depth, lr=args.lr,
                                  batch_size=args.batch, epochs=args.epochs, device=str(device))
    if "gradient" in getattr(training, "LATENT_SOURCES", ()):
        trainer = training.Trainer(particles, replace(config, latents="gradient"))
        seconds = []
        for _ in range(args.epochs):
            trainer.fit(1, progress=False)
            seconds.append(trainer.history[-1]["seconds"])
        return trainer.embed(), trainer.volumes, seconds, {**extra, "loop": "Trainer"}

    decoder = decoder_from_config(config, data.D).to(device)
    encoder = latents_from_config(config, decoder).to(device)
    prepare(encoder, data)
    params = list(decoder.parameters()) + list(encoder.parameters())
    opt = torch.optim.Adam(params, lr=args.lr)
    g = torch.Generator().manual_seed(0)
    seconds = []
    for _ in range(args.epochs):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        for idx in torch.randperm(len(data), generator=g).split(args.batch):
            idx = idx.to(device)
            images, rotations, ctf = data.batch(idx)
            latents = encoder(idx, images, torch.randn(len(idx), args.zdim, device=device), rotations=rotations, ctf=ctf)
            pred = decoder(encoder.coords @ rotations, latents.z) * ctf
            error = image_loss(args.loss, pred, images, encoder.rings).mean()
            loss = error + config.kl_weight * latents.prior.mean() / len(data.half)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        seconds.append(time.perf_counter() - start)
    with torch.no_grad():
        z = torch.cat([encoder.means(None, *data.batch(torch.arange(s, min(s + 256, len(data)), device=device)))
                       for s in range(0, len(data), 256)]).cpu().numpy()

    def volumes_for(zk):
        with torch.no_grad():
            return (decoder.volumes(torch.as_tensor(zk, dtype=torch.float32, device=device)) * data.scale).cpu()

    return z, volumes_for, seconds, {**extra, "loop": "benchmark"}


def train_mlp(particles, args, device):
    from cryonb.core.training import Trainer, TrainConfig

    config = TrainConfig(zdim=args.zdim, epochs=args.epochs, device=str(device), batch_size=args.batch, lr=args.mlp_lr)
    trainer = Trainer(particles, config)
    epoch_seconds = []
    for _ in range(args.epochs):
        trainer.fit(1, progress=False)
        epoch_seconds.append(trainer.history[-1]["seconds"])
    return trainer.embed(), trainer.volumes, epoch_seconds, {"dec_width": trainer.config.dec_width}


def main(argv=None):
    from cryonb.core.gmm.phantom import moving_domain
    from cryonb.core.simulate import simulate

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--box", type=int, default=64)
    ap.add_argument("--particles", type=int, default=20000)
    ap.add_argument("--states", type=int, default=50)
    ap.add_argument("--snr", type=float, default=0.1)
    ap.add_argument("--apix", type=float, default=3.0)
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--zdim", type=int, default=1)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--width", type=int, default=256)
    ap.add_argument("--depth", type=int, default=3)
    ap.add_argument("--lr", type=float, default=1e-3, help="the Gaussian model's learning rate")
    ap.add_argument("--loss", default="mse", choices=("mse", "frc"),
                    help="the Gaussian model's loss in the benchmark's own loop: squared error with CTF, or 1 - FRC")
    ap.add_argument("--mlp-lr", type=float, default=None, help="the MLP model's (default: cryonb's, 2e-4 GPU / 1e-4 CPU)")
    ap.add_argument("--fit-resolution", type=float, default=3.0, help="neutral-model target, in pixels (3: 2/3 Nyquist)")
    ap.add_argument("--max-gaussians", type=int, default=2048)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--models", default="gmm,mlp", help="comma-separated: gmm, mlp")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device if args.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu"))

    system = moving_domain(args.box, n_body=max(60, args.box * 2), n_domain=max(12, args.box // 3), apix=args.apix)
    maps, _ = system.maps(args.states)
    t0 = time.perf_counter()
    sim = simulate(list(maps), n=args.particles, snr=args.snr, apix=args.apix, device=device, progress=False, seed=1)
    print(json.dumps({"stage": "simulate", "particles": args.particles, "box": args.box, "snr": args.snr,
                      "seconds": round(time.perf_counter() - t0, 2), "device": str(device)}), flush=True)
    truth = sim.reaction_coordinate
    trainers = {"gmm": train_gmm, "mlp": train_mlp}
    runs = [(name, trainers[name]) for name in args.models.split(",")]
    for name, train in runs:
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        z, volumes_for, seconds, extra = train(sim.particles, args, device)
        record = {"model": name, "zdim": args.zdim, "epochs": args.epochs, "spearman": round(spearman(z, truth), 4),
                  "map_fsc05_A": map_resolutions(volumes_for, z, sim, args.apix),
                  "seconds_per_epoch": round(float(np.mean(seconds[1:] or seconds)), 3),
                  "images_per_s": round(args.particles / float(np.mean(seconds[1:] or seconds)), 1),
                  "peak_gpu_GiB": peak_memory(device), **extra}
        print(json.dumps(record), flush=True)


if __name__ == "__main__":
    main()
