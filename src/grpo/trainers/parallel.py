"""How the trained modules are spread over ranks: one process, DDP, or FSDP2 (`distributed.strategy`).

Everything the optimiser updates (the policy, and PPO's critic) sits in one `TrainModules`, and each
micro-batch's loss is computed inside one call of it, so DDP sees a single forward per backward even
when a value head shares the policy's backbone. Under FSDP2, every decoder layer and each network
(policy, reference, a separate critic, the value head) is `fully_shard`-ed, each network its own
root, since the policy also runs alone (generation, evaluation); generation gathers the full weights
first (`gathered`), because ranks decode different numbers of tokens and a sharded forward is a
collective.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import TypeVar

import torch
from peft import get_peft_model
from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict
from torch.distributed.fsdp import FSDPModule, MixedPrecisionPolicy, fully_shard
from transformers import AutoModelForCausalLM

from grpo import dist

ResultT = TypeVar("ResultT")
# Whole (unsharded) tensors on the CPU, on the main rank: checkpoints and exports are the same files
# whatever the strategy and world size.
FULL_STATE = StateDictOptions(full_state_dict=True, cpu_offload=True)


class TrainModules(torch.nn.Module):
    """The policy and, for PPO, the critic: the one module that gradients are synchronised over."""

    def __init__(self, policy: torch.nn.Module, critic: torch.nn.Module | None = None) -> None:
        super().__init__()
        self.policy = policy
        self.critic = critic

    def forward(self, compute: Callable[[], ResultT]) -> ResultT:
        """Run `compute` (a micro-batch's loss) inside this module's forward, where DDP/FSDP hook in."""
        return compute()


def decoder_layers(model: torch.nn.Module) -> list[torch.nn.Module]:
    """The repeated blocks of a transformers model (the classes it names in `_no_split_modules`)."""
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    names = set(getattr(inner, "_no_split_modules", None) or ())
    return [module for module in model.modules() if type(module).__name__ in names]


def mixed_precision(device: torch.device, dtype: torch.dtype | None) -> MixedPrecisionPolicy:
    """bf16 (or fp16) parameters with fp32 gradient reduction on GPUs; full precision otherwise."""
    if dtype is None or device.type != "cuda":
        return MixedPrecisionPolicy()
    return MixedPrecisionPolicy(param_dtype=dtype, reduce_dtype=torch.float32)


def shard(model: torch.nn.Module, policy: MixedPrecisionPolicy) -> None:
    """FSDP2 in place: each decoder layer, then the model itself (embeddings, norm and head)."""
    for layer in decoder_layers(model):
        fully_shard(layer, mp_policy=policy)
    fully_shard(model, mp_policy=policy)


def distribute(
    modules: TrainModules, frozen: list[torch.nn.Module], strategy: str, device: torch.device,
    dtype: torch.dtype | None = None,
) -> torch.nn.Module:
    """The module losses run through: `modules` itself on one process, a DDP wrapper, or sharded in place.

    `frozen` (the reference policy) is sharded alongside under FSDP so its memory is split too.
    """
    if dist.world_size() == 1:
        return modules
    if strategy == "ddp":
        device_ids = [device.index] if device.type == "cuda" else None
        return torch.nn.parallel.DistributedDataParallel(modules, device_ids=device_ids, broadcast_buffers=False)
    policy = mixed_precision(device, dtype)
    for model in [modules.policy, *frozen]:
        shard(model, policy)
    if modules.critic is not None:  # each piece its own FSDP root: the policy also runs outside the critic
        if modules.critic.lm is not modules.policy:
            shard(modules.critic.lm, policy)
        fully_shard(modules.critic.head, mp_policy=policy)
    return modules


@contextlib.contextmanager
def gradient_sync(trainable: torch.nn.Module, enabled: bool) -> Iterator[None]:
    """Hold back the cross-rank gradient reduction of a micro-batch that is not the last one."""
    if enabled or dist.world_size() == 1:
        yield
    elif isinstance(trainable, torch.nn.parallel.DistributedDataParallel):
        with trainable.no_sync():
            yield
    else:
        sharded = [module for module in trainable.modules() if isinstance(module, FSDPModule)]
        for module in sharded:
            module.set_requires_gradient_sync(False, recurse=False)
        try:
            yield
        finally:
            for module in sharded:
                module.set_requires_gradient_sync(True, recurse=False)


def is_sharded(model: torch.nn.Module) -> bool:
    return isinstance(model, FSDPModule)


def unsharded_copy(model: torch.nn.Module) -> torch.nn.Module | None:
    """A plain CPU copy of a sharded model (peft adapters kept) on the main rank, None elsewhere.

    Every rank must call it: the full weights are gathered from all of them.
    """
    full = get_model_state_dict(model, options=FULL_STATE)
    if not dist.is_main():
        return None
    adapted = hasattr(model, "peft_config")
    inner = model.get_base_model() if adapted else model
    plain = AutoModelForCausalLM.from_config(inner.config)
    if adapted:
        plain = get_peft_model(plain, model.peft_config["default"])
    plain.load_state_dict(full)
    return plain


@contextlib.contextmanager
def gathered(model: torch.nn.Module) -> Iterator[None]:
    """Full weights of a sharded model for the duration (generation): forwards then make no collectives.

    Costs one unsharded copy of the model's parameters per rank while it lasts; a no-op unless sharded.
    """
    sharded = [module for module in model.modules() if isinstance(module, FSDPModule)]
    for module in sharded:
        module.set_reshard_after_forward(False)
        module.unshard()
    try:
        yield
    finally:
        for module in sharded:
            module.reshard()
            module.set_reshard_after_forward(True)
