"""Reward isolation: a function that raises, hangs or returns garbage scores the fallback, is counted
per function and logged once; `strict` makes each of these fatal; bad values never become rewards."""

from __future__ import annotations

import logging
import math
import time

import pytest
import torch

from grpo.rewards.guard import RewardError, RewardGuard

TEXTS = ["a", "b", "c", "d"]


def boom(completions, **_):
    raise ZeroDivisionError("division by zero")


def hang(completions, **_):
    time.sleep(30)
    return [1.0] * len(completions)


def short(completions, **_):
    return [1.0]


def not_a_list(completions, **_):
    return "1.0"


def mixed(completions, **_):
    return [1.0, "0.5", None, True]


def test_raising_function_scores_the_fallback_and_logs_its_traceback_once(caplog):
    guard = RewardGuard(fallback=-1.0)
    with caplog.at_level(logging.WARNING, logger="grpo.rewards"):
        for _ in range(3):
            rewards, valid = guard.score(boom, "boom", TEXTS, {})
            assert torch.equal(rewards, torch.full((4,), -1.0)) and bool(valid.all())
    assert guard.pop_stats()["reward_fallback/boom"].item() == 12  # 3 calls x 4 samples
    assert len(caplog.records) == 1
    message = caplog.records[0].getMessage()
    assert message.startswith("reward function 'boom' raised ZeroDivisionError: division by zero;")
    assert "Traceback (most recent call last)" in message and 'raise ZeroDivisionError("division by zero")' in message


def test_hanging_function_times_out_and_scores_the_fallback():
    guard = RewardGuard(timeout=0.2)
    started = time.perf_counter()
    rewards, valid = guard.score(hang, "hang", TEXTS, {})
    assert time.perf_counter() - started < 2.0
    assert torch.equal(rewards, torch.zeros(4)) and bool(valid.all())
    assert guard.pop_stats()["reward_fallback/hang"].item() == 4


@pytest.mark.parametrize(("fn", "detail"), [
    (short, "returned 1 values for 4 completions"),
    (not_a_list, "returned a str for 4 completions"),
])
def test_wrong_length_or_type_scores_every_sample_with_the_fallback(fn, detail, caplog):
    guard = RewardGuard(fallback=0.5)
    with caplog.at_level(logging.WARNING, logger="grpo.rewards"):
        rewards, _ = guard.score(fn, fn.__name__, TEXTS, {})
    assert torch.equal(rewards, torch.full((4,), 0.5))
    assert guard.pop_stats()[f"reward_fallback/{fn.__name__}"].item() == 4
    assert caplog.records[0].getMessage().startswith(f"reward function '{fn.__name__}' {detail};")


def test_a_value_of_the_wrong_type_falls_back_for_that_sample_only():
    guard = RewardGuard(fallback=0.25)
    rewards, valid = guard.score(mixed, "mixed", TEXTS, {})
    assert rewards.tolist() == [1.0, 0.25, 0.0, 0.25]  # "0.5" and True are not numbers
    assert valid.tolist() == [True, True, False, True]  # None: cannot score, excluded from the baseline
    stats = guard.pop_stats()
    assert stats["reward_fallback/mixed"].item() == 2
    assert guard.pop_stats() == {"reward_rejected": torch.tensor(0.0)}  # counts reset after each step


def test_non_finite_and_out_of_range_rewards_are_rejected_and_counted():
    guard = RewardGuard(low=0.0, high=1.0)
    rewards, valid = guard.score(lambda c, **_: [math.nan, math.inf, 2.0, 0.5], "f", TEXTS, {})
    assert rewards.tolist() == [0.0, 0.0, 0.0, 0.5]
    assert valid.tolist() == [False, False, False, True]
    assert guard.pop_stats()["reward_rejected"].item() == 3


@pytest.mark.parametrize(("fn", "message"), [
    (boom, "reward function 'boom' raised ZeroDivisionError: division by zero (guards.reward_strict is on)"),
    (hang, "reward function 'hang' did not return within guards.reward_timeout=0.2 s (guards.reward_strict is on)"),
    (short, "reward function 'short' returned 1 values for 4 completions (guards.reward_strict is on)"),
    (mixed, "reward function 'mixed' returned str '0.5', expected float or None (guards.reward_strict is on)"),
])
def test_strict_mode_makes_every_failure_fatal(fn, message):
    with pytest.raises(RewardError) as error:
        RewardGuard(strict=True, timeout=0.2).score(fn, fn.__name__, TEXTS, {})
    assert str(error.value) == message
