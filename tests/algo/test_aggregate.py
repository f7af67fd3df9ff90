"""Loss aggregations: hand numbers, micro-batch additivity with global normalisers, BNPO shares."""

import pytest
import torch

from grpo.algo.aggregate import LossNormalizer, bnpo
from grpo.algo.registry import LOSS_AGGREGATIONS

NAN = float("nan")

# Three completions, T = 4: lengths 3, 2 and 0; masked positions hold garbage (NaN) on purpose.
LOSS = torch.tensor([[1.0, 2.0, 3.0, NAN], [4.0, 5.0, NAN, NAN], [NAN, NAN, NAN, NAN]], dtype=torch.float64)
MASK = torch.tensor([[True, True, True, False], [True, True, False, False], [False] * 4])
NORM = LossNormalizer(num_sequences=3, num_tokens=5, max_completion_length=4)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        # Per-completion means 6/3 = 2 and 9/2 = 4.5, the empty one 0; (2 + 4.5 + 0) / 3 = 2.1667.
        ("seq_mean_token_mean", (2.0 + 4.5 + 0.0) / 3.0),
        # All active tokens: (1 + 2 + 3 + 4 + 5) / 5 = 3.
        ("token_mean", 3.0),
        # Dr. GRPO: 15 / (3 sequences * 4 max length) = 1.25.
        ("seq_mean_token_sum_norm", 1.25),
        # BNPO on the whole batch as one micro-batch: 15 / 5 local tokens * 3/3 = 3 (= token_mean).
        ("bnpo", 3.0),
    ],
)
def test_hand_numbers(name, expected):
    value = LOSS_AGGREGATIONS.get(name)(LOSS, MASK, NORM)
    assert value.ndim == 0
    assert value.item() == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("name", ["seq_mean_token_mean", "token_mean", "seq_mean_token_sum_norm"])
def test_micro_batches_with_global_normaliser_sum_to_full_batch(name):
    generator = torch.Generator().manual_seed(0)
    loss = torch.randn(5, 6, generator=generator, dtype=torch.float64)
    mask = torch.rand(5, 6, generator=generator) < 0.7
    mask[3] = False  # one completion with no tokens
    norm = LossNormalizer(num_sequences=5, num_tokens=int(mask.sum()), max_completion_length=6)
    aggregate = LOSS_AGGREGATIONS.get(name)
    full = aggregate(loss, mask, norm)
    # Unequal micro-batches of 2 and 3 completions, each divided by the GLOBAL counts, then summed.
    split = aggregate(loss[:2], mask[:2], norm) + aggregate(loss[2:], mask[2:], norm)
    assert split.item() == pytest.approx(full.item(), abs=1e-12)
    assert abs(full.item()) > 1e-3  # not vacuous


def test_bnpo_combines_micro_batches_by_share():
    # Two micro-batches of one completion each (num_sequences = 2):
    # [1, 2] -> token mean 1.5, share 1/2 -> 0.75;  [6] -> token mean 6, share 1/2 -> 3.  Sum 3.75,
    # unlike token_mean over the batch, 9 / 3 = 3.
    norm = LossNormalizer(num_sequences=2, num_tokens=3, max_completion_length=3)
    first = bnpo(torch.tensor([[1.0, 2.0, 0.0]]), torch.tensor([[True, True, False]]), norm)
    second = bnpo(torch.tensor([[6.0, 0.0, 0.0]]), torch.tensor([[True, False, False]]), norm)
    assert first.item() == pytest.approx(0.75, abs=1e-12)
    assert second.item() == pytest.approx(3.0, abs=1e-12)


def test_token_mean_gradient_is_one_over_global_tokens():
    loss = torch.zeros(2, 3, requires_grad=True)
    mask = torch.tensor([[True, True, False], [True, False, False]])
    norm = LossNormalizer(num_sequences=4, num_tokens=8, max_completion_length=3)
    LOSS_AGGREGATIONS.get("token_mean")(loss, mask, norm).backward()
    # d(sum / 8) / d l = 1/8 at the 3 active tokens of this micro-batch, 0 elsewhere.
    assert torch.equal(loss.grad, torch.tensor([[0.125, 0.125, 0.0], [0.125, 0.0, 0.0]]))


def test_seq_mean_token_mean_weights_short_completions_more():
    loss = torch.zeros(2, 4, requires_grad=True)
    mask = torch.tensor([[True] * 4, [True, False, False, False]])
    LOSS_AGGREGATIONS.get("seq_mean_token_mean")(loss, mask, LossNormalizer(2, 5, 4)).backward()
    # d/dl = 1 / (|o_i| * num_sequences): 1/(4*2) = 0.125 for the long one, 1/(1*2) = 0.5 for the short.
    assert torch.equal(loss.grad, torch.tensor([[0.125] * 4, [0.5, 0.0, 0.0, 0.0]]))


def test_no_tokens_gives_zero():
    for name in LOSS_AGGREGATIONS.names():
        value = LOSS_AGGREGATIONS.get(name)(LOSS[2:], MASK[2:], LossNormalizer(1, 0, 4))
        assert value.item() == 0.0, name


def test_normalizer_validation():
    with pytest.raises(ValueError, match="num_sequences"):
        LossNormalizer(num_sequences=0, num_tokens=1, max_completion_length=1)
    with pytest.raises(ValueError, match="max_completion_length"):
        LossNormalizer(num_sequences=1, num_tokens=1, max_completion_length=0)
