"""torch.distributed set-up for torchrun (DDP): nccl on GPU, gloo on CPU."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def init_distributed(device_type: str) -> DistInfo:
    """Join the process group torchrun describes in the environment; a no-op otherwise."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    rank = int(os.environ["RANK"])
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if not dist.is_initialized():
        backend = "nccl" if device_type == "cuda" else "gloo"
        if device_type == "cuda":
            torch.cuda.set_device(local_rank)
        dist.init_process_group(backend=backend)
    return DistInfo(rank, world, local_rank)


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def mean_across(value: torch.Tensor, info: DistInfo) -> torch.Tensor:
    if info.enabled:
        value = value.clone()
        dist.all_reduce(value)
        value /= info.world_size
    return value


def agree_on_stop(reason: str | None, reasons: tuple[str, ...], info: DistInfo,
                  device: torch.device) -> str | None:
    """The stop reason every rank acts on: the last of ``reasons`` that any rank has.

    A signal reaches the ranks a step apart; if one stopped alone, the others would wait in the
    next step's all-reduce forever. One tiny all-reduce per step keeps them in step.
    """
    if not info.enabled:
        return reason
    code = torch.tensor([0 if reason is None else reasons.index(reason) + 1], device=device)
    dist.all_reduce(code, op=dist.ReduceOp.MAX)
    index = int(code.item())
    return reasons[index - 1] if index else None


def shutdown(info: DistInfo) -> None:
    if info.enabled and dist.is_initialized():
        dist.destroy_process_group()
