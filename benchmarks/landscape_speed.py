"""Landscape analysis speed: N maps generated from a decoder, masked, PCA'd and clustered, streamed.

    python benchmarks/landscape_speed.py --maps 10000 --box 128 --device cuda          # the goal: <= 60 s
    python benchmarks/landscape_speed.py --maps 10000 --box 128 --device cuda --compile
    python benchmarks/landscape_speed.py --maps 10000 --box 128 --device cuda --compile max-autotune-no-cudagraphs
    python benchmarks/landscape_speed.py --maps 10000 --box 128 --sketch-box 64 --device cuda
    python benchmarks/landscape_speed.py --maps 64 --box 24 --width 64 --particles 2000 --device cpu

Builds a run in memory whose decoder is a randomly initialised FourierDecoder (width x depth,
residual layers and Gaussian encoding, as ``cryonb train`` makes on a GPU; its speed does not depend
on its weights), with latents of ``--particles`` particles drawn from a 5-component mixture. Times
:func:`cryonb.core.analysis.landscape.landscape` (maps + mask + streamed PCA + k-means), then the
z -> map-PC network on its output, then ``Run.volumes`` one map at a time (cryonb's plain path,
the way cryoDRGN generates maps) for a per-map reference. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import platform
import shlex
import sys
import time

import numpy as np
import torch

from cryonb.core.analysis.landscape import analyze_landscape
from cryonb.core.analysis.latent_regression import fit_latent_regression
from cryonb.core.model import FourierDecoder
from cryonb.core.run import Run
from cryonb.core.training import resolve_device


class DecoderOnly(torch.nn.Module):
    """What Run needs of a model to generate maps: a decoder and a latent dimension."""

    def __init__(self, decoder: FourierDecoder):
        super().__init__()
        self.decoder, self.zdim = decoder, decoder.zdim


def mixture_latents(n: int, zdim: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=2.0, size=(5, zdim))
    return (centres[rng.integers(0, 5, n)] + rng.normal(scale=0.5, size=(n, zdim))).astype(np.float32)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--maps", type=int, default=10_000, help="maps to generate")
    ap.add_argument("--box", type=int, default=128, help="the run's box")
    ap.add_argument("--sketch-box", type=int, help="generate the maps at this smaller box (default: the run's box)")
    ap.add_argument("--width", type=int, default=1024)
    ap.add_argument("--depth", type=int, default=3)
    ap.add_argument("--zdim", type=int, default=8)
    ap.add_argument("--particles", type=int, default=100_000, help="latents the maps are sampled from")
    ap.add_argument("--sampling", choices=("particles", "kmeans"), default="particles")
    ap.add_argument("--pcs", type=int, default=20)
    ap.add_argument("--states", type=int, default=10)
    ap.add_argument("--maps-per-chunk", type=int)
    ap.add_argument("--evaluations-per-chunk", type=int)
    ap.add_argument("--compile", nargs="?", const=True, default=False, metavar="MODE",
                    help="torch.compile the decoder's evaluation, optionally in a mode such as max-autotune-no-cudagraphs "
                         "(compile time is in the warm-up)")
    ap.add_argument("--reference-maps", type=int, default=8, help="maps timed one at a time through Run.volumes (0: skip)")
    ap.add_argument("--device", default="auto")
    args = ap.parse_args(argv)

    device = resolve_device(args.device)
    cuda = device.type == "cuda"
    decoder = FourierDecoder(args.box, args.zdim, args.width, args.depth, encoding="gaussian", residual=True).to(device).eval()
    run = Run(DecoderOnly(decoder), 1.0, 1.0, mixture_latents(args.particles, args.zdim))
    chunking = {"maps_per_chunk": args.maps_per_chunk, "evaluations_per_chunk": args.evaluations_per_chunk,
                "compile": args.compile}

    start = time.perf_counter()
    analyze_landscape(run, 2 * (args.maps_per_chunk or 32), box=args.sketch_box, n_components=2, k=2, mask_maps=32,
              regression=False, progress=False, **chunking)  # warm-up: kernels, cuFFT plans
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    warm_up_s = time.perf_counter() - start
    start = time.perf_counter()
    result = analyze_landscape(run, args.maps, sampling=args.sampling, box=args.sketch_box, n_components=args.pcs,
                       k=args.states, regression=False, progress=False, **chunking)
    if cuda:
        torch.cuda.synchronize()
    landscape_s = time.perf_counter() - start
    peak = torch.cuda.max_memory_allocated() / 2**30 if cuda else None

    start = time.perf_counter()
    fit = fit_latent_regression(result.z, result.coords, device=device, progress=False)
    predicted = fit.predict(run.z)
    regression_s = time.perf_counter() - start

    reference = None
    if args.reference_maps:
        run.volumes(run.z[:1])
        if cuda:
            torch.cuda.synchronize()
        start = time.perf_counter()
        for i in range(args.reference_maps):
            run.volumes(run.z[i : i + 1])
        if cuda:
            torch.cuda.synchronize()
        reference = (time.perf_counter() - start) / args.reference_maps

    t = result.timings
    print(json.dumps({
        "bench": "landscape", "maps": args.maps, "box": args.box, "sketch_box": result.box,
        "width": args.width, "depth": args.depth, "zdim": args.zdim, "particles": args.particles,
        "sampling": args.sampling, "pcs": len(result.components), "states": args.states,
        "mask_voxels": int(result.mask.sum()),
        "compile": args.compile, "warm_up_s": round(warm_up_s, 1), "maps_to_states_s": round(landscape_s, 2),
        "maps_and_pca_s": round(t["maps_and_pca_s"], 2), "pca_updates_s": round(t["pca_updates_s"], 2),
        "cluster_s": round(t["cluster_s"], 2), "maps_per_s": round(args.maps / t["maps_and_pca_s"], 1),
        "regression_s": round(regression_s, 2), "regression_epochs": fit.epochs,
        "regression_r2_heldout": round(fit.r2_total, 4), "particles_mapped": len(predicted),
        "explained_variance_top5": [round(float(v), 4) for v in result.explained_variance_ratio[:5]],
        "run_volumes_s_per_map": None if reference is None else round(reference, 4),
        "peak_gpu_GiB": None if peak is None else round(peak, 2),
        "device": torch.cuda.get_device_name() if cuda else
        f"CPU ({torch.get_num_threads()} threads, {platform.processor() or platform.machine()})",
        "torch": torch.__version__, "command": "python " + shlex.join(sys.argv),
    }), flush=True)


if __name__ == "__main__":
    main()
