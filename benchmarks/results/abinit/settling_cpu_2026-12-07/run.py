import sys, json, time, torch
from dataclasses import replace
torch.set_num_threads(1)
from cryonb.core.abinit import Abinit, AbinitConfig
from cryonb.core.simulate import simulate
from cryonb.core.phantoms import hinge
case = sys.argv[1]
settings = AbinitConfig(pretrain_images=2000, search_epochs=6, map_epochs=2, base_resolution=1, iterations=3, keep=4, shift_extent=0)
if case in ("converged", "noise"):
    sim = simulate(hinge(32)[None], n=2000, snr=10.0 if case == "converged" else 1e-4, seed=0, progress=False)
    particles, truth = replace(sim.particles, rotations=None, shifts=None), sim.particles.rotations
else:
    from cryonb.core.particles import load_particles
    p = load_particles(f"/tmp/cpuab/{case}/particles.star")
    particles, truth = replace(p, rotations=None, shifts=None), p.rotations
    settings = replace(settings, shift_extent=AbinitConfig().shift_extent)
t = time.time()
ab = Abinit(particles, zdim=0, settings=settings, device="cpu", dec_width=64, dec_depth=2, batch_size=32, lr=2e-3, epochs=20, seed=2)
ab.fit(20, progress=False)
al = ab.align(truth)
print(json.dumps({"case": case, "s": round(time.time() - t), "median_error": round(al.median_error, 2),
                  "agreement": next(h["start_agreement"] for h in ab.history if "start_agreement" in h), "start": next(h["start"] for h in ab.history if "start" in h), "moved": [round(h["poses_moved"], 2) for h in ab.history if "poses_moved" in h]}))
