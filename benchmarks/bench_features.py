"""The decoder's first-layer features from one kernel (cryonb.core.kernels.encoded_features) against torch's passes.

    python -m benchmarks.bench_features [--jsonl out.jsonl] [--sweep]

At D = 128 the decoder's first layer reads ``[sin φ, cos φ, z, 0…]`` for the 6,425 frequencies of
each image: 192 gaussian phases, then the latent and zeros to a whole number of 16-byte rows.
torch writes them in passes: the reflected coordinates, the float32 phases (a matrix product), their
sines, their cosines, the repeated latents; the kernel computes the phases in registers and writes
the features once. Both give the same bits (the kernel adds the product's three terms in torch's
order and uses the same float32 sine). Batch 64 with zdim 10 (the 256×3 model of the speed goal)
and batch 32 with zdim 8 (the default model). Median of 20 CUDA-event timings after 5 warm-up
calls, bfloat16, one GPU. ``--sweep`` also times other tiles (rows, phases).
"""

from __future__ import annotations

import argparse
from unittest import mock

import torch

from benchmarks.bench_relu_grad import median_us
from benchmarks.records import emit
from cryonb.core import kernels, nets
from cryonb.core.model import FourierDecoder

SHAPES = [(64, 10), (32, 8)]  # batch, zdim
SWEEP = [(64, 64), (32, 64), (64, 32), (16, 64), (16, 32), (8, 64), (16, 128)]


def torch_passes(dec, coords, z):
    """The features as the decoder made them before the kernel."""
    flip = coords[..., 2:3] < 0
    phase = dec.encoding.phase(torch.where(flip, -coords, coords).float() / dec.D)
    return nets._encoded_input(phase, z, dec.coords_in.weight, dec.latent_in.weight, True, torch.bfloat16)[0]


def with_tiles(tiles, fn):
    rows, phases = tiles
    return lambda: mock.patch.multiple(kernels, FEATURE_ROWS=rows, FEATURE_PHASES=phases)(fn)()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jsonl", default=None)
    ap.add_argument("--sweep", action="store_true")
    args = ap.parse_args(argv)
    for batch, zdim in SHAPES:
        torch.manual_seed(0)
        dec = FourierDecoder(128, zdim, width=256, encoding="gaussian").cuda()
        coords = torch.rand(batch, 6425, 3, device="cuda") * 128 - 64
        z = torch.randn(batch, zdim, device="cuda")
        expected = torch_passes(dec, coords, z)
        freqs = dec.encoding.B / dec.D
        kernel = lambda: kernels.encoded_features(coords, freqs, z, expected.shape[-1], torch.bfloat16)  # noqa: E731
        forms = {"torch": lambda: torch_passes(dec, coords, z), "kernels.encoded_features": kernel}
        if args.sweep:
            forms.update({f"kernel {tiles}": with_tiles(tiles, kernel) for tiles in SWEEP})
        for name, call in forms.items():
            out = call()
            record = {"batch": batch, "zdim": zdim, "columns": expected.shape[-1], "form": name,
                      "us": round(median_us(call), 1), "bitwise_equal": bool(torch.equal(out, expected)),
                      "max_error": float((out.float() - expected.float()).abs().max()),
                      "device": torch.cuda.get_device_name()}
            emit(record, args.jsonl)


if __name__ == "__main__":
    main()
