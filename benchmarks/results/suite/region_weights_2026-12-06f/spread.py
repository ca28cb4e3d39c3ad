"""Each class's spread in the defaults' z (seed 0, last session's runs), the classes' distances, and how much
of beta-gal's and the 70S's first principal components the pose, defocus and shift explain (5-fold R2 of a
linear fit). Run from the repository root: python spread.py [D=LATENTS ...] (needs the sets in /tmp/sets/bD_snr0.1;
LATENTS an .npy or a cryoDRGN z.pkl; by default the defaults' runs at D 128 and 64)."""
import sys

import numpy as np
from sklearn.linear_model import LinearRegression
from sklearn.mixture import GaussianMixture
from sklearn.model_selection import cross_val_score

from benchmarks.suite import imaging, metrics
from cryonb.core.io.pickles import load_pickle

RUNS = "benchmarks/results/suite/region_features_2026-12-06e/z/assembly_b{}_snr0.1_r0_s0.npy"
runs = dict(arg.split("=", 1) for arg in sys.argv[1:]) or {box: RUNS.format(box) for box in ("128", "64")}
for box, path in runs.items():
    truth_file = f"/tmp/sets/b{box}_snr0.1/truth.npz"
    f, t = np.load(truth_file), metrics.load_truth(truth_file)
    keep = t.keep()
    z = load_pickle(path) if path.endswith(".pkl") else np.load(path)
    z, lab = np.asarray(z)[keep], t.labels[keep]
    z = (z - z.mean(0)) / z.std(0)
    for c in range(5):
        x = z[lab == c]
        bic = [GaussianMixture(k, covariance_type="full", n_init=3, random_state=0).fit(x).bic(x) for k in (1, 2)]
        sd = np.linalg.svd(x - x.mean(0), compute_uv=False) / np.sqrt(len(x))
        print(box, "class", c, len(x), "BIC(1) - BIC(2): %.0f" % (bic[0] - bic[1]), "sd along its PCs", np.round(sd[:4], 2))
    means = np.array([z[lab == c].mean(0) for c in range(5)])
    print(box, "distance rare-AB %.2f; beta-gal to each class" % np.linalg.norm(means[4] - means[2]),
          np.round([np.linalg.norm(means[3] - m) for m in means], 2))
    R = imaging.euler_to_matrix(*f["euler"][keep].T)  # RELION's A; its third row: the beam in the map's frame
    nuisances = {"view": R[:, 2, :], "rotation": R.reshape(-1, 9), "view x view": np.einsum("ni,nj->nij", R[:, 2], R[:, 2]).reshape(-1, 9),
                 "defocus": f["ctf"][keep][:, :2], "shift": f["shifts"][keep]}
    for c in (0, 3):
        x = z[lab == c]
        pcs = (x - x.mean(0)) @ np.linalg.svd(x - x.mean(0), full_matrices=False)[2][:3].T
        for name, F in nuisances.items():
            r2 = [cross_val_score(LinearRegression(), F[lab == c], pcs[:, j], cv=5, scoring="r2").mean() for j in range(3)]
            print(box, "class", c, name, "R2 of its z PCs 1-3:", np.round(r2, 3))
