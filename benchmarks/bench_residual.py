"""Step speed with cryonb's fused decoder layers against autograd's, at D = 128 (one GPU).

    python -m benchmarks.bench_residual --batches 16 32 64 128 --jsonl out.jsonl
    python -m benchmarks.bench_residual --profile 32 [--layers fused]    # where an eager step's GPU time goes

Forms of the default GPU model (1024×3 residual, zdim 8, CUDA graphs, bfloat16), each trained on
random images, an epoch of warm-up and then two timed epochs:

- ``autograd``: every layer as autograd builds it: ``relu(x + linear(x))``, ``relu(linear(x))`` and
  the decoder's first layer ``relu(coords_in(features) + latent_in(z))``;
- ``folded``: the residual layers folded into one product each (:class:`cryonb.core.nets.FoldedReLU`);
- ``fused``: the decoder's first layer as one product too (:class:`cryonb.core.nets.EncodedInputReLU`);
- ``dense``: and the plain hidden layers (:class:`cryonb.core.nets.DenseReLU`; in the default model,
  the encoder's first layer);
- ``stack``: and the decoder as one Function whose backward products apply the ReLUs' gradients
  and sum the biases' (:class:`cryonb.core.nets.DecoderStack`);
- ``features``: and its first layer's features written by one kernel from the frequencies'
  coordinates (:func:`cryonb.core.kernels.encoded_features`): cryonb's model.

``--plain`` times the plain 256×3 model instead.
"""

from __future__ import annotations

import argparse
import time

import torch
from torch import nn

from benchmarks.records import emit
from benchmarks.bench_train import synthetic_particles
from cryonb.core import nets
from cryonb.core.model import FourierDecoder
from cryonb.core.training import Trainer, TrainConfig


def autograd_residual(self, x):
    return torch.relu(x + self.linear(x))


def autograd_dense(self, x):
    return torch.relu(nn.functional.linear(x, self.weight, self.bias))


def linear_input_forward(self, coords, z=None):
    """FourierDecoder.forward with its first layer built from nn.Linear's arithmetic."""
    flip = coords[..., 2:3] < 0
    with torch.autocast(coords.device.type, enabled=False):
        features = self.encoding(torch.where(flip, -coords, coords).float() / self.D)
    h = self.coords_in(features)
    if self.latent_in is not None:
        h = h + self.latent_in(z)[:, None, :]
    out = self.net(torch.relu_(h)).float()
    return torch.complex(out[..., 0], torch.where(flip[..., 0], -out[..., 1], out[..., 1]))


LAYERS = {  # (residual layer, plain hidden layer, decoder forward, the decoder as one Function, features by kernel)
    "autograd": (autograd_residual, autograd_dense, linear_input_forward, False, False),
    "folded": (nets.Residual.forward, autograd_dense, linear_input_forward, False, False),
    "fused": (nets.Residual.forward, autograd_dense, FourierDecoder.forward, False, False),
    "dense": (nets.Residual.forward, nets.DenseReLU.forward, FourierDecoder.forward, False, False),
    "stack": (nets.Residual.forward, nets.DenseReLU.forward, FourierDecoder.forward, True, False),
    "features": (nets.Residual.forward, nets.DenseReLU.forward, FourierDecoder.forward, True, True),
}


def use(layers: str) -> None:
    (nets.Residual.forward, nets.DenseReLU.forward, FourierDecoder.forward, FourierDecoder.fused_backward,
     FourierDecoder.fused_features) = LAYERS[layers]


def config(batch: int, plain: bool = False, **options) -> TrainConfig:
    """The default GPU model, or the plain 256×3 one, at ``batch``."""
    model = {"enc_width": 256, "dec_width": 256, "residual": False} if plain else {}
    return TrainConfig(zdim=8, batch_size=batch, device="cuda", **model, **options)


def images_per_s(particles, batch: int, epochs: int = 2, plain: bool = False) -> tuple[float, float]:
    trainer = Trainer(particles, config(batch, plain))
    trainer.fit(1, progress=False)
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    trainer.fit(epochs, progress=False)
    torch.cuda.synchronize()
    return len(particles) * epochs / (time.perf_counter() - t0), trainer.history[-1]["loss"]


def profile(particles, batch: int, plain: bool = False) -> None:
    """The GPU kernels of one eager epoch (no CUDA graph), and the share of elementwise and
    reduction kernels in their time."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    trainer = Trainer(particles, config(batch, plain, cuda_graphs=False))
    trainer.fit(1, progress=False)
    torch.cuda.synchronize()
    with torch_profile(activities=[ProfilerActivity.CUDA]) as prof:
        trainer.fit(1, progress=False)
        torch.cuda.synchronize()
    events = prof.key_averages()
    print(events.table(sort_by="cuda_time_total", row_limit=18, max_name_column_width=70))
    total = sum(e.self_device_time_total for e in events)
    pointwise = sum(e.self_device_time_total for e in events if "elementwise" in e.key or "reduce_kernel" in e.key)
    print(f"elementwise and reduction kernels: {pointwise / total:.0%} of {total / 1e6:.2f} s of GPU time")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--particles", type=int, default=6000)
    ap.add_argument("--box", type=int, default=128)
    ap.add_argument("--batches", type=int, nargs="+", default=[16, 32, 64, 128])
    ap.add_argument("--layers", nargs="+", choices=list(LAYERS), default=list(LAYERS),
                    help="the forms to time (--profile: the first)")
    ap.add_argument("--plain", action="store_true", help="the plain 256×3 model instead of the 1024×3 residual one")
    ap.add_argument("--jsonl", default=None)
    ap.add_argument("--profile", type=int, metavar="BATCH", help="only profile an eager epoch at this batch size")
    args = ap.parse_args(argv)
    particles = synthetic_particles(args.particles, args.box)
    try:
        if args.profile:
            use(args.layers[0])
            return profile(particles, args.profile, args.plain)
        for batch in args.batches:
            for name in args.layers:
                use(name)
                rate, loss = images_per_s(particles, batch, plain=args.plain)
                record = {"box": args.box, "batch": batch, "model": "256x3 plain" if args.plain else "1024x3 residual",
                          "layers": name, "images_per_s": round(rate),
                          "loss": round(loss, 5), "device": torch.cuda.get_device_name()}
                emit(record, args.jsonl)
                torch.cuda.empty_cache()
    finally:
        use("features")


if __name__ == "__main__":
    main()
