import numpy as np
from sklearn.decomposition import PCA
from benchmarks.suite import metrics
from benchmarks.suite.rare_probe import RARE, NEAREST, JUNK
F = np.load("/tmp/sets/b64_snr0.1/regfeat_30.npy"); labels = np.load("/tmp/sets/b64_snr0.1/truth.npz")["class"]
keep = labels != JUNK; F, lab = F[keep], labels[keep]
for k in (4, 8, 16, 32):
    P = PCA(k, random_state=0).fit_transform(F)
    print(k, metrics.rare_separability(P, lab, RARE, NEAREST), [metrics.rare_recall(metrics.gmm_clusters(P, c, 0), lab, RARE) for c in (5, 8)])
