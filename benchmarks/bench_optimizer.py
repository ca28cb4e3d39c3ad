"""A default GPU training step's time with the optimiser in one kernel or in torch's multi-tensor passes.

    python -m benchmarks.bench_optimizer [--box 128] [--jsonl out.jsonl]
    python -m benchmarks.bench_optimizer --profile      # where a step's GPU time goes, kernel by kernel

One Trainer with the GPU defaults (zdim 8) on random particles; its steps replayed as CUDA graphs,
the optimiser's form switched between rounds (``fused`` on its groups, the step captured again), each
round 20 warm-up steps and 100 timed ones, so that both forms are timed in turn on the same model. One
JSON line: ms per step for each form, round by round. ``--profile``: instead, ten steps of the defaults
launched kernel by kernel (no CUDA graphs, so that ``torch.profiler`` sees them), the profiler's table
by GPU time. Needs a GPU.
"""

from __future__ import annotations

import argparse
import time

import torch

from benchmarks.bench_train import synthetic_particles
from benchmarks.records import emit
from cryonb.core.training import Trainer, TrainConfig


def ms_per_step(trainer: Trainer, fused: bool, warmup: int = 20, timed: int = 100) -> float:
    for group in trainer.optimizer.param_groups:
        group["fused"] = fused
    trainer._captured = {}  # the step captured again with this form
    for _ in range(warmup):
        trainer.step()
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(timed):
        trainer.step()
    torch.cuda.synchronize()
    return round((time.perf_counter() - start) / timed * 1e3, 3)


def profile(trainer: Trainer, warmup: int = 30, steps: int = 10) -> str:
    """The profiler's table (by GPU time) of ``steps`` steps after ``warmup``, printed and returned."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as profiled

    for _ in range(warmup):
        trainer.step()
    torch.cuda.synchronize()
    with profiled(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        for _ in range(steps):
            trainer.step()
        torch.cuda.synchronize()
    table = prof.key_averages().table(sort_by="cuda_time_total", row_limit=45, max_name_column_width=70)
    print(table, flush=True)
    return table


def main(argv=None) -> dict | str:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--box", type=int, default=128)
    ap.add_argument("--particles", type=int, default=8192)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--profile", action="store_true", help="the profiler's table of ten steps without graphs, instead")
    ap.add_argument("--jsonl")
    args = ap.parse_args(argv)
    if not torch.cuda.is_available():
        raise SystemExit("needs a CUDA GPU: the captured steps and the fused optimiser are the GPU's")
    particles = synthetic_particles(args.particles, args.box)
    if args.profile:
        return profile(Trainer(particles, TrainConfig(zdim=8, device="cuda", cuda_graphs=False)))
    trainer = Trainer(particles, TrainConfig(zdim=8, device="cuda"))
    times = {"fused": [], "multi_tensor": []}
    for _ in range(args.rounds):
        times["fused"].append(ms_per_step(trainer, True))
        times["multi_tensor"].append(ms_per_step(trainer, False))
    parameters = sum(p.numel() for group in trainer.optimizer.param_groups for p in group["params"])
    record = {"benchmark": "optimizer_step", "device": torch.cuda.get_device_name(), "torch": torch.__version__, "box": args.box,
              "batch": trainer.config.batch_size, "parameters": parameters, "ms_per_step": times}
    emit(record, args.jsonl)
    return record


if __name__ == "__main__":
    main()
