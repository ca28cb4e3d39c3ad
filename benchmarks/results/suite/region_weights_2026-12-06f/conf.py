import sys, numpy as np
from benchmarks.suite import metrics
from sklearn.metrics import adjusted_rand_score
t = metrics.load_truth(sys.argv[1] + "/truth.npz")
keep = t.keep(); labels = t.labels[keep]
for path in sys.argv[2:]:
    z = np.load(path)[keep]
    print(path.split("/")[-2], metrics.latent_metrics(np.load(path), t))
    for name, cl in (("km", metrics.kmeans_clusters(z, 5)), ("gmm", metrics.gmm_clusters(z, 5))):
        m = np.zeros((5, 5), int)
        for a, b in zip(labels, cl): m[a if a < 5 else 4, b] += 1
        print(name, adjusted_rand_score(labels, cl)); print(m)
