"""Which beta-galactosidase particles a mixture of five sets apart, and whether their poses or CTFs tell them.

    PYTHONPATH=. python bgal_split.py SETDIR Z    (SETDIR: the set's truth.npz, made at any box with the suite's seed)

Fits a mixture of five components (full covariances, reg_covar 1e-5, as the suite's, but on z as it is,
not standardised as benchmarks.suite.metrics.gmm_clusters does; junk excluded) with
starts 0-3, prints each class x cluster table, then for start 1 asks whether the smaller of
beta-galactosidase's two clusters differs from the rest by pose (5-fold balanced accuracy of a logistic
regression on the rotation matrix and its squares), defocus or signal (ROC AUC).
"""
import sys

import numpy as np
from scipy.spatial.transform import Rotation
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import adjusted_rand_score, roc_auc_score
from sklearn.mixture import GaussianMixture
from sklearn.model_selection import cross_val_score

t = np.load(f"{sys.argv[1]}/truth.npz")
cls, names = t["class"], list(t["class_names"])
keep = cls != names.index("junk")
z, c = np.load(sys.argv[2])[keep], cls[keep]
print("rows:", names[:5])
labels = {}
for seed in range(4):
    labels[seed] = GaussianMixture(5, covariance_type="full", random_state=seed, reg_covar=1e-5).fit(z).predict(z)
    print("start", seed, "ARI", round(adjusted_rand_score(c, labels[seed]), 3))
    print(np.array([np.bincount(labels[seed][c == k], minlength=5) for k in range(5)]))
b = c == names.index("beta-gal")
counts = np.bincount(labels[1][b], minlength=5)
out = labels[1][b] == np.flatnonzero((counts > 0) & (counts < b.sum() / 2))[0]
rot = Rotation.from_euler("ZYZ", t["euler"][keep][b], degrees=True).as_matrix().reshape(-1, 9)
poses = np.c_[rot, rot**2]
pose = cross_val_score(LogisticRegression(max_iter=5000, class_weight="balanced"), poses, out, cv=5, scoring="balanced_accuracy").mean()
print(f"the smaller cluster: {out.sum()} of {b.sum()}; pose -> cluster, balanced accuracy {pose:.3f} (chance 0.5); "
      f"defocus AUC {roc_auc_score(out, t['ctf'][keep][b, 0]):.3f}; "
      f"signal AUC {roc_auc_score(out, t['image_signal_variance'][keep][b]):.3f}")
