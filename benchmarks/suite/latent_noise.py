"""How far each particle's latent lies from where its true state puts it, along the path and across it.

    python -m benchmarks.suite.latent_noise DATASET Z [Z ...]

For a continuous set (``truth.npz`` with a coordinate): each particle's *ideal* latent is the mean z
of the 20 particles nearest to it in the true coordinate (the path the latents trace, with the
per-particle error averaged away); the error ``z - ideal`` is split into a part along the path
(tangent: the derivative of a degree-5 polynomial in the coordinate fitted to z, smooth enough that
the error across does not leak into the tangent), given in units of the coordinate, and a part
across it, given as a fraction of the path's end-to-end length. Also how much of the viewing
direction z holds (R² of a 10-nearest-neighbour regression of the direction's unit vector, out of
fold; about -0.1 when none): latents that vary with the pose as well as the state would blur the
maps; and the variance of z along its first principal component and, on average, along the others
(how much of the space the encoder's means fill). Z: a ``z.npy`` (cryonb) or ``z.pkl`` (cryoDRGN).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from sklearn.metrics import r2_score
from sklearn.model_selection import KFold, cross_val_predict
from sklearn.neighbors import KNeighborsRegressor

from benchmarks.suite import metrics
from benchmarks.suite.drgn import read_latents
from cryonb.core.particles import load_particles


def latent_noise(z: np.ndarray, coordinate: np.ndarray, degree: int = 5) -> dict:
    """Path length (in z), RMS error along the path (coordinate units) and across it (fraction of the length)."""
    z, c = np.asarray(z, float), np.asarray(coordinate, float)
    error = z - metrics.ideal_latents(z, c)
    path = [np.polynomial.Polynomial.fit(c, z[:, j], degree) for j in range(z.shape[1])]
    tangent = np.stack([p.deriv()(c) for p in path], 1)
    along = (error * tangent).sum(1) / (tangent * tangent).sum(1)
    across = error - along[:, None] * tangent
    ends = np.quantile(c, [0.01, 0.99])
    length = float(np.linalg.norm([p(ends[1]) - p(ends[0]) for p in path]))
    return {"path_length": length, "along_rms": float(np.sqrt((along**2).mean())),
            "across_rms_fraction": float(np.sqrt((across**2).sum(1).mean()) / length)}


def view_r2(z: np.ndarray, rotations: np.ndarray, seed: int = 0) -> float:
    """Out-of-fold R² of each particle's viewing direction (third row of its rotation) from z."""
    view = np.asarray(rotations)[:, 2, :]
    split = KFold(5, shuffle=True, random_state=seed)
    return float(r2_score(view, cross_val_predict(KNeighborsRegressor(10), np.asarray(z, float), view, cv=split)))


def principal_variances(z: np.ndarray) -> np.ndarray:
    """Variances of z along its principal components, largest first."""
    z = np.asarray(z, float)
    return np.linalg.svd(z - z.mean(0), compute_uv=False) ** 2 / len(z)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dataset", type=Path)
    ap.add_argument("z", nargs="+", type=Path)
    args = ap.parse_args(argv)
    truth = metrics.load_truth(args.dataset / "truth.npz")
    if truth.kind != "continuous":
        raise SystemExit(f"{args.dataset}: a continuous set is needed (its truth has classes)")
    keep = truth.keep()
    rotations = np.asarray(load_particles(args.dataset / "particles.star").rotations)[keep]
    print("| latents | path length (z) | error along the path (coordinate) | error across (fraction of the length) | view R² "
          "| variance on PC 1 / the others (mean) |")
    print("|---|---|---|---|---|---|")
    for path in args.z:
        z = read_latents(path)
        r = latent_noise(z[keep], truth.coordinate[keep])
        pcs = principal_variances(z[keep])
        print(f"| {path} | {r['path_length']:.2f} | {r['along_rms']:.4f} | {r['across_rms_fraction']:.3f} "
              f"| {view_r2(z[keep], rotations):.3f} | {pcs[0]:.2f} / {pcs[1:].mean():.2f} |")


if __name__ == "__main__":
    main()
