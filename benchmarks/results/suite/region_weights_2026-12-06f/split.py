import sys, numpy as np
from benchmarks.suite import imaging, metrics
f = np.load(sys.argv[1] + "/truth.npz"); t = metrics.load_truth(sys.argv[1] + "/truth.npz")
keep = t.keep(); labels = t.labels[keep]
print("ctf shape", f["ctf"].shape, "euler", f["euler"].shape, "shifts", f["shifts"].shape, f["class_names"])
z = np.load(sys.argv[2]); cl = metrics.gmm_clusters(z[keep], 5)
cls = int(sys.argv[3]) if len(sys.argv) > 3 else 3
sel = labels == cls
ids = np.unique(cl[sel], return_counts=True); print("class", cls, "clusters", ids)
a = cl[sel] == ids[0][np.argmax(ids[1])]
eu = f["euler"][keep][sel]; ctf = f["ctf"][keep][sel]; sh = f["shifts"][keep][sel]
view = imaging.euler_to_matrix(*eu.T)[:, 2, :]  # the beam direction in the map's frame (RELION's A, third row)
for name, x in [("defocus cols", ctf), ("shift", sh), ("view", view), ("|view|", np.abs(view)), ("euler", eu)]:
    x = np.atleast_2d(x.T).T
    for j in range(x.shape[1]):
        print(name, j, "major %.3f minor %.3f" % (x[a, j].mean(), x[~a, j].mean()), "sd %.3f" % x[:, j].std())
