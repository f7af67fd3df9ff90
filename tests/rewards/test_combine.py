"""Several weighted reward functions: the total, validity, and loading by import path."""

from __future__ import annotations

import pytest
import torch

from grpo.errors import UserError
from grpo.rewards.combine import WeightedReward, resolve_reward, score_weighted
from grpo.rewards.format import r1_format


def lengths(completions, **_):
    return [float(len(text)) for text in completions]


def maybe(completions, **_):
    return [None if text == "?" else 1.0 for text in completions]


def test_weighted_total_and_components():
    rewards = [WeightedReward("lengths", lengths, 0.5), WeightedReward("maybe", maybe, 2.0)]
    scored = score_weighted(rewards, ["ab", "abcd", "?"], {"answer": ["", "", ""]})
    # "ab": 0.5*2 + 2*1 = 3; "abcd": 0.5*4 + 2*1 = 4; "?": maybe cannot score it -> invalid, total 0
    assert scored.total.tolist() == [3.0, 4.0, 0.0]
    assert scored.valid.tolist() == [True, True, False]
    assert scored.components["lengths"].tolist() == [2.0, 4.0, 1.0]
    assert scored.component_valid["maybe"].tolist() == [True, True, False]


def test_columns_reach_every_function_as_keywords():
    seen = {}

    def spy(completions, answer, nums, **_):
        seen.update(answer=answer, nums=nums)
        return [0.0] * len(completions)

    score_weighted([WeightedReward("spy", spy)], ["x"], {"answer": ["7"], "nums": [[1, 2]]})
    assert seen == {"answer": ["7"], "nums": [[1, 2]]}


def test_resolve_builtin_and_import_path():
    assert resolve_reward("r1_format") is r1_format
    assert resolve_reward("grpo.rewards.format:r1_format") is r1_format


@pytest.mark.parametrize(
    ("function", "message"),
    [
        ("no_such_reward", "rewards.function: no built-in reward 'no_such_reward'"),
        ("no_such_module_xyz:f", "cannot import module 'no_such_module_xyz'"),
        ("grpo.rewards.format:missing", "module 'grpo.rewards.format' has no function 'missing'"),
    ],
)
def test_resolve_errors_name_the_key(function, message):
    with pytest.raises(UserError, match=message):
        resolve_reward(function)


def test_totals_are_float32_tensors():
    scored = score_weighted([WeightedReward("lengths", lengths)], ["a"], {"answer": [""]})
    assert scored.total.dtype == torch.float32
