"""Optimiser and schedule construction, gradient clipping and the update itself."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import torch

from grpo.config.schema import OptimConfig


@dataclass
class OptimState:
    """The optimiser with its learning-rate schedule."""

    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler


def build_optimizer(parameters: Iterable[torch.nn.Parameter], config: OptimConfig) -> OptimState:
    """AdamW with a linear warm-up to `lr`, constant after it."""
    trainable = [p for p in parameters if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=config.lr, betas=config.betas, weight_decay=config.weight_decay)
    warmup = config.warmup_steps
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: min(1.0, (step + 1) / (warmup + 1)))
    return OptimState(optimizer, scheduler)


def apply_update(
    state: OptimState, parameters: Iterable[torch.nn.Parameter], max_grad_norm: float, finite_loss: bool = True
) -> dict[str, torch.Tensor]:
    """Clip the gradient norm and step, unless the loss or the norm is not finite (then skip and zero grads).

    A skipped update leaves weights, optimiser moments and the schedule exactly as they were.

    Returns the pre-clip gradient norm, the learning rate used and whether the update was skipped.
    """
    params = [p for p in parameters if p.grad is not None]
    grad_norm = torch.nn.utils.clip_grad_norm_(params, max_grad_norm)
    if hasattr(grad_norm, "full_tensor"):  # FSDP2: the norm of sharded gradients is itself a DTensor
        grad_norm = grad_norm.full_tensor()
    lr = state.scheduler.get_last_lr()[0]
    finite = finite_loss and bool(torch.isfinite(grad_norm))
    if finite:
        state.optimizer.step()
        state.scheduler.step()
    state.optimizer.zero_grad(set_to_none=True)
    return {
        "grad_norm": grad_norm.detach() if finite else torch.tensor(math.nan),
        "lr": torch.tensor(lr),
        "skipped_update": torch.tensor(float(not finite)),
    }
