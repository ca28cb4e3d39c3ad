import sys, time
from pathlib import Path
import numpy as np, torch
from cryonb.core.particles import load_particles
from cryonb.core.region_features import region_features
from benchmarks.suite import metrics
from benchmarks.suite.rare_probe import RARE, NEAREST, JUNK
DIR = Path(sys.argv[1]); t0 = time.time()
dev = "cuda" if torch.cuda.is_available() else "cpu"
F = region_features(load_particles(DIR / "particles.star"), device=dev, progress=False)
print(F.shape, f"{time.time()-t0:.1f}s", flush=True)
labels = np.load(DIR / "truth.npz")["class"]; keep = labels != JUNK
print("probe", metrics.rare_separability(F[keep], labels[keep], RARE, NEAREST))
