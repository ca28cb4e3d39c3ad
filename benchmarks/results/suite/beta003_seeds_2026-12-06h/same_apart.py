"""Whether the beta-galactosidase particles that a mixture of five sets apart are the same across runs.

    PYTHONPATH=. python same_apart.py SETDIR    (from the repository root; SETDIR: the set's truth.npz, any box)

For every kept D 128, SNR 0.1 assembly run under benchmarks/results/suite/*/z/, the first of the starts 0-2
of a mixture of five on z not standardised (the suite's mixture standardises it) that sets a group of fewer than half of beta-galactosidase's particles apart; then, for each
pair of runs, how many such particles they share (chance: the product of the sizes over 700).
"""
import glob
import itertools
import sys

import numpy as np
from sklearn.mixture import GaussianMixture

t = np.load(f'{sys.argv[1]}/truth.npz'); cls, names = t['class'], list(t['class_names'])
keep = cls != names.index('junk'); c = cls[keep]; b = c == names.index('beta-gal')
sets = {}
for f in sorted(glob.glob('benchmarks/results/suite/*/z/assembly_b128_snr0.1_*/z.npy')):
    z = np.load(f)
    if len(z) != 10000: continue
    z = z[keep]
    for seed in range(3):
        lab = GaussianMixture(5, covariance_type='full', random_state=seed, reg_covar=1e-5).fit(z).predict(z)
        cnt = np.bincount(lab[b], minlength=5)
        small = np.flatnonzero((cnt > 0) & (cnt < 350))
        if len(small):
            s = set(np.flatnonzero(b)[np.isin(lab[b], small)])
            sets[f.split('/')[-2] + f' ({f.split("/")[3]}) start {seed}'] = s
            break
keys = list(sets)
for k in keys: print(len(sets[k]), k)
for a, bb in itertools.combinations(keys, 2):
    A, B = sets[a], sets[bb]
    print(f'{len(A & B):4d} shared of {len(A)} / {len(B)} (chance {len(A) * len(B) / b.sum():.0f}): {a} | {bb}')
