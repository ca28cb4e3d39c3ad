"""What a training step's slice filters cost, and a channel-last gather of the same filters.

    python benchmarks/bench_slice_filters.py --box 128 --radius 16 32 --batch 32 --device cuda

The encoder's slice filters (:class:`cryonb.core.latents.SliceFilters`) sample a cube of 2n real
channels at each image's rotated frequencies with ``grid_sample``, whose kernels loop over the
channels within each point: at D = 128 and a reach of 32 pixels the suite's runs were 14 % slower
than without filters (docs/benchmarks.md, "Slice filters at D = 128"). The candidates store the cube
channel-last, (voxels, 2n), and read each point as a weighted sum of its 8 corner rows, so a point's
channels are contiguous in the gather and in the gradient's scatter: ``embedding_bag`` (its backward
sorts the rows), or a gather whose backward is one ``index_add_`` (atomic adds, no sort, no host
synchronisation). Each is checked against the filters' own statistics and gradients, timed over
``--steps`` steps of the filters alone (statistics, a loss, backward, AdamW) after warm-up, and, on a
GPU, tried under CUDA-graph capture, as training replays its steps.
"""

from __future__ import annotations

import argparse
import json
import time

import torch
import torch.nn.functional as F

from cryonb.core.latents import SliceFilters
from cryonb.core.model import HalfPlane
from cryonb.core.rotations import random_rotations


def corner_bags(coords: torch.Tensor, side: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Row indices (N, 8) of a channel-last cube of ``side``³ voxels and trilinear weights (N, 8) for points
    (N, 3) given as (x, y, z) voxel offsets from its centre, inside the cube."""
    x = coords + side // 2
    base = x.floor().clamp(0, side - 2)
    frac, base = x - base, base.long()
    index, weight = [], []
    for corner in range(8):
        step = torch.tensor([corner & 1, corner >> 1 & 1, corner >> 2 & 1], device=coords.device)
        at = base + step
        index.append((at[:, 2] * side + at[:, 1]) * side + at[:, 0])  # the cube is indexed [z, y, x]
        weight.append(torch.where(step.bool(), frac, 1 - frac).prod(-1))
    return torch.stack(index, 1), torch.stack(weight, 1)


class CornerSum(torch.autograd.Function):
    """Σ_c weight[:, c] · rows[index[:, c]], its gradient for ``rows`` scattered with one index_add_."""

    @staticmethod
    def forward(ctx, rows, index, weight):
        ctx.save_for_backward(index, weight)
        ctx.shape = rows.shape
        return torch.einsum("ncj,nc->nj", rows[index], weight)

    @staticmethod
    def backward(ctx, grad):
        index, weight = ctx.saved_tensors
        parts = (weight[..., None] * grad[:, None, :]).reshape(-1, grad.shape[-1])
        return grad.new_zeros(ctx.shape).index_add_(0, index.reshape(-1), parts), None, None


class ChannelLastFilters(torch.nn.Module):
    """The same statistics as ``filters`` from a channel-last copy of its cube (a candidate)."""

    def __init__(self, filters: SliceFilters, gather: str):
        super().__init__()
        self.n, self.side, self.gather = filters.n, filters.weight.shape[-1], gather
        self.pixels, self.coords = filters.pixels, filters.coords
        self.rows = torch.nn.Parameter(filters.weight.detach().reshape(2 * self.n, -1).T.contiguous())

    def forward(self, images, rotations, ctf):
        y = images[:, self.pixels] * ctf[:, self.pixels]
        index, weight = corner_bags((self.coords @ rotations.detach().float()).reshape(-1, 3), self.side)
        if self.gather == "embedding_bag":
            w = F.embedding_bag(index, self.rows, per_sample_weights=weight, mode="sum")
        else:
            w = CornerSum.apply(self.rows, index, weight)
        w = w.view(len(y), -1, 2 * self.n)
        return torch.einsum("bpj,bp->bj", w[..., : self.n], y.real) + torch.einsum("bpj,bp->bj", w[..., self.n :], y.imag)


def time_steps(module, inputs, steps: int, device) -> tuple[float, bool | None]:
    """Milliseconds per step of statistics, loss, backward and AdamW for ``module``'s filters, and whether
    the step can be captured as a CUDA graph (None off a GPU)."""
    optimizer = torch.optim.AdamW(module.parameters(), lr=1e-4, capturable=device.type == "cuda")

    def step():
        module(*inputs).square().mean().backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=False)

    for _ in range(5):
        step()
    capturable = None
    if device.type == "cuda":
        try:
            with torch.cuda.graph(torch.cuda.CUDAGraph()):
                step()
            capturable = True
        except RuntimeError:
            capturable = False
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return round(1000 * (time.perf_counter() - start) / steps, 3), capturable


def main(argv=None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--box", type=int, default=128)
    ap.add_argument("--radius", type=int, nargs="+", default=[16, 32], help="the filters' reach in pixels of frequency")
    ap.add_argument("--filters", type=int, default=32)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = ap.parse_args(argv)
    device = torch.device(args.device)
    g = torch.Generator().manual_seed(0)
    coords = HalfPlane.build(args.box).coords
    images = torch.randn(args.batch, len(coords), generator=g, dtype=torch.complex64).to(device)
    ctf = torch.randn(args.batch, len(coords), generator=g).to(device)
    inputs = (images, random_rotations(args.batch, g).to(device), ctf)
    records = []
    for radius in args.radius:
        grid = SliceFilters(coords, args.filters, radius).to(device)
        stats = grid(*inputs)
        stats.square().mean().backward()
        grad = grid.weight.grad.reshape(2 * args.filters, -1).T
        record = {"box": args.box, "radius": radius, "filters": args.filters, "batch": args.batch,
                  "parameters": grid.weight.numel(), "points_per_image": len(grid.coords),
                  "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"}
        for gather in ("embedding_bag", "index_add"):
            candidate = ChannelLastFilters(grid, gather).to(device)
            other = candidate(*inputs)
            other.square().mean().backward()
            record[f"{gather}_stats_rel_error"] = float((stats - other).detach().norm() / stats.detach().norm())
            record[f"{gather}_grad_rel_error"] = float((grad - candidate.rows.grad).norm() / grad.norm())
            record[f"{gather}_ms"], record[f"{gather}_graph"] = time_steps(candidate, inputs, args.steps, device)
        record["grid_sample_ms"], record["grid_sample_graph"] = time_steps(grid, inputs, args.steps, device)
        print(json.dumps(record), flush=True)
        records.append(record)
    return records


if __name__ == "__main__":
    main()
