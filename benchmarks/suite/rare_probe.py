"""Does a run's latent space hold the assembly set's rare state, or does the clustering miss it?

    python -m benchmarks.suite.rare_probe RUN_Z [RUN_Z ...] [--n 10000] [--seed 0]

For each latent file (``z.npy`` of ``train.py --results``, ``z.pkl`` of ``drgn.py --results``) of an
assembly set of ``--n`` particles generated with ``--seed``: the balanced accuracy (0.5 is chance) of a
linear probe and of a nearest-neighbour vote telling the rare state (70S-ABC, 3 %) from its nearest
class (70S-AB, which has 5 % more of the mass), trained and scored on out-of-fold particles
(:func:`benchmarks.suite.metrics.rare_separability`), and the rare recall of Gaussian mixtures with
more components than classes. The probes are told the classes; the suite's metrics are not.

    python -m benchmarks.suite.rare_probe --ideal SET_DIR [--images 64]

gives instead the separation an ideal observer reaches (told the true maps, poses, shifts and CTFs):
d' = ‖image(70S-AB) − image(70S-ABC)‖ / σ over the first images of a generated set.

    python -m benchmarks.suite.rare_probe --gradient NEUTRAL.mrc SET_DIR [--gaussians 1024]

probes instead what an encoder could read before any training: each particle's loss gradients at a
neutral Gaussian mixture fitted to NEUTRAL.mrc (a consensus map, e.g. ``cryonb backproject``), the
input of cryonb's gradient encoder (:mod:`cryonb.core.gmm`), against its phase-flipped image.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from benchmarks.suite import metrics
from benchmarks.suite.drgn import read_latents
from benchmarks.suite.sets import ASSEMBLY_CLASSES, assembly_labels

RARE, NEAREST, JUNK = (ASSEMBLY_CLASSES.index(c) for c in ("70S-ABC", "70S-AB", "junk"))


def probe(z: np.ndarray, labels: np.ndarray, components=(5, 6, 7, 8), seed: int = 0) -> dict:
    """Probe accuracies and the rare recall of mixtures of each number of ``components`` (junk left out)."""
    keep = labels != JUNK
    z, labels = np.asarray(z, float)[keep], labels[keep]
    result = metrics.rare_separability(z, labels, RARE, NEAREST, seed=seed)
    for k in components:
        result[f"gmm{k}_rare_recall"] = metrics.rare_recall(metrics.gmm_clusters(z, k, seed), labels, RARE)
    return result


def ideal_separation(folder: Path, images: int = 64) -> np.ndarray:
    """d' of each of the first ``images`` particles' poses: the noiseless 70S-AB and 70S-ABC images' distance over σ."""
    import torch

    from benchmarks.suite import imaging, sets

    t = dict(np.load(Path(folder) / "truth.npz"))
    rotations = torch.as_tensor(np.stack([imaging.euler_to_matrix(*e) for e in t["euler"][:images]]))
    shifts, ctf = torch.as_tensor(t["shifts"][:images]), torch.as_tensor(t["ctf"][:images])
    box, apix = int(t["box"]), float(t["apix"])

    def clean(k):
        coords, weights, sigma = (torch.as_tensor(np.asarray(a, float)) for a in sets.class_atoms(t, k))
        return torch.cat([imaging.apply_ctf(imaging.splat_images(coords, weights, sigma, rotations[i:i + 8], shifts[i:i + 8],
                                                                 box, apix), ctf[i:i + 8], apix) for i in range(0, images, 8)])

    return ((clean(NEAREST) - clean(RARE)).pow(2).sum((1, 2)).sqrt() / float(t["noise_sigma"])).numpy()


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
    ap.add_argument("--images", type=int, default=64, help="with --ideal: poses to average over")
    ap.add_argument("--n", type=int, default=10_000, help="particles in the set")
    ap.add_argument("--seed", type=int, default=0, help="the seed the set was generated with")
    args = ap.parse_args(argv)
    if args.ideal:
        for folder in args.z:
            d = ideal_separation(folder, args.images)
            print(f"{folder}: ideal d' 70S-AB vs 70S-ABC over {len(d)} images: median {np.median(d):.2f}, "
                  f"min {d.min():.2f}, max {d.max():.2f}", flush=True)
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
