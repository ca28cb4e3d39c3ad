"""Does a run's latent space hold the assembly set's rare state, or does the clustering miss it?

    python -m benchmarks.suite.rare_probe RUN_Z [RUN_Z ...] [--n 10000] [--seed 0]

For each latent file (``z.npy`` of ``train.py --results``, ``z.pkl`` of ``drgn.py --results``) of an
assembly set of ``--n`` particles generated with ``--seed``: the balanced accuracy (0.5 is chance) of a
linear probe and of a nearest-neighbour vote telling the rare state (70S-ABC, 3 %) from its nearest
class (70S-AB, which has 5 % more of the mass), trained and scored on out-of-fold particles
(:func:`benchmarks.suite.metrics.rare_separability`), and the rare recall of Gaussian mixtures with
more components than classes. The probes are told the classes; the suite's metrics are not.

    python -m benchmarks.suite.rare_probe --ideal SET_DIR [--images N] [--jsonl OUT]

gives instead the separation an ideal observer reaches (told the true maps, poses, shifts and CTFs):
d' = ‖image(70S-AB) − image(70S-ABC)‖ / σ of each rare particle, in all frequencies and up to 20, 30
and 40 Å, and the most of the rare state it finds (:func:`ideal_recall`): the ceiling for any method.

    python -m benchmarks.suite.rare_probe --gradient NEUTRAL.mrc SET_DIR [--gaussians 1024]

probes instead what an encoder could read before any training: each particle's loss gradients at a
neutral Gaussian mixture fitted to NEUTRAL.mrc (a consensus map, e.g. ``cryonb backproject``), the
input of cryonb's gradient encoder (:mod:`cryonb.core.gmm`), against its phase-flipped image.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from benchmarks.records import emit
from benchmarks.suite import metrics
from benchmarks.suite.drgn import read_latents
from benchmarks.suite.sets import ASSEMBLY_CLASSES, assembly_labels
from cryonb.core.variability import RESOLUTION

RARE, NEAREST, JUNK = (ASSEMBLY_CLASSES.index(c) for c in ("70S-ABC", "70S-AB", "junk"))


def probe(z: np.ndarray, labels: np.ndarray, components=(5, 6, 7, 8), seed: int = 0) -> dict:
    """Probe accuracies and the rare recall of mixtures of each number of ``components`` (junk left out)."""
    keep = labels != JUNK
    z, labels = np.asarray(z, float)[keep], labels[keep]
    result = metrics.rare_separability(z, labels, RARE, NEAREST, seed=seed)
    for k in components:
        result[f"gmm{k}_rare_recall"] = metrics.rare_recall(metrics.gmm_clusters(z, k, seed), labels, RARE)
    return result


def ideal_separation(folder: Path, images: int | None = None, resolution: float | None = None) -> np.ndarray:
    """d' of the rare particles (the first ``images``; None: all) at their own poses, shifts and CTFs: the
    noiseless 70S-AB and 70S-ABC images' distance over the noise σ, in the frequencies up to ``resolution`` Å
    (None: all). The two maps differ by one region, so its atoms alone are projected."""
    import torch

    from benchmarks.suite import imaging

    t = dict(np.load(Path(folder) / "truth.npz"))
    rare = np.flatnonzero(t["class"] == RARE)[:images]
    rotations = torch.as_tensor(imaging.euler_to_matrix(*t["euler"][rare].T))
    shifts, ctf = torch.as_tensor(t["shifts"][rare]), torch.as_tensor(t["ctf"][rare])
    box, apix = int(t["box"]), float(t["apix"])
    region = t["region"][list(t["region_names"]).index("C")]  # 70S-ABC lacks it, 70S-AB has it
    coords, weights = (torch.as_tensor(np.asarray(a, float)) for a in (t["coords"][region], t["weights"][region]))
    image = torch.cat([imaging.apply_ctf(imaging.splat_images(coords, weights, float(t["atom_sigma"]), rotations[i:i + 32], shifts[i:i + 32],
                                                              box, apix), ctf[i:i + 32], apix) for i in range(0, len(rare), 32)])
    power = torch.fft.fft2(image).abs().pow(2) / box**2  # Parseval: sums to the image's Σ x²
    if resolution is not None:
        frequency = torch.fft.fftfreq(box, d=apix, dtype=torch.float64)
        power = power * ((frequency[:, None] ** 2 + frequency[None, :] ** 2).sqrt() <= 1 / resolution)
    return (power.sum((1, 2)).sqrt() / float(t["noise_sigma"])).numpy()


def ideal_recall(d: np.ndarray, odds: float, threshold: float | None = None) -> tuple[float, float]:
    """The ideal observer's recall of the rare state and its false alarms per common particle, with
    ``odds`` common particles per rare one: it calls a particle rare where the log likelihood ratio,
    N(±d'²/2, d'²), exceeds ``threshold`` (None: ln(odds), where the posterior passes one half)."""
    from scipy.stats import norm

    threshold = np.log(odds) if threshold is None else threshold
    return float(norm.cdf(d / 2 - threshold / d).mean()), float(norm.cdf(-d / 2 - threshold / d).mean())


def ideal_majority_recall(d: np.ndarray, odds: float) -> float:
    """The most the ideal observer's group can recall while the rare particles in it still outnumber
    the common ones (the suite's rare recall counts a group only then), ``odds`` common per rare."""
    recalls = [ideal_recall(d, odds, t) for t in np.linspace(-10, 20, 601)]
    return max((r for r, false in recalls if r > odds * false), default=0.0)


def gradient_separability(folder: Path, neutral: Path, gaussians: int = 1024, seed: int = 0, batch: int = 50) -> dict:
    """Probe accuracies on the 70S-AB and 70S-ABC particles' gradient features (both losses of
    :func:`cryonb.core.gmm.gradient_features`; all, the amplitudes' alone, and their first 8 and 32
    principal components) and on their phase-flipped images."""
    import torch
    from sklearn.decomposition import PCA

    from cryonb.core.gmm import gradient_features, ring_index
    from cryonb.core.gmm.config import neutral_for_box, unit_projection_scale
    from cryonb.core.imagedata import ImageData
    from cryonb.core.particles import load_particles

    truth = metrics.load_truth(Path(folder) / "truth.npz")
    pair = np.flatnonzero(np.isin(truth.labels, (RARE, NEAREST)))
    data = ImageData(load_particles(Path(folder) / "particles.star").subset(pair))
    m = unit_projection_scale(neutral_for_box(neutral, data.D, resolution_px=4.0, max_gaussians=gaussians))
    rings = ring_index(data.half.coords, data.D // 2)
    inputs = {"gradients, frc": [], "gradients, mse": [], "phase-flipped images": []}
    for start in range(0, len(pair), batch):
        images, rotations, ctf = data.batch(torch.arange(start, min(start + batch, len(pair))))
        for loss in ("frc", "mse"):
            inputs[f"gradients, {loss}"].append(gradient_features((m.positions, m.amplitudes, m.widths), data.D,
                                                                  data.half.coords @ rotations, images, ctf, rings, loss))
        inputs["phase-flipped images"].append(torch.view_as_real(images * ctf.sign()).flatten(1))
    y, result = truth.labels[pair], {}
    for name, x in inputs.items():
        x = torch.cat(x).numpy()
        variants = {name: x}
        if name.startswith("gradients"):
            variants[f"{name}, amplitudes"] = x.reshape(len(x), -1, 5)[:, :, 3]
            for k in (8, 32):
                variants[f"{name}, {k} PCs"] = PCA(k, random_state=seed).fit_transform(x)
        for key, v in variants.items():
            result[key] = metrics.rare_separability(v, y, RARE, NEAREST, seed=seed)["logistic"]
    return result


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("z", nargs="+", type=Path, help="latent files (or, with --ideal, the generated set's folder)")
    ap.add_argument("--ideal", action="store_true", help="the ideal observer's d' on a generated set instead")
    ap.add_argument("--gradient", type=Path, metavar="NEUTRAL", help="probe gradient features at a mixture fitted to this map instead")
    ap.add_argument("--gaussians", type=int, default=1024, help="with --gradient: the neutral mixture's largest size")
    ap.add_argument("--images", type=int, help="with --ideal: the first this many rare particles (default: all)")
    ap.add_argument("--n", type=int, default=10_000, help="particles in the set")
    ap.add_argument("--seed", type=int, default=0, help="the seed the set was generated with")
    ap.add_argument("--jsonl", help="with --ideal: append the records here")
    args = ap.parse_args(argv)
    if args.ideal:
        for folder in args.z:
            for resolution in (None, 20.0, RESOLUTION, 40.0):
                d = ideal_separation(folder, args.images, resolution)
                (one, one_false), (five, five_false) = ideal_recall(d, 1), ideal_recall(d, 5)
                emit({"set": str(folder), "resolution": resolution, "images": len(d), "d_median": round(float(np.median(d)), 3),
                      "d_5_95": [round(float(q), 3) for q in np.quantile(d, [0.05, 0.95])],
                      "recall_odds_1": round(one, 3), "false_alarms_odds_1": round(one_false, 4),
                      "recall_odds_5": round(five, 3), "false_alarms_odds_5": round(five_false, 4),
                      "majority_recall_odds_5": round(ideal_majority_recall(d, 5), 3)}, args.jsonl)
        return
    if args.gradient:
        for folder in args.z:
            values = ", ".join(f"{k} {v:.3f}" for k, v in gradient_separability(folder, args.gradient, args.gaussians).items())
            print(f"{folder}: linear probe (balanced accuracy), 70S-ABC against 70S-AB: {values}", flush=True)
        return
    labels = assembly_labels(args.n, args.seed)
    for path in args.z:
        z = read_latents(path)
        if len(z) != args.n:
            raise SystemExit(f"{path}: {len(z)} latents, but the set has {args.n} particles (--n)")
        values = ", ".join(f"{k} {v:.3f}" for k, v in probe(z, labels).items())
        print(f"{path}: {values}", flush=True)


if __name__ == "__main__":
    main()
