"""FP8 in the decoder's wide products, measured before it is built (one GPU).

One hidden layer's forward and backward passes in bfloat16 (:class:`~cryonb.core.nets.FoldedReLU`, the
layer-by-layer form) against the same layer with its products in FP8:

    python -m benchmarks.bench_fp8 [--rows 102800 205600] [--width 1024] [--jsonl out.jsonl]

The decoder's residual hidden layers at D = 128 multiply (rows = batch × 6,425 pixels, width)
activations by (width, width) weights. The FP8 form is the usual "tensorwise" recipe with dynamic
scales: the activations and weights cast to float8 e4m3 and the output gradient to e5m2, each scaled
by its absolute maximum, the three products done by ``torch._scaled_mm`` in float32 accumulation with
bfloat16 outputs; the operands a product needs in column-major order are transposed copies. Each form
is timed with CUDA events (median of 20 after 5 warm-up), for the whole layer and for its three
products alone (the ceiling FP8 could give), and its error is measured against float32 arithmetic on
the same inputs (relative Frobenius error of the output and of both gradients).
"""

from __future__ import annotations

import argparse

import torch

from benchmarks.bench_relu_grad import median_us
from benchmarks.records import emit
from cryonb.core.nets import FoldedReLU

E4M3, E5M2 = torch.float8_e4m3fn, torch.float8_e5m2


def to_fp8(t: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """``t`` scaled to the format's range by its absolute maximum and cast; returns it and 1 / scale."""
    amax = t.abs().amax().float().clamp(min=1e-12)
    scale = torch.finfo(dtype).max / amax
    return (t * scale.to(t.dtype)).to(dtype), scale.reciprocal()


def column_major(t: torch.Tensor) -> torch.Tensor:
    return t.t().contiguous().t()


class FP8ResidualReLU(torch.autograd.Function):
    """``relu(x (W + I)ᵀ + b)`` with its three products in FP8 (tensorwise dynamic scales)."""

    @staticmethod
    def forward(ctx, x, weight, bias):
        w = torch.eye(len(weight), device=weight.device, dtype=weight.dtype).add_(weight).bfloat16()
        x8, sx = to_fp8(x, E4M3)
        w8, sw = to_fp8(w, E4M3)
        y = torch._scaled_mm(x8, w8.t(), scale_a=sx, scale_b=sw, bias=bias.bfloat16(), out_dtype=torch.bfloat16).relu_()
        ctx.save_for_backward(x8, sx, w8, sw, y)
        return y

    @staticmethod
    def backward(ctx, grad):
        x8, sx, w8, sw, y = ctx.saved_tensors
        g = torch.ops.aten.threshold_backward(grad, y, 0)
        g8, sg = to_fp8(g, E5M2)
        grad_x = torch._scaled_mm(g8, column_major(w8), scale_a=sg, scale_b=sw, out_dtype=torch.bfloat16)
        grad_w = torch._scaled_mm(g8.t().contiguous(), column_major(x8), scale_a=sg, scale_b=sx, out_dtype=torch.float32)
        return grad_x, grad_w, g.float().sum(0)


def layer_forms(x, w, b, g):
    """name → a callable running the layer's forward and backward passes, returning (y, dx, dw)."""

    def run(apply):
        def call():
            xr = x.detach().requires_grad_()
            wr, br = w.detach().requires_grad_(), b.detach().requires_grad_()
            with torch.autocast("cuda", dtype=torch.bfloat16, cache_enabled=False):
                y = apply(xr, wr, br)
            y.backward(g)
            return y, xr.grad, wr.grad
        return call

    return {"bfloat16 (FoldedReLU)": run(lambda x_, w_, b_: FoldedReLU.apply(x_, w_, b_, True)),
            "fp8 tensorwise": run(FP8ResidualReLU.apply)}


def product_forms(x, w, g):
    """name → a callable running only the layer's three products (forward, input and weight gradients)."""
    xb, wb, gb = x.bfloat16(), w.bfloat16(), g.bfloat16()
    x8, sx = to_fp8(xb, E4M3)
    w8, sw = to_fp8(wb, E4M3)
    g8, sg = to_fp8(gb, E5M2)
    w8c, x8c, g8t = column_major(w8), column_major(x8), g8.t().contiguous()

    def bf16():
        return xb @ wb.t(), gb @ wb, gb.t() @ xb

    def fp8():
        return (torch._scaled_mm(x8, w8.t(), scale_a=sx, scale_b=sw, out_dtype=torch.bfloat16),
                torch._scaled_mm(g8, w8c, scale_a=sg, scale_b=sw, out_dtype=torch.bfloat16),
                torch._scaled_mm(g8t, x8c, scale_a=sg, scale_b=sx, out_dtype=torch.float32))

    return {"bfloat16 products": bf16, "fp8 products": fp8}


def relative_errors(got, reference) -> list[float]:
    return [round(float((a.float() - r).norm() / r.norm()), 5) for a, r in zip(got, reference)]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, nargs="+", default=[102_800, 205_600], help="batch × pixels (16 and 32 images at D = 128)")
    ap.add_argument("--width", type=int, default=1024)
    ap.add_argument("--jsonl", default=None)
    args = ap.parse_args(argv)
    for rows in args.rows:
        torch.manual_seed(0)
        K = args.width
        x = torch.relu(torch.randn(rows, K, device="cuda")).bfloat16().float()
        w = torch.randn(K, K, device="cuda") / K**0.5 / 4
        b = torch.randn(K, device="cuda") / 10
        g = (torch.randn(rows, K, device="cuda") / rows).bfloat16()
        # float32 reference of the layer
        wi = w + torch.eye(K, device="cuda")
        y = torch.relu(x @ wi.t() + b)
        gm = g.float() * (y > 0)
        reference = (y, gm @ wi, gm.t() @ x)
        flops = 3 * 2 * rows * K * K
        # the whole layers' outputs are compared with the reference; the products alone only timed
        for forms, compared in ((layer_forms(x.bfloat16(), w, b, g), True), (product_forms(x, wi, gm), False)):
            for name, call in forms.items():
                try:
                    us = median_us(call)
                    out = call()
                except RuntimeError as error:  # e.g. a GPU without FP8 products, or a format pair it lacks
                    emit({"rows": rows, "width": K, "form": name, "error": str(error)[:200]}, args.jsonl)
                    continue
                emit({"rows": rows, "width": K, "form": name, "us": round(us, 1), "tflops": round(flops / us / 1e6, 1),
                      "relative_error": relative_errors(out, reference) if compared else None,
                      "device": torch.cuda.get_device_name()}, args.jsonl)


if __name__ == "__main__":
    main()
