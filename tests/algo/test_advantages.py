"""Advantage estimators: worked numbers by hand, edge cases, and a plain-loop reference."""

import math
import random

import pytest
import torch

from grpo.algo.advantages import AdvantageInputs
from grpo.algo.registry import ADVANTAGE_ESTIMATORS

NAN = float("nan")


def _advantages(
    name: str,
    rewards: list[float],
    group_size: int,
    std: str = "sample",
    eps: float = 0.0,
    valid: list[bool] | None = None,
) -> torch.Tensor:
    rewards_t = torch.tensor(rewards, dtype=torch.float64)
    valid_t = torch.ones_like(rewards_t, dtype=torch.bool) if valid is None else torch.tensor(valid)
    inputs = AdvantageInputs(rewards=rewards_t, valid=valid_t, group_size=group_size, std=std, eps=eps)
    return ADVANTAGE_ESTIMATORS.get(name)(inputs)


def _assert_close(actual: torch.Tensor, expected: list[float], atol: float = 1e-9) -> None:
    assert torch.allclose(actual, torch.tensor(expected, dtype=actual.dtype), rtol=0.0, atol=atol), actual


# --- "grpo" -----------------------------------------------------------------------------------


def test_grpo_population_std_worked_example():
    # One group of 10 with two correct: mean = 2/10 = 0.2;
    # population var = (8 * 0.2^2 + 2 * 0.8^2) / 10 = (0.32 + 1.28) / 10 = 0.16, std = 0.4.
    # Zeros: (0 - 0.2) / 0.4 = -0.5; ones: (1 - 0.2) / 0.4 = 2.0.
    rewards = [0, 0, 0, 1, 0, 0, 0, 1, 0, 0]
    expected = [-0.5, -0.5, -0.5, 2.0, -0.5, -0.5, -0.5, 2.0, -0.5, -0.5]
    _assert_close(_advantages("grpo", rewards, 10, std="population"), expected)


def test_grpo_default_eps_goes_outside_the_sqrt():
    # Same group with eps 1e-4 added to the std: zeros -0.2 / 0.4001, ones 0.8 / 0.4001.
    adv = _advantages("grpo", [0, 0, 0, 1, 0, 0, 0, 1, 0, 0], 10, std="population", eps=1e-4)
    _assert_close(adv[[0, 3]], [-0.2 / 0.4001, 0.8 / 0.4001])


def test_grpo_sample_std_four_of_eight():
    # One group of 8 with 4 correct: mean 0.5, squared deviations 8 * 0.25 = 2;
    # sample var 2 / 7, std 0.5345 -> advantages +-0.5 / 0.5345 = +-0.9354.
    adv = _advantages("grpo", [1, 1, 1, 1, 0, 0, 0, 0], 8, std="sample")
    expected_value = 0.5 / math.sqrt(2.0 / 7.0)
    assert abs(expected_value - 0.935) < 1e-3
    _assert_close(adv, [expected_value] * 4 + [-expected_value] * 4)


def test_grpo_sample_and_population_std_differ():
    # The 10-completion group with sample std: var = 1.6 / 9, std = 0.42164, so zeros get
    # -0.2 / 0.42164 = -0.47434 (not -0.5): the convention changes the numbers.
    adv = _advantages("grpo", [0, 0, 0, 1, 0, 0, 0, 1, 0, 0], 10, std="sample")
    _assert_close(adv[[0, 3]], [-0.2 / math.sqrt(1.6 / 9.0), 0.8 / math.sqrt(1.6 / 9.0)])


def test_grpo_groups_are_prompt_major_and_independent():
    # G = 2: groups [1, 0], [5, 5], [2, 4].
    # [1, 0]: mean 0.5, sample std sqrt(0.5) -> +-0.5 / 0.70711 = +-0.70711.
    # [5, 5]: all equal -> 0.  [2, 4]: mean 3, sample std sqrt(2) -> -+1 / 1.41421 = -+0.70711.
    adv = _advantages("grpo", [1, 0, 5, 5, 2, 4], 2)
    h = math.sqrt(0.5)
    _assert_close(adv, [h, -h, 0.0, 0.0, -h, h])


@pytest.mark.parametrize("name", ADVANTAGE_ESTIMATORS.names())
@pytest.mark.parametrize("eps", [0.0, 1e-4])
def test_all_equal_group_gives_exact_zero_without_nan(name, eps):
    # 0.1 * 3 / 3 is not exactly 0.1 in floating point, so the std is not exactly 0; the
    # estimators must still return exact zeros (and with eps = 0 must not divide by ~0).
    adv = _advantages(name, [0.1, 0.1, 0.1, 0.7, 0.7, 0.7], 3, eps=eps)
    assert torch.equal(adv, torch.zeros(6, dtype=torch.float64))


def test_grpo_invalid_rewards_are_excluded_and_get_zero():
    # Group [1, None, 0, 0]: valid rewards [1, 0, 0], mean 1/3,
    # sample var ((2/3)^2 + 2 * (1/3)^2) / 2 = 1/3, std 0.57735.
    # 1 -> (2/3) / 0.57735 = 1.15470; 0 -> -(1/3) / 0.57735 = -0.57735; the invalid one -> 0.
    adv = _advantages("grpo", [1, NAN, 0, 0], 4, valid=[True, False, True, True])
    s = math.sqrt(1.0 / 3.0)
    _assert_close(adv, [(2.0 / 3.0) / s, 0.0, -(1.0 / 3.0) / s, -(1.0 / 3.0) / s])


@pytest.mark.parametrize("name", ADVANTAGE_ESTIMATORS.names())
def test_group_with_fewer_than_two_valid_gives_zero(name):
    # Group 0 has one valid reward (no baseline possible) -> all 0. Group 1 = [0, 1] has signal.
    adv = _advantages(name, [1, NAN, 0, 1], 2, valid=[True, False, True, True])
    assert torch.equal(adv[:2], torch.zeros(2, dtype=torch.float64))
    assert adv[2] < 0 < adv[3]
    assert torch.isfinite(adv).all()


# --- the other estimators, by hand -------------------------------------------------------------


def test_grpo_batch_std_hand_numbers():
    # Groups [1, 0] and [0, 0]: group means 0.5 and 0 -> centred [0.5, -0.5, 0, 0].
    # Batch of raw rewards [1, 0, 0, 0]: mean 0.25, squared deviations 0.5625 + 3 * 0.0625 = 0.75,
    # sample var 0.75 / 3 = 0.25, std 0.5 -> [1, -1, 0, 0].
    _assert_close(_advantages("grpo_batch_std", [1, 0, 0, 0], 2), [1.0, -1.0, 0.0, 0.0])


def test_dr_grpo_subtracts_group_mean_only():
    # [1, 0, 0, 0]: mean 0.25 -> [0.75, -0.25, -0.25, -0.25].
    # [3, 1, 1, 1]: mean 1.5 -> [1.5, -0.5, -0.5, -0.5] (no division by the std 1.0).
    adv = _advantages("dr_grpo", [1, 0, 0, 0, 3, 1, 1, 1], 4)
    _assert_close(adv, [0.75, -0.25, -0.25, -0.25, 1.5, -0.5, -0.5, -0.5])


def test_rloo_leave_one_out_baseline():
    # [1, 0, 0, 0]: the 1 is compared with mean(0, 0, 0) = 0 -> 1; each 0 with mean(1, 0, 0) = 1/3.
    # [1, None, 0, 2]: valid [1, 0, 2]: 1 - mean(0, 2) = 0; 0 - mean(1, 2) = -1.5; 2 - mean(1, 0) = 1.5.
    adv = _advantages(
        "rloo", [1, 0, 0, 0, 1, NAN, 0, 2], 4, valid=[True, True, True, True, True, False, True, True]
    )
    third = 1.0 / 3.0
    _assert_close(adv, [1.0, -third, -third, -third, 0.0, 0.0, -1.5, 1.5])


def test_reinforce_pp_whitens_group_centred_rewards_over_batch():
    # Groups [1, 0] and [0, 0]: centred [0.5, -0.5, 0, 0], batch mean 0.
    # Population var (0.25 + 0.25 + 0 + 0) / 4 = 0.125, std 0.35355 -> [1.41421, -1.41421, 0, 0].
    adv = _advantages("reinforce_pp", [1, 0, 0, 0], 2, std="population")
    _assert_close(adv, [math.sqrt(2.0), -math.sqrt(2.0), 0.0, 0.0])


def test_advantage_inputs_reject_bad_shapes():
    with pytest.raises(ValueError, match="group_size"):
        AdvantageInputs(rewards=torch.zeros(5), valid=torch.ones(5, dtype=torch.bool), group_size=2)
    with pytest.raises(ValueError, match="valid"):
        AdvantageInputs(rewards=torch.zeros(4), valid=torch.ones(4), group_size=2)
    with pytest.raises(ValueError, match="std"):
        AdvantageInputs(rewards=torch.zeros(4), valid=torch.ones(4, dtype=torch.bool), group_size=2, std="x")


# --- plain-loop reference on random inputs -----------------------------------------------------


def _std(xs: list[float], kind: str) -> float:
    mean = sum(xs) / len(xs)
    denom = len(xs) - 1 if kind == "sample" else len(xs)
    return math.sqrt(sum((x - mean) ** 2 for x in xs) / max(denom, 1))


def _reference(
    name: str, rewards: list[float], valid: list[bool], g: int, kind: str, eps: float
) -> list[float]:
    """One completion at a time, straight from the formulas in the module docstrings."""
    out = [0.0] * len(rewards)
    all_valid = [r for r, v in zip(rewards, valid, strict=True) if v]
    centred_valid = []  # (index, r_i - group mean) for every valid completion, for reinforce_pp
    for start in range(0, len(rewards), g):
        members = [i for i in range(start, start + g) if valid[i]]
        group = [rewards[i] for i in members]
        signal = len(group) >= 2 and max(group) > min(group)
        mean = sum(group) / len(group) if group else 0.0
        for i in members:
            centred_valid.append((i, rewards[i] - mean if signal else 0.0))
            if not signal:
                continue
            if name == "grpo":
                out[i] = (rewards[i] - mean) / (_std(group, kind) + eps)
            elif name == "grpo_batch_std":
                out[i] = (rewards[i] - mean) / (_std(all_valid, kind) + eps)
            elif name == "dr_grpo":
                out[i] = rewards[i] - mean
            elif name == "rloo":
                out[i] = rewards[i] - (sum(group) - rewards[i]) / (len(group) - 1)
    if name == "reinforce_pp" and any(c != 0.0 for _, c in centred_valid):
        values = [c for _, c in centred_valid]
        mean, std = sum(values) / len(values), _std(values, kind)
        for i, c in centred_valid:
            out[i] = (c - mean) / (std + eps)
    return out


@pytest.mark.parametrize("name", ADVANTAGE_ESTIMATORS.names())
@pytest.mark.parametrize("kind", ["sample", "population"])
@pytest.mark.parametrize("seed", range(4))
def test_estimators_match_plain_loop_reference(name, kind, seed):
    rng = random.Random(seed)
    g, b = 4, 5
    rewards = [rng.choice([0.0, 1.0, rng.uniform(-2.0, 2.0)]) for _ in range(b * g)]
    rewards[:g] = [0.5] * g  # always include one all-equal group
    valid = [rng.random() < 0.8 for _ in rewards]
    rewards_with_nan = [r if v else NAN for r, v in zip(rewards, valid, strict=True)]
    eps = 1e-4
    actual = _advantages(name, rewards_with_nan, g, std=kind, eps=eps, valid=valid)
    _assert_close(actual, _reference(name, rewards, valid, g, kind, eps), atol=1e-10)
