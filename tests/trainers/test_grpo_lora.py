"""The GRPO step with LoRA: the reference log-probs come from the base (adapter off), not a copy."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from grpo.config import load_config
from grpo.config.schema import LoraSettings
from grpo.models.load import add_lora, load_policy, load_tokenizer
from grpo.rewards.combine import WeightedReward
from grpo.tasks.api import Example
from grpo.trainers.grpo import (
    GRPOContext,
    policy_logprobs,
    reference_logprobs,
    rollout_stats,
    sample_rollouts,
    score_rollouts,
)
from grpo.trainers.optim import build_optimizer

pytestmark = pytest.mark.usefixtures("one_thread")


def lengths(completions, **_):
    return [float(len(text)) for text in completions]


def answer_is_seven(completions, answer, **_):
    return [float(a == "7") for a in answer]


def test_reference_is_the_base_under_the_adapter_and_rewards_are_logged_per_function(tiny_qwen2_dir: Path):
    config = load_config(overrides=["rollout.max_new_tokens=6", "rollout.group_size=2"])
    base = load_policy(tiny_qwen2_dir, "float32", torch.device("cpu"))
    policy = add_lora(load_policy(tiny_qwen2_dir, "float32", torch.device("cpu")), LoraSettings(r=4))
    with torch.no_grad():
        for name, param in policy.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.5)
    ctx = GRPOContext(policy=policy, train_model=policy, reference=None, tokenizer=load_tokenizer(tiny_qwen2_dir),
                      optim=build_optimizer(policy.parameters(), config.optim), config=config,
                      generator=torch.Generator().manual_seed(0), adapter_reference=True,
                      rewards=[WeightedReward("lengths", lengths, 0.1), WeightedReward("seven", answer_is_seven, 1.0)])
    examples = [Example("Tom has 3 apples.", "7"), Example("Tom has 4 apples.", "8")]
    batch = sample_rollouts(ctx, examples)
    ref = reference_logprobs(ctx, batch)
    torch.testing.assert_close(ref, policy_logprobs(base, batch, 1.0, 64))
    assert not torch.allclose(ref, policy_logprobs(policy, batch, 1.0, 64), atol=1e-3)

    scored = score_rollouts(ctx, batch, examples)
    stats = rollout_stats(scored)
    # total = 0.1 * length + 1.0 * [answer == 7]; the first prompt's two completions get the bonus
    expected = 0.1 * scored.components["lengths"] + torch.tensor([1.0, 1.0, 0.0, 0.0])
    torch.testing.assert_close(scored.rewards, expected)
    assert float(stats["reward/seven"]) == 0.5
    assert float(stats["reward/lengths"]) == float(scored.components["lengths"].mean())
