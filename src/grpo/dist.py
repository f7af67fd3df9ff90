"""Process-group awareness: rank, world size, main-rank printing and cross-rank reductions.

Every rank computes; only the main rank writes files or prints progress. With one process (no
`torchrun`), every helper here is a cheap no-op, so the same code path runs either way.
"""

from __future__ import annotations

import os

import torch
import torch.distributed as torch_dist


def world_size() -> int:
    return torch_dist.get_world_size() if torch_dist.is_initialized() else 1


def rank() -> int:
    return torch_dist.get_rank() if torch_dist.is_initialized() else 0


def is_main() -> bool:
    return rank() == 0


def init_from_env(device: torch.device) -> None:
    """Join the process group when launched by torchrun (WORLD_SIZE > 1); else do nothing."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not torch_dist.is_initialized():
        torch_dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")


def print0(*args: object) -> None:
    """print() on the main rank only."""
    if is_main():
        print(*args, flush=True)


def all_reduce_mean(values: torch.Tensor) -> torch.Tensor:
    """Mean of `values` across ranks (a copy; identity with one process)."""
    if world_size() == 1:
        return values
    reduced = values.detach().clone()
    torch_dist.all_reduce(reduced, op=torch_dist.ReduceOp.SUM)
    return reduced / world_size()


def all_reduce_sum(values: torch.Tensor) -> torch.Tensor:
    """Sum of `values` across ranks (a copy; identity with one process)."""
    return _all_reduce(values, torch_dist.ReduceOp.SUM)


def _all_reduce(values: torch.Tensor, op: torch_dist.ReduceOp) -> torch.Tensor:
    if world_size() == 1:
        return values
    reduced = values.detach().clone()
    torch_dist.all_reduce(reduced, op=op)
    return reduced


def all_reduce_max(values: torch.Tensor) -> torch.Tensor:
    """Element-wise maximum of `values` across ranks (a copy; identity with one process)."""
    return _all_reduce(values, torch_dist.ReduceOp.MAX)


def all_gather_objects(value: object) -> list[object]:
    """Every rank's `value`, in rank order (a one-element list with one process)."""
    if world_size() == 1:
        return [value]
    gathered: list[object] = [None] * world_size()
    torch_dist.all_gather_object(gathered, value)
    return gathered


def broadcast_from_main(value: object) -> object:
    """The main rank's `value` on every rank (the value itself with one process)."""
    if world_size() == 1:
        return value
    holder = [value]
    torch_dist.broadcast_object_list(holder, src=0)
    return holder[0]
