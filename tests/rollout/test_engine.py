"""Tests for `generate`: cached == uncached, EOS and padding, seeding, group order, sequences()."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from transformers import PreTrainedModel

from grpo.rollout import RolloutBatch, SamplingParams, generate, position_ids_from_mask

PAD_ID = 0
EOS_ID = 1
# (position, eos_token_id) -> a model that emits EOS exactly at that position; see conftest.
EosModelFactory = Callable[[int, int], PreTrainedModel]
# Different lengths, so the shorter prompts are left-padded in the batch.
PROMPTS = [[3, 4, 5, 6, 7, 8, 9], [10, 11], [12, 13, 14, 15]]
GREEDY = SamplingParams(temperature=0.0, max_new_tokens=8)


def _generate(
    model: PreTrainedModel,
    params: SamplingParams,
    group_size: int = 1,
    seed: int = 0,
    prompts: list[list[int]] = PROMPTS,
) -> RolloutBatch:
    return generate(
        model,
        prompts,
        group_size=group_size,
        params=params,
        eos_token_id=EOS_ID,
        pad_token_id=PAD_ID,
        generator=torch.Generator().manual_seed(seed),
    )


@torch.no_grad()
def _uncached_greedy(model: PreTrainedModel, prompt: list[int], steps: int) -> tuple[list[int], list[float]]:
    """Reference decoder: one prompt, no padding, no cache; the whole sequence is re-run per token."""
    sequence, tokens, logprobs = list(prompt), [], []
    for _ in range(steps):
        logits = model(input_ids=torch.tensor([sequence]), use_cache=False).logits[0, -1]  # (V,)
        token = int(logits.argmax())
        tokens.append(token)
        logprobs.append(float(torch.log_softmax(logits, -1)[token]))
        sequence.append(token)
        if token == EOS_ID:
            break
    return tokens, logprobs


@torch.no_grad()
def _full_forward_logprobs(model: PreTrainedModel, batch: RolloutBatch, temperature: float) -> torch.Tensor:
    """(N, T) log_softmax(logits / temperature) at each completion token, from one uncached forward."""
    input_ids, attention_mask = batch.sequences()  # (N, P+T) each
    logits = model(
        input_ids=input_ids,
        attention_mask=attention_mask,
        position_ids=position_ids_from_mask(attention_mask),
        use_cache=False,
    ).logits
    width = batch.prompt_ids.shape[1]
    logits = logits[:, width - 1 : -1].float() / temperature  # (N, T, V), column j predicts token j
    return torch.log_softmax(logits, -1).gather(-1, batch.completion_ids[..., None]).squeeze(-1)


def test_cached_greedy_equals_uncached_recompute(causal_lm: PreTrainedModel) -> None:
    batch = _generate(causal_lm, GREEDY, group_size=2)
    for row in range(batch.num_completions):
        tokens, logprobs = _uncached_greedy(causal_lm, PROMPTS[row // 2], GREEDY.max_new_tokens)
        kept = batch.completion_mask[row]
        assert batch.completion_ids[row][kept].tolist() == tokens
        torch.testing.assert_close(
            batch.sampler_logprobs[row][kept], torch.tensor(logprobs), rtol=0, atol=1e-5
        )
        assert bool(batch.truncated[row]) == (tokens[-1] != EOS_ID)


@pytest.mark.parametrize("temperature", [0.0, 0.7])
def test_sampler_logprobs_equal_padded_full_forward(causal_lm: PreTrainedModel, temperature: float) -> None:
    params = SamplingParams(temperature=temperature, top_k=8, top_p=0.9, max_new_tokens=8)
    batch = _generate(causal_lm, params, group_size=2)
    expected = _full_forward_logprobs(causal_lm, batch, temperature or 1.0)
    mask = batch.completion_mask
    torch.testing.assert_close(batch.sampler_logprobs[mask], expected[mask], rtol=0, atol=1e-5)
    assert (batch.sampler_logprobs[~mask] == 0).all()


def test_eos_is_kept_and_followed_by_padding(eos_at_position: EosModelFactory) -> None:
    # EOS is forced at absolute position 5: the length-3 prompt (positions 0-2) produces completion
    # tokens at positions 3, 4, 5, 6 and the one predicted from position 5 is EOS, i.e. index 3.
    # The length-8 prompt is past position 5 already and runs to max_new_tokens.
    model = eos_at_position(5, EOS_ID)
    for params in (SamplingParams(temperature=0.0, max_new_tokens=6), SamplingParams(max_new_tokens=6)):
        batch = _generate(model, params, prompts=[[3, 4, 5], [6, 7, 8, 9, 10, 11, 12, 13]])
        assert batch.completion_mask.tolist() == [[True] * 4 + [False] * 2, [True] * 6]
        assert batch.completion_ids[0, 3] == EOS_ID
        assert batch.completion_ids[0, 4:].tolist() == [PAD_ID, PAD_ID]
        assert (batch.completion_ids[1] != EOS_ID).all()
        assert batch.sampler_logprobs[0, 4:].tolist() == [0.0, 0.0]
        assert batch.truncated.tolist() == [False, True]
        assert batch.completion_lengths.tolist() == [4, 6]


def test_eos_on_the_last_allowed_token_is_not_truncated(eos_at_position: EosModelFactory) -> None:
    # Prompt of length 3, EOS predicted from position 5 -> completion index 3, the 4th and last token.
    params = SamplingParams(temperature=0.0, max_new_tokens=4)
    batch = _generate(eos_at_position(5, EOS_ID), params, prompts=[[3, 4, 5]])
    assert batch.completion_ids[0, -1] == EOS_ID
    assert batch.truncated.tolist() == [False]


def test_loop_stops_when_every_row_has_finished(eos_at_position: EosModelFactory) -> None:
    # Both prompts have length 3, so both emit EOS at completion index 1 (predicted from position 3).
    model = eos_at_position(3, EOS_ID)
    calls = []
    model.register_forward_pre_hook(lambda module, args, kwargs: calls.append(1), with_kwargs=True)
    batch = _generate(model, SamplingParams(max_new_tokens=10), group_size=2, prompts=[[3, 4, 5], [6, 7, 8]])
    assert batch.completion_ids.shape == (4, 2)
    assert batch.completion_mask.all()
    assert not batch.truncated.any()
    assert len(calls) == 2  # the prefill, then one step; no forward after the last EOS


def test_prompts_are_prefilled_once_then_one_token_per_step(eos_at_position: EosModelFactory) -> None:
    model = eos_at_position(10_000, EOS_ID)  # never reached: EOS is suppressed, every row runs to the end
    shapes = []

    def record(module: torch.nn.Module, args: tuple, kwargs: dict) -> None:
        shapes.append(tuple(kwargs["input_ids"].shape))

    model.register_forward_pre_hook(record, with_kwargs=True)
    _generate(model, SamplingParams(max_new_tokens=5), group_size=4)
    # B = 3 prompts of padded length 7 run once; then N = 12 rows feed one token per step through
    # the cache. The 5th token needs no forward after it.
    assert shapes == [(3, 7)] + [(12, 1)] * 4


def test_same_seed_reproduces_and_other_seeds_differ(llama: PreTrainedModel) -> None:
    params = SamplingParams(temperature=1.0, max_new_tokens=8)
    first, again, other = (_generate(llama, params, group_size=4, seed=s) for s in (0, 0, 1))
    assert torch.equal(first.completion_ids, again.completion_ids)
    torch.testing.assert_close(first.sampler_logprobs, again.sampler_logprobs, rtol=0, atol=0)
    assert not torch.equal(first.completion_ids, other.completion_ids)
    # The G samples of one prompt are drawn independently, not copies of one another.
    assert not torch.equal(first.completion_ids[0], first.completion_ids[1])


def test_greedy_groups_are_prompt_major_copies(causal_lm: PreTrainedModel) -> None:
    single = _generate(causal_lm, GREEDY, group_size=1)
    grouped = _generate(causal_lm, GREEDY, group_size=3)
    assert grouped.num_completions == 9 and grouped.num_prompts == 3
    for name in ("prompt_ids", "prompt_mask", "completion_ids", "completion_mask", "truncated"):
        expected = getattr(single, name).repeat_interleave(3, dim=0)  # rows i*3 .. i*3+2 = prompt i
        assert torch.equal(getattr(grouped, name), expected), name
    torch.testing.assert_close(grouped.sampler_logprobs, single.sampler_logprobs.repeat_interleave(3, 0))
    # The prompts differ, so a row order other than prompt-major could not pass the check above.
    assert not torch.equal(single.completion_ids[0], single.completion_ids[1])


def test_prompts_are_left_padded(llama: PreTrainedModel) -> None:
    batch = _generate(llama, SamplingParams(temperature=0.0, max_new_tokens=2))
    assert batch.prompt_ids[1].tolist() == [PAD_ID] * 5 + [10, 11]
    assert batch.prompt_mask[1].tolist() == [False] * 5 + [True] * 2
    assert batch.prompt_mask[0].all()


def test_sequences_round_trip(llama: PreTrainedModel) -> None:
    batch = _generate(llama, SamplingParams(max_new_tokens=6), group_size=2)
    input_ids, attention_mask = batch.sequences()
    width = batch.prompt_ids.shape[1]
    assert input_ids.shape == attention_mask.shape == (6, width + batch.completion_ids.shape[1])
    assert attention_mask.dtype == torch.bool
    assert torch.equal(input_ids[:, :width], batch.prompt_ids)
    assert torch.equal(input_ids[:, width:], batch.completion_ids)
    assert torch.equal(attention_mask[:, :width], batch.prompt_mask)
    assert torch.equal(attention_mask[:, width:], batch.completion_mask)


def test_batch_tensors_can_be_used_by_autograd(llama: PreTrainedModel) -> None:
    # generate runs under inference_mode; autograd refuses to save inference tensors for backward,
    # and gather (which saves its index) and mul (which saves its other operand) both would.
    batch = _generate(llama, SamplingParams(max_new_tokens=4))
    input_ids, attention_mask = batch.sequences()
    logits = llama(
        input_ids=input_ids,
        attention_mask=attention_mask,
        position_ids=position_ids_from_mask(attention_mask),
    ).logits
    width = batch.prompt_ids.shape[1]
    logprobs = torch.log_softmax(logits[:, width - 1 : -1], -1)  # (N, T, V)
    logprobs = logprobs.gather(-1, batch.completion_ids[..., None]).squeeze(-1)  # (N, T)
    (logprobs * batch.sampler_logprobs * batch.completion_mask).sum().backward()
    assert llama.lm_head.weight.grad is not None
    llama.zero_grad(set_to_none=True)


def test_training_flag_is_restored_and_dropout_is_off_while_sampling(
    make_model: Callable[[str], PreTrainedModel],
) -> None:
    model = make_model("gpt2")  # GPT-2 keeps dropout 0.1, so train-mode sampling would differ
    expected = _generate(model, GREEDY)
    model.train()
    batch = _generate(model, GREEDY)
    assert model.training
    assert torch.equal(batch.completion_ids, expected.completion_ids)
    torch.testing.assert_close(batch.sampler_logprobs, expected.sampler_logprobs, rtol=0, atol=1e-6)
    model.eval()
    _generate(model, GREEDY)
    assert not model.training


def test_bad_inputs_fail_with_a_reason(llama: PreTrainedModel) -> None:
    with pytest.raises(ValueError, match="at least one prompt"):
        _generate(llama, GREEDY, prompts=[])
    with pytest.raises(ValueError, match=r"indices \[1\]"):
        _generate(llama, GREEDY, prompts=[[3], []])
    with pytest.raises(ValueError, match="group_size"):
        _generate(llama, GREEDY, group_size=0)


def test_rollout_batch_rejects_mismatched_shapes() -> None:
    n, p, t = 4, 3, 5
    fields = dict(
        prompt_ids=torch.zeros(n, p, dtype=torch.long),
        prompt_mask=torch.ones(n, p, dtype=torch.bool),
        completion_ids=torch.zeros(n, t, dtype=torch.long),
        completion_mask=torch.ones(n, t, dtype=torch.bool),
        sampler_logprobs=torch.zeros(n, t),
        truncated=torch.zeros(n, dtype=torch.bool),
        group_size=2,
    )
    assert RolloutBatch(**fields).completion_lengths.tolist() == [5, 5, 5, 5]
    with pytest.raises(ValueError, match="sampler_logprobs"):
        RolloutBatch(**{**fields, "sampler_logprobs": torch.zeros(n, t + 1)})
    with pytest.raises(ValueError, match="group_size=3"):
        RolloutBatch(**{**fields, "group_size": 3})
