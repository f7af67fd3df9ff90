"""Tests for `sample_next_token`: greedy, temperature, top-k, top-p, seeding and the log-prob convention."""

from __future__ import annotations

import math

import pytest
import torch

from grpo.rollout import SamplingParams, sample_next_token

# Hand-made distribution over 6 tokens, deliberately not in sorted order so a wrong mapping from
# sorted rank back to token id shows up. Sorted: token 3 (0.5), 0 (0.3), 5 (0.15), 1 (0.04),
# 2 (0.005), 4 (0.005).
PROBS = torch.tensor([0.3, 0.04, 0.005, 0.5, 0.005, 0.15])
LOGITS = PROBS.log()


def _seen_tokens(params: SamplingParams, draws: int = 4000, seed: int = 0) -> torch.Tensor:
    """Tokens drawn from LOGITS `draws` times at once (one row per draw) with a seeded generator."""
    generator = torch.Generator().manual_seed(seed)
    tokens, _ = sample_next_token(LOGITS.expand(draws, -1), params, generator)  # (draws,)
    return tokens


def test_greedy_is_argmax_with_untempered_logprobs() -> None:
    logits = torch.randn(8, 11, generator=torch.Generator().manual_seed(1))
    tokens, logprobs = sample_next_token(logits, SamplingParams(temperature=0.0))
    assert torch.equal(tokens, logits.argmax(-1))
    expected = torch.log_softmax(logits, -1).gather(-1, tokens[:, None]).squeeze(-1)
    torch.testing.assert_close(logprobs, expected, rtol=0, atol=1e-6)


@pytest.mark.parametrize("temperature", [0.5, 1.0, 2.0])
def test_top_k_one_equals_greedy(temperature: float) -> None:
    logits = torch.randn(64, 11, generator=torch.Generator().manual_seed(2))
    generator = torch.Generator().manual_seed(0)
    tokens, logprobs = sample_next_token(logits, SamplingParams(temperature=temperature, top_k=1), generator)
    assert torch.equal(tokens, logits.argmax(-1))
    # The log-prob is still that of the tempered, untruncated distribution, not log(1) = 0.
    expected = torch.log_softmax(logits / temperature, -1).gather(-1, tokens[:, None]).squeeze(-1)
    torch.testing.assert_close(logprobs, expected, rtol=0, atol=1e-6)
    assert (logprobs < -1e-3).any()


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        # Mass of the tokens ranked above: 3 -> 0, 0 -> 0.5, 5 -> 0.8. Keep while that mass < top_p.
        (SamplingParams(top_p=0.4), {3}),
        (SamplingParams(top_p=0.75), {3, 0}),
        (SamplingParams(top_p=0.85), {3, 0, 5}),
        # Top-p after top-k measures mass on the renormalised top-2 {3: 0.625, 0: 0.375}: token 0 has
        # 0.625 >= 0.6 above it and is dropped (on the raw distribution, 0.5 < 0.6 would keep it).
        (SamplingParams(top_k=2, top_p=0.6), {3}),
        (SamplingParams(top_k=3), {3, 0, 5}),
        # Temperature 2 flattens the distribution to p ~ sqrt(PROBS): 3 -> 0.357, 0 -> 0.276,
        # 5 -> 0.195, so the mass above 5 is 0.633 < 0.75 and token 5 joins the nucleus.
        (SamplingParams(temperature=2.0, top_p=0.75), {3, 0, 5}),
    ],
)
def test_truncation_keeps_exactly_the_expected_tokens(params: SamplingParams, expected: set[int]) -> None:
    seen = set(_seen_tokens(params).tolist())
    assert seen == expected


def test_truncated_distribution_is_renormalised() -> None:
    # top_p=0.75 keeps {3: 0.5, 0: 0.3}; renormalised, token 3 has probability 0.5 / 0.8 = 0.625.
    # Over 4000 draws the standard error is sqrt(0.625 * 0.375 / 4000) ~ 0.008; 0.03 is ~4 sigma.
    tokens = _seen_tokens(SamplingParams(top_p=0.75))
    assert abs((tokens == 3).float().mean().item() - 0.625) < 0.03


def test_untruncated_frequencies_follow_tempered_softmax() -> None:
    # Temperature 2: p(3) = sqrt(0.5) / sum(sqrt(PROBS)) ~ 0.357; at temperature 1 it would be 0.5.
    tokens = _seen_tokens(SamplingParams(temperature=2.0))
    expected = math.sqrt(0.5) / PROBS.sqrt().sum().item()
    assert abs((tokens == 3).float().mean().item() - expected) < 0.03


def test_logprobs_are_tempered_log_softmax_before_truncation() -> None:
    logits = torch.randn(32, 11, generator=torch.Generator().manual_seed(3)) * 3
    params = SamplingParams(temperature=0.7, top_k=4, top_p=0.8)
    tokens, logprobs = sample_next_token(logits, params, torch.Generator().manual_seed(0))
    expected = torch.log_softmax(logits / 0.7, -1).gather(-1, tokens[:, None]).squeeze(-1)
    assert logprobs.dtype == torch.float32
    torch.testing.assert_close(logprobs, expected, rtol=0, atol=1e-5)


def test_top_k_is_applied_per_row() -> None:
    logits = torch.randn(500, 11, generator=torch.Generator().manual_seed(4))
    tokens, _ = sample_next_token(logits, SamplingParams(top_k=3), torch.Generator().manual_seed(0))
    allowed = logits.topk(3, dim=-1).indices  # (500, 3)
    assert (allowed == tokens[:, None]).any(dim=-1).all()


@pytest.mark.parametrize("params", [SamplingParams(), SamplingParams(temperature=0.8, top_k=5, top_p=0.9)])
def test_same_seed_same_tokens_different_seed_different_tokens(params: SamplingParams) -> None:
    logits = torch.randn(64, 11, generator=torch.Generator().manual_seed(5))

    def draw(seed: int) -> torch.Tensor:
        return sample_next_token(logits, params, torch.Generator().manual_seed(seed))[0]

    assert torch.equal(draw(7), draw(7))
    assert not torch.equal(draw(7), draw(8))


def test_low_precision_logits_give_float32_logprobs() -> None:
    logits = torch.randn(4, 11, generator=torch.Generator().manual_seed(6)).to(torch.bfloat16)
    _, logprobs = sample_next_token(logits, SamplingParams(), torch.Generator().manual_seed(0))
    assert logprobs.dtype == torch.float32


@pytest.mark.parametrize(
    ("field", "value"),
    [("temperature", -0.1), ("top_k", -1), ("top_p", 0.0), ("top_p", 1.5), ("max_new_tokens", 0)],
)
def test_sampling_params_reject_meaningless_values(field: str, value: float) -> None:
    with pytest.raises(ValueError, match=field):
        SamplingParams(**{field: value})
