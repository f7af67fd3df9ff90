"""Gradients of one update on fixed rollouts, for tests/trainers/test_equivalence.py.

    python equivalence_driver.py MODEL_DIR OUT single            one process, the whole global batch
    torchrun --nproc-per-node 2 equivalence_driver.py MODEL_DIR OUT ddp,fsdp
                                                                  each rank its share, every case and strategy
    (a fourth argument runs only the cases whose name starts with it)

Each case builds the state from the same (perturbed) weights, feeds it the same fixed rollouts (sampling
differs by rank, so nothing is sampled here), runs the method's update once and records every trained
parameter's full gradient just before the optimiser steps (clipping is off). Rank 0 writes
OUT/<strategy>/<case>.pt.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

import torch

from grpo import dist
from grpo.config import load_config
from grpo.models.load import add_lora, frozen_copy, load_policy, load_tokenizer
from grpo.models.value_head import build_value_model
from grpo.rewards.combine import single
from grpo.rollout import RolloutBatch
from grpo.trainers.dpo import dpo_update
from grpo.trainers.dpo_pairs import Pairs, best_and_worst, encode_pairs, take_rows
from grpo.trainers.grpo import GRPOBatch, grpo_update, old_logprobs
from grpo.trainers.logprob_passes import reference_logprobs
from grpo.trainers.ppo import ppo_targets, ppo_update
from grpo.trainers.scored import advantages_of
from grpo.trainers.state import TrainState, build_state

B, G, P, T = 4, 4, 5, 6
EVEN, UNEVEN = ((0, 1), (2, 3)), ((0, 1, 2), (3,))  # the groups each of two ranks holds


@dataclass(frozen=True)
class Case:
    method: str
    overrides: list[str] = field(default_factory=list)
    split: tuple[tuple[int, ...], ...] = EVEN
    lora: bool = False


AGGREGATIONS = ("seq_mean_token_mean", "token_mean", "seq_mean_token_sum_norm")
CASES: dict[str, Case] = {
    **{f"grpo-{name}": Case("grpo", [f"algo.loss_aggregation={name}"]) for name in AGGREGATIONS},
    # dynamic sampling leaves ranks holding different numbers of informative groups
    **{f"grpo-{name}-dynamic": Case("grpo", [f"algo.loss_aggregation={name}"], UNEVEN) for name in AGGREGATIONS},
    "grpo-kl-reward-mu2": Case("grpo", ["algo.kl_placement=reward", "algo.mu=2"]),
    "ppo-head": Case("ppo", ["ppo.critic=head"]),
    "ppo-separate": Case("ppo", ["ppo.critic=separate"], UNEVEN),
    "dpo-online": Case("dpo", [], UNEVEN),
    "dpo-offline": Case("dpo", ["dpo.source=offline", "dpo.data=unused.jsonl"]),
    "dpo-online-lora": Case("dpo", [], UNEVEN, lora=True),
    "dpo-offline-lora": Case("dpo", ["dpo.source=offline", "dpo.data=unused.jsonl"], lora=True),
}


def fixed_rollouts(vocab: int) -> tuple[RolloutBatch, torch.Tensor]:
    """B groups of G completions with ragged prompts and completions, and (N,) rewards, from a fixed seed."""
    rng = torch.Generator().manual_seed(123)
    prompt_lengths = torch.randint(2, P + 1, (B,), generator=rng).repeat_interleave(G)  # (N,)
    prompt_ids = torch.randint(3, vocab, (B, P), generator=rng).repeat_interleave(G, 0)  # (N, P)
    prompt_mask = torch.arange(P) >= P - prompt_lengths[:, None]
    lengths = torch.randint(1, T + 1, (B * G,), generator=rng)
    completion_mask = torch.arange(T) < lengths[:, None]
    completion_ids = torch.randint(3, vocab, (B * G, T), generator=rng)
    rewards = torch.randint(0, 3, (B * G,), generator=rng).float()
    batch = RolloutBatch(prompt_ids.where(prompt_mask, 0), prompt_mask, completion_ids.where(completion_mask, 0),
                         completion_mask, torch.zeros(B * G, T), lengths == T, G)
    return batch, rewards


def build(case: Case, model_dir: Path, strategy: str) -> TrainState:
    overrides = ["optim.max_grad_norm=1e9", "optim.micro_batch_size=3", "algo.beta=0.1",
                 f"distributed.strategy={strategy}", *case.overrides, f"algorithm={case.method}"]
    config = load_config(overrides=overrides)
    policy = load_policy(model_dir, "float32", torch.device("cpu"))
    reference = frozen_copy(policy)
    torch.manual_seed(7)  # the same perturbation on every rank: the policy has moved away from the reference
    with torch.no_grad():
        for parameter in policy.parameters():
            parameter.add_(0.02 * torch.randn_like(parameter))
    if case.lora:
        policy, reference = add_lora(policy, load_config(overrides=["model.lora={r: 4, alpha: 8}"]).model.lora), None
        torch.manual_seed(8)
        with torch.no_grad():
            for name, parameter in policy.named_parameters():
                if "lora_B" in name:
                    parameter.normal_(0, 0.1)
    critic = build_value_model(policy, config.ppo.critic) if case.method == "ppo" else None
    if critic is not None:
        torch.nn.init.normal_(critic.head.weight, std=0.1, generator=torch.Generator().manual_seed(9))
    return build_state(config, policy, reference, load_tokenizer(model_dir), torch.Generator().manual_seed(0),
                       single(lambda completions, **_: [0.0] * len(completions)), critic=critic,
                       adapter_reference=case.lora)


def my_groups(case: Case, everything: bool) -> torch.Tensor:
    keep = torch.zeros(B, dtype=torch.bool)
    keep[list(range(B)) if everything else list(case.split[dist.rank()])] = True
    return keep


def offline_pairs(state: TrainState, keep: torch.Tensor) -> Pairs:
    records = [{"prompt": f"{i}+{i}=", "chosen": f"{2 * i}", "rejected": f"{2 * i + 1}{i}"} for i in range(B)]
    return encode_pairs(state.tokenizer, [r for r, k in zip(records, keep.tolist()) if k], torch.device("cpu"))


def run_update(state: TrainState, case: Case, keep: torch.Tensor) -> None:
    """The method's update on this process's groups of the fixed rollouts."""
    everything, rewards = fixed_rollouts(len(state.tokenizer))
    batch = everything.select_groups(keep)
    rewards = rewards[keep.repeat_interleave(G)]
    valid = torch.ones_like(rewards, dtype=torch.bool)
    if case.method == "grpo":
        ref = reference_logprobs(state, batch, 1.0)
        old = old_logprobs(state, batch)
        for _ in range(state.config.algo.mu):
            grpo_update(state, GRPOBatch(batch, advantages_of(state.config.algo, rewards, valid, G), old, ref))
    elif case.method == "ppo":
        ppo_update(state, ppo_targets(state, batch, rewards)[0])
    elif state.config.dpo.source == "offline":
        dpo_update(state, offline_pairs(state, keep))
    else:
        chosen, rejected = best_and_worst(rewards, valid, G)
        dpo_update(state, Pairs(take_rows(batch, torch.cat([chosen, rejected])), []))


def capture(state: TrainState, out: dict[str, torch.Tensor]) -> None:
    """Record every trained parameter's full gradient when the optimiser is about to step (first step only)."""
    modules = getattr(state.trainable, "module", state.trainable)  # DDP wraps TrainModules

    def hook(optimizer: torch.optim.Optimizer, args: tuple, kwargs: dict) -> None:
        if out:
            return
        for name, parameter in modules.named_parameters():
            if parameter.grad is not None:
                grad = parameter.grad
                out[name] = (grad.full_tensor() if hasattr(grad, "full_tensor") else grad).detach().clone()

    state.optim.optimizer.register_step_pre_hook(hook)


def main(model_dir: Path, out: Path, strategies: list[str], only: str = "") -> None:
    with dist.process_group(torch.device("cpu")):
        for strategy in strategies:
            for name, case in CASES.items():
                if only and not name.startswith(only):
                    continue
                single_process = strategy == "single"
                state = build(case, model_dir, "ddp" if single_process else strategy)
                grads: dict[str, torch.Tensor] = {}
                capture(state, grads)
                run_update(state, case, my_groups(case, single_process))
                if dist.is_main():
                    (out / strategy).mkdir(parents=True, exist_ok=True)
                    torch.save(grads, out / strategy / f"{name}.pt")

if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3].split(","), *sys.argv[4:5])
