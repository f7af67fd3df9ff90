"""KL estimators k1, k2, k3: hand numbers, non-negativity, and unbiasedness on a categorical pair."""

import math

import pytest
import torch

from grpo.algo.kl import kl_k1, kl_k2, kl_k3, masked_kl
from grpo.algo.registry import KL_ESTIMATORS

LOG2 = math.log(2.0)


def test_hand_numbers_policy_above_reference():
    # pi = 0.5, pi_ref = 0.25 at the sampled token: log pi - log ref = log 2 = 0.693147.
    lp = torch.tensor([[math.log(0.5)]], dtype=torch.float64)
    ref = torch.tensor([[math.log(0.25)]], dtype=torch.float64)
    assert math.isclose(kl_k1(lp, ref).item(), LOG2, abs_tol=1e-12)  # k1 = log 2
    assert math.isclose(kl_k2(lp, ref).item(), 0.5 * LOG2**2, abs_tol=1e-12)  # 0.5 * 0.480453 = 0.240227
    # k3 = ref/pi - log(ref/pi) - 1 = 0.5 + log 2 - 1 = 0.193147.
    assert math.isclose(kl_k3(lp, ref).item(), 0.5 + LOG2 - 1.0, abs_tol=1e-12)


def test_hand_numbers_policy_below_reference():
    # pi = 0.25, pi_ref = 0.5: k1 = -log 2 (negative), k2 = 0.240227, k3 = 2 - log 2 - 1 = 0.306853.
    lp = torch.tensor([[math.log(0.25)]], dtype=torch.float64)
    ref = torch.tensor([[math.log(0.5)]], dtype=torch.float64)
    assert math.isclose(kl_k1(lp, ref).item(), -LOG2, abs_tol=1e-12)
    assert math.isclose(kl_k2(lp, ref).item(), 0.5 * LOG2**2, abs_tol=1e-12)
    assert math.isclose(kl_k3(lp, ref).item(), 2.0 - LOG2 - 1.0, abs_tol=1e-12)


def test_k3_is_non_negative_and_zero_when_equal():
    generator = torch.Generator().manual_seed(0)
    lp = -torch.rand(4, 16, generator=generator, dtype=torch.float64) * 5
    ref = -torch.rand(4, 16, generator=generator, dtype=torch.float64) * 5
    assert (kl_k3(lp, ref) >= 0).all()
    assert torch.equal(kl_k3(lp, lp), torch.zeros_like(lp))


# Two categorical distributions over 3 symbols.
P = torch.tensor([0.5, 0.3, 0.2], dtype=torch.float64)  # the policy pi (tokens are sampled from it)
Q = torch.tensor([0.2, 0.3, 0.5], dtype=torch.float64)  # the reference
# KL(P || Q) = 0.5 log(2.5) + 0.3 log(1) + 0.2 log(0.4) = 0.3 * log(2.5) = 0.274887.
TRUE_KL = 0.3 * math.log(2.5)


def test_true_kl_constant():
    assert math.isclose((P * (P / Q).log()).sum().item(), TRUE_KL, abs_tol=1e-12)


def test_k1_and_k3_are_unbiased_exactly():
    # E_{x~P}[k3(x)] = sum_x P(x) (Q/P - log(Q/P) - 1) = sum Q + KL(P||Q) - 1 = KL(P||Q), and
    # E_P[k1] = KL(P||Q) by definition; the expectation is a finite sum, so this is exact.
    for name in ("k1", "k3"):
        per_symbol = KL_ESTIMATORS.get(name)(P.log().unsqueeze(0), Q.log().unsqueeze(0))  # (1, 3)
        assert math.isclose((P * per_symbol[0]).sum().item(), TRUE_KL, abs_tol=1e-12), name
    # k2 is biased: E_P[k2] = 0.5 * 0.7 * log(2.5)^2 = 0.293862, clearly not 0.274887.
    per_symbol = kl_k2(P.log().unsqueeze(0), Q.log().unsqueeze(0))
    assert abs((P * per_symbol[0]).sum().item() - TRUE_KL) > 0.015


def test_k3_mean_over_samples_estimates_kl():
    generator = torch.Generator().manual_seed(0)
    samples = torch.multinomial(P, 20_000, replacement=True, generator=generator)  # (S,)
    k3 = kl_k3(P.log()[samples].unsqueeze(0), Q.log()[samples].unsqueeze(0))
    # Per-sample std of k3 here is about 0.35, so the standard error is about 0.0025; allow 0.01.
    assert abs(k3.mean().item() - TRUE_KL) < 0.01


def test_masked_kl_gives_no_nan_gradient_at_a_padded_far_off_position():
    # the case: the policy's padded log-prob is -95, the reference's is 0 there, so the raw
    # log-ratio is 95 and exp(95) overflows fp32; masked_kl zeroes the log-ratio there first.
    logprobs = torch.tensor([[-1.0, -95.0]], requires_grad=True)
    ref = torch.tensor([[-1.2, 0.0]])
    mask = torch.tensor([[True, False]])
    kl = masked_kl("k3", logprobs, ref, mask)
    (0.04 * kl.sum()).backward()
    # t=0: log r = -0.2, k3 = e^-0.2 + 0.2 - 1 = 0.0187308; d k3 / d logp = 1 - e^-0.2 = 0.1812692
    torch.testing.assert_close(kl, torch.tensor([[0.0187308, 0.0]]), atol=1e-6, rtol=0)
    torch.testing.assert_close(logprobs.grad, torch.tensor([[0.04 * 0.1812692, 0.0]]), atol=1e-7, rtol=0)


def test_k3_clamps_the_log_ratio_at_twenty():
    # log r = 30 is clamped to 20: k3 = e^20 - 20 - 1, finite, where e^30 would still be finite in fp32 but
    # e^100 would not
    value = kl_k3(torch.tensor([-100.0]), torch.tensor([-70.0]))
    assert float(value) == pytest.approx(math.exp(20) - 21, rel=1e-6)
    assert torch.isfinite(kl_k3(torch.tensor([-200.0]), torch.tensor([0.0]))).all()
