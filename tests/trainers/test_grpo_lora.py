"""The GRPO step with LoRA: the reference log-probs come from the base (adapter off), not a copy."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from grpo.config.schema import LoraSettings
from grpo.models.load import add_lora, load_policy
from grpo.rewards.combine import WeightedReward
from grpo.tasks.api import Example
from grpo.trainers.logprob_passes import policy_logprobs, reference_logprobs
from grpo.trainers.rollout_phase import rollout_stats, sample, score

pytestmark = pytest.mark.usefixtures("one_thread")


def lengths(completions, **_):
    return [float(len(text)) for text in completions]


def answer_is_seven(completions, answer, **_):
    return [float(a == "7") for a in answer]


def test_reference_is_the_base_under_the_adapter_and_rewards_are_logged_per_function(tiny_qwen2_dir: Path,
                                                                                      make_state):
    base = load_policy(tiny_qwen2_dir, "float32", torch.device("cpu"))
    policy = add_lora(load_policy(tiny_qwen2_dir, "float32", torch.device("cpu")), LoraSettings(r=4))
    with torch.no_grad():
        for name, param in policy.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.5)
    state = make_state(tiny_qwen2_dir, ["rollout.max_new_tokens=6", "rollout.group_size=2"],
                       [WeightedReward("lengths", lengths, 0.1), WeightedReward("seven", answer_is_seven, 1.0)],
                       policy=policy, adapter_reference=True)
    assert state.reference is None
    examples = [Example("Tom has 3 apples.", "7"), Example("Tom has 4 apples.", "8")]
    batch = sample(state, examples)
    ref = reference_logprobs(state, batch, state.config.rollout.temperature)
    torch.testing.assert_close(ref, policy_logprobs(state, base, batch, 1.0))
    assert not torch.allclose(ref, policy_logprobs(state, policy, batch, 1.0), atol=1e-3)

    scored = score(state, batch, examples)
    stats = rollout_stats(scored)
    # total = 0.1 * length + 1.0 * [answer == 7]; the first prompt's two completions get the bonus
    expected = 0.1 * scored.components["lengths"] + torch.tensor([1.0, 1.0, 0.0, 0.0])
    torch.testing.assert_close(scored.rewards, expected)
    assert float(stats["reward/seven"]) == 0.5
    assert float(stats["reward/lengths"]) == float(scored.components["lengths"].mean())
