"""Size of a shared bundle for a million particles: synthetic latents, metadata and a small model.

A RELION 3.1 .star of N particles with the 26 columns a Refine3D job writes (long image and
micrograph names, 200 particles per micrograph), latents (N, zdim) from a mixture of Gaussians, a
CPU-sized decoder at box 128, and ``cryonb.core.share.share`` with its defaults (compact columns,
float16 latents when lossless) plus a 2D view and cluster labels. No images: the 300 thumbnails a
real run adds are counted from their size (300 × 64² float16).

    python benchmarks/share_size.py                 # 1,000,000 particles
    python benchmarks/share_size.py --n 100000 --columns all
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

COLUMNS = ("rlnCoordinateX rlnCoordinateY rlnAutopickFigureOfMerit rlnClassNumber rlnAnglePsi rlnImageName "
           "rlnMicrographName rlnOpticsGroup rlnCtfMaxResolution rlnCtfFigureOfMerit rlnDefocusU rlnDefocusV "
           "rlnDefocusAngle rlnCtfBfactor rlnCtfScalefactor rlnPhaseShift rlnGroupNumber rlnAngleRot rlnAngleTilt "
           "rlnOriginXAngst rlnOriginYAngst rlnNormCorrection rlnLogLikeliContribution rlnMaxValueProbDistribution "
           "rlnNrOfSignificantSamples rlnRandomSubset").split()


def synthetic_star(path: Path, n: int, seed: int = 0) -> None:
    """A RELION 3.1 particle .star of ``n`` rows, values of realistic ranges and precision."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    per_micrograph = 200
    micrograph = np.arange(n) // per_micrograph
    row = np.arange(n) % per_micrograph + 1
    movie = [f"Movies/FoilHole_{31000000 + m}_Data_{29000000 + 7 * m}_{m % 97}_20240115_{m % 240000:06d}_fractions"
             for m in range(micrograph[-1] + 1)]
    table = pd.DataFrame({
        "rlnCoordinateX": rng.uniform(100, 4000, n).round(1), "rlnCoordinateY": rng.uniform(100, 4000, n).round(1),
        "rlnAutopickFigureOfMerit": rng.uniform(0, 3, n).round(6), "rlnClassNumber": 1,
        "rlnAnglePsi": rng.uniform(-180, 180, n).round(6),
        "rlnImageName": [f"{r:06d}@Extract/job012/{movie[m]}.mrcs" for r, m in zip(row, micrograph)],
        "rlnMicrographName": [f"MotionCorr/job002/{movie[m]}.mrc" for m in micrograph], "rlnOpticsGroup": 1,
        "rlnCtfMaxResolution": rng.uniform(2.5, 6, n).round(6), "rlnCtfFigureOfMerit": rng.uniform(0.05, 0.3, n).round(6),
        "rlnDefocusU": rng.uniform(8000, 25000, n).round(6), "rlnDefocusV": rng.uniform(8000, 25000, n).round(6),
        "rlnDefocusAngle": rng.uniform(-180, 180, n).round(6), "rlnCtfBfactor": 0.0, "rlnCtfScalefactor": 1.0,
        "rlnPhaseShift": 0.0, "rlnGroupNumber": micrograph % 50 + 1,
        "rlnAngleRot": rng.uniform(-180, 180, n).round(6), "rlnAngleTilt": rng.uniform(0, 180, n).round(6),
        "rlnOriginXAngst": rng.normal(0, 2, n).round(6), "rlnOriginYAngst": rng.normal(0, 2, n).round(6),
        "rlnNormCorrection": rng.uniform(0.8, 1.2, n).round(6), "rlnLogLikeliContribution": rng.normal(2e5, 1e3, n).round(3),
        "rlnMaxValueProbDistribution": rng.uniform(0, 1, n).round(6), "rlnNrOfSignificantSamples": rng.integers(1, 500, n),
        "rlnRandomSubset": rng.integers(1, 3, n),
    })[COLUMNS]
    header = ("\n# version 30001\n\ndata_optics\n\nloop_\n_rlnOpticsGroupName #1\n_rlnOpticsGroup #2\n"
              "_rlnMicrographOriginalPixelSize #3\n_rlnVoltage #4\n_rlnSphericalAberration #5\n_rlnAmplitudeContrast #6\n"
              "_rlnImagePixelSize #7\n_rlnImageSize #8\n_rlnImageDimensionality #9\nopticsGroup1 1 0.83 300.0 2.7 0.1 "
              "1.66 128 2\n\n\n# version 30001\n\ndata_particles\n\nloop_\n")
    header += "".join(f"_{c} #{i + 1}\n" for i, c in enumerate(COLUMNS))
    with open(path, "w") as f:
        f.write(header)
        table.to_csv(f, sep=" ", header=False, index=False, lineterminator="\n")
        f.write("\n")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000, help="particles (default 1,000,000)")
    parser.add_argument("--zdim", type=int, default=8)
    parser.add_argument("--box", type=int, default=128)
    parser.add_argument("--columns", choices=("compact", "all"), default="compact")
    parser.add_argument("--keep", type=Path, help="write the bundle here (default: a temporary folder, removed)")
    args = parser.parse_args(argv)

    import torch

    from cryonb.core.particles import load_particles
    from cryonb.core.run import Run
    from cryonb.core.share import share
    from cryonb.core.share.read import SharedModel, build_decoder
    from cryonb.core.training import TrainConfig

    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        t0 = time.perf_counter()
        synthetic_star(tmp / "particles.star", args.n)
        star_bytes = (tmp / "particles.star").stat().st_size
        t1 = time.perf_counter()
        particles = load_particles(tmp / "particles.star", images=False)
        rng = np.random.default_rng(1)
        labels = rng.integers(0, 6, args.n)
        centres = rng.normal(0, 2, (6, args.zdim))
        z = (centres[labels] + rng.normal(0, 0.5, (args.n, args.zdim))).astype(np.float32)
        coords = z[:, :2] @ rng.normal(size=(2, 2))  # any 2D view: its size is what counts
        config = TrainConfig(zdim=args.zdim, device="cpu").for_device(torch.device("cpu"))  # 256 wide, 3 layers
        run = Run(SharedModel(build_decoder(config, args.box), args.zdim), 1.0, 1.66, z, particles, config)
        t2 = time.perf_counter()
        out = args.keep or tmp / "bundle"
        report = share(run, out, coords=coords, clusters=labels, columns=args.columns, overwrite=True)
        t3 = time.perf_counter()
        thumbnails = 300 * 64 * 64 * 2 + 2 * 128 + 300 * 8
        print(f"{args.n:,} particles, zdim {args.zdim}, box {args.box}, decoder {config.dec_width}x{config.dec_depth}, "
              f"{args.columns} columns; source .star {star_bytes / 1e6:.1f} MB")
        print(report)
        print(f"with 300 thumbnails of 64² (not in this synthetic set): {(report.total + thumbnails) / 1e6:.1f} MB")
        print(f"time: write .star {t1 - t0:.1f} s, read it {t2 - t1:.1f} s, share {t3 - t2:.1f} s")


if __name__ == "__main__":
    main()
