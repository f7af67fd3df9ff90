"""Process-group awareness: rank, world size, main-rank printing and cross-rank reductions.

Every rank computes; only the main rank writes files or prints progress. With one process (no
`torchrun`), every helper here is a cheap no-op, so the same code path runs either way.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.distributed as torch_dist


def world_size() -> int:
    return torch_dist.get_world_size() if torch_dist.is_initialized() else 1


def rank() -> int:
    return torch_dist.get_rank() if torch_dist.is_initialized() else 0


def is_main() -> bool:
    """Rank 0, or the process torchrun started as rank 0 (before the group is joined or after it is left)."""
    if torch_dist.is_initialized():
        return torch_dist.get_rank() == 0
    return os.environ.get("RANK", "0") == "0"


def init_from_env(device: torch.device) -> bool:
    """Join the process group when launched by torchrun (WORLD_SIZE > 1); True if this call joined it."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not torch_dist.is_initialized():
        torch_dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
        return True
    return False


@contextmanager
def process_group(device: torch.device) -> Iterator[None]:
    """Join the torchrun process group for the block, then leave it (a no-op with one process).

    Leaving explicitly matters: a gloo group still alive at interpreter exit can abort the process
    (SIGABRT) while its worker threads free tensors. A block that ends normally first waits for every
    rank, so no rank tears its sockets down while another is still in a collective. Something inside
    the block (vLLM's shutdown) may already have left the group.
    """
    joined = init_from_env(device)
    try:
        yield
        if joined and torch_dist.is_initialized():
            torch_dist.barrier()
    finally:
        if joined and torch_dist.is_initialized():
            torch_dist.destroy_process_group()


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
