"""Ratio levels: token and sequence (GSPO) log ratios, masking, and GSPO-token gradients."""

import torch

from grpo.algo.ratio import sequence_log_ratio, token_log_ratio
from grpo.algo.registry import RATIO_LEVELS

NEG_INF = float("-inf")


def test_token_log_ratio_hand_numbers():
    logprobs = torch.tensor([[-1.0, -2.0, -3.0]])
    old_logprobs = torch.tensor([[-1.5, -2.0, -2.0]])
    mask = torch.tensor([[True, True, False]])
    # -1 - (-1.5) = 0.5; -2 - (-2) = 0; the masked third position is 0 (not -1).
    assert torch.equal(token_log_ratio(logprobs, old_logprobs, mask), torch.tensor([[0.5, 0.0, 0.0]]))


def test_sequence_log_ratio_value_is_masked_mean_on_every_token():
    logprobs = torch.tensor([[-1.0, -2.0, -3.0], [-1.0, -1.0, -1.0]])
    old_logprobs = torch.tensor([[-1.5, -2.0, -9.0], [-1.3, -1.6, -1.2]])
    mask = torch.tensor([[True, True, False], [True, True, True]])
    # Row 0: token differences [0.5, 0.0] (third masked) -> log s = 0.25 on both active tokens.
    # Row 1: [0.3, 0.6, 0.2] -> log s = 1.1 / 3 on all three tokens.
    expected = torch.tensor([[0.25, 0.25, 0.0], [1.1 / 3] * 3])
    assert torch.allclose(sequence_log_ratio(logprobs, old_logprobs, mask), expected, atol=1e-6)


def test_sequence_log_ratio_gradient_is_gspo_token_form():
    logprobs = torch.tensor([[-1.0, -2.0, -3.0]], requires_grad=True)
    old_logprobs = torch.tensor([[-1.5, -2.0, -2.5]])
    mask = torch.tensor([[True, True, False]])
    weights = torch.tensor([[2.0, 5.0, 7.0]])
    (sequence_log_ratio(logprobs, old_logprobs, mask) * weights).sum().backward()
    # Each active token carries sg[log s] + logprobs_t - sg[logprobs_t], so d/d logprobs_t of
    # sum_t w_t * log_ratio_t is w_t at active tokens and 0 at the masked one: [2, 5, 0].
    assert torch.equal(logprobs.grad, torch.tensor([[2.0, 5.0, 0.0]]))


def test_gspo_token_gradient_equals_sequence_level_gspo_gradient():
    # GSPO paper: with one advantage per completion, GSPO-token and GSPO have the same gradient.
    # Sequence-level: J = s * A with log s = mean_t (logprobs_t - old_t) (differentiated through);
    # token form: J = mean_t exp(log_ratio_t) * A over active tokens.
    torch.manual_seed(0)
    old = torch.randn(2, 4)
    mask = torch.tensor([[True, True, True, False], [True, True, False, False]])
    adv = torch.tensor([[1.5], [-0.5]])
    lp_seq = (old + 0.1 * torch.randn(2, 4)).requires_grad_()
    lp_tok = lp_seq.detach().clone().requires_grad_()

    log_s = ((lp_seq - old) * mask).sum(-1, keepdim=True) / mask.sum(-1, keepdim=True)
    (torch.exp(log_s) * adv).sum().backward()
    per_token = torch.exp(sequence_log_ratio(lp_tok, old, mask)) * adv * mask
    (per_token.sum(-1) / mask.sum(-1)).sum().backward()
    assert torch.allclose(lp_tok.grad, lp_seq.grad, atol=1e-6)
    assert lp_seq.grad.abs().sum() > 0.1  # the comparison is not vacuous


def test_masked_positions_are_zero_and_gradients_finite_with_inf_padding():
    for level in RATIO_LEVELS.names():
        logprobs = torch.tensor([[-1.0, NEG_INF], [NEG_INF, NEG_INF]], requires_grad=True)
        old_logprobs = torch.tensor([[-2.0, NEG_INF], [NEG_INF, NEG_INF]])
        mask = torch.tensor([[True, False], [False, False]])
        log_ratio = RATIO_LEVELS.get(level)(logprobs, old_logprobs, mask)
        # Row 0: only the first token counts, -1 - (-2) = 1 (its own mean too); row 1 is fully masked.
        assert torch.equal(log_ratio, torch.tensor([[1.0, 0.0], [0.0, 0.0]])), level
        log_ratio.sum().backward()
        assert torch.equal(logprobs.grad, torch.tensor([[1.0, 0.0], [0.0, 0.0]])), level


def test_old_logprobs_are_constants():
    for level in RATIO_LEVELS.names():
        logprobs = torch.tensor([[-1.0, -2.0]])
        old_logprobs = torch.tensor([[-1.5, -2.5]], requires_grad=True)
        mask = torch.tensor([[True, True]])
        assert not RATIO_LEVELS.get(level)(logprobs, old_logprobs, mask).requires_grad, level
