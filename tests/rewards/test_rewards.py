"""The exact-answer reward and the guard that checks what reward functions return."""

from __future__ import annotations

import math

import pytest
import torch

from grpo.rewards import RewardError, exact_answer, final_answer, score


def test_final_answer_is_text_after_last_equals():
    assert final_answer("2+12=14") == "14"
    assert final_answer(" 27 ") == "27"
    assert final_answer("3+24=") == ""


def test_exact_answer_scores_only_the_exact_integer():
    completions = ["2+12=14", "4*6=24", "2+12=14.0", "2+12=014", "14"]
    assert exact_answer(completions, answer=["14"] * 5) == [1.0, 0.0, 0.0, 0.0, 1.0]


def test_guard_marks_none_and_non_finite_as_invalid():
    fn = lambda completions, **_: [1.0, None, math.nan, 0.0]
    rewards, valid = score(fn, "f", ["a", "b", "c", "d"], {})
    assert torch.equal(valid, torch.tensor([True, False, False, True]))
    assert torch.equal(rewards, torch.tensor([1.0, 0.0, 0.0, 0.0]))


def test_guard_refuses_wrong_length_and_type():
    with pytest.raises(RewardError, match="returned 1 values for 2 completions"):
        score(lambda completions, **_: [1.0], "short", ["a", "b"], {})
    with pytest.raises(RewardError, match="returned str"):
        score(lambda completions, **_: ["1", 0.0], "texty", ["a", "b"], {})
