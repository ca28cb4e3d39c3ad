"""This process's place in a multi-GPU or multi-node job (torchrun), and the device it trains on."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from .errors import InputError


@dataclass(frozen=True)
class Distributed:
    """This process's place in a torchrun job (rank 0 of 1 when run alone)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @classmethod
    def from_environment(cls) -> Distributed:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world == 1:
            return cls()
        import torch.distributed as dist

        if not dist.is_initialized():
            # Imported before the group exists: imported later (DDP does), its functions' default
            # ``group=group.WORLD`` holds the group past destroy_process_group (see close).
            import torch.distributed.nn.functional  # noqa: F401

            dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
        return cls(dist.get_rank(), world, int(os.environ.get("LOCAL_RANK", "0")))

    @property
    def main(self) -> bool:
        return self.rank == 0

    def close(self):
        """Wait for every process, then leave the job: the group is destroyed and its threads joined
        while Python still runs. Release what holds the group (DDP: ``Trainer.close``) first. A gloo
        thread that drops the last reference to a collective's tensor once the interpreter is
        shutting down aborts the process ("terminate called without an active exception")."""
        if self.world > 1:
            import torch.distributed as dist

            if dist.is_initialized():
                dist.barrier()
                dist.destroy_process_group()

    def sum(self, values: torch.Tensor) -> torch.Tensor:
        if self.world > 1:
            import torch.distributed as dist

            dist.all_reduce(values)
        return values


def distributed_model(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """``model`` in DistributedDataParallel; its buffers are constants, so they are not re-sent each step."""
    import inspect

    from torch.nn.parallel import DistributedDataParallel as DDP

    newer = "forward_sync_buffers" in inspect.signature(DDP).parameters  # torch >= 2.13 renamed the option
    return DDP(model, device_ids=[device.index] if device.type == "cuda" else None, gradient_as_bucket_view=True,
               **{"forward_sync_buffers" if newer else "broadcast_buffers": False})


def resolve_device(name: str, dist: Distributed = Distributed()) -> torch.device:
    if dist.world > 1 and torch.cuda.is_available():
        torch.cuda.set_device(dist.local_rank)  # this process's GPU is the default one for streams, events and copies
        return torch.device("cuda", dist.local_rank)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise InputError(None, f"device {name!r} was requested but no CUDA GPU is available", "use device='cpu'")
    return torch.device(name)
