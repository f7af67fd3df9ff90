"""Fast log-prob paths equal the plain full-logits computation: values and gradients.

- `chunked_logprobs` (output layer in chunks, recomputed in backward) vs log_softmax of full logits.
- `completion_logprobs` through the chunked head vs the model's own logits.
- `grouped_completion_logprobs` (each prompt forwarded once per group) vs the concatenated forward.
"""

from __future__ import annotations

import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM, PreTrainedModel

from grpo.models.chunked_head import chunked_logprobs
from grpo.models.logprobs import (
    completion_logprobs,
    full_logits_logprobs,
    grouped_completion_logprobs,
    output_layer,
)
from grpo.rollout import position_ids_from_mask

VOCAB = 40


def _llama() -> PreTrainedModel:
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                         initializer_range=0.2)
    return LlamaForCausalLM(config)


def _gpt2() -> PreTrainedModel:
    torch.manual_seed(0)
    config = GPT2Config(vocab_size=VOCAB, n_embd=32, n_layer=2, n_head=4, n_positions=64, initializer_range=0.2,
                        bos_token_id=None, eos_token_id=None, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
    return GPT2LMHeadModel(config)


@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("chunk", [1, 7, 1000])
def test_chunked_head_matches_full_logits_values_and_gradients(bias: bool, chunk: int) -> None:
    generator = torch.Generator().manual_seed(0)
    hidden = torch.randn(3, 5, 16, generator=generator, requires_grad=True)  # (N, T, H)
    weight = torch.randn(VOCAB, 16, generator=generator, requires_grad=True)  # (V, H)
    b = torch.randn(VOCAB, generator=generator, requires_grad=True) if bias else None
    targets = torch.randint(VOCAB, (3, 5), generator=generator)
    upstream = torch.randn(3, 5, generator=generator)  # an arbitrary incoming gradient, signs mixed

    logprobs, entropy = chunked_logprobs(hidden, weight, b, targets, 0.7, chunk=chunk)
    grads = torch.autograd.grad((logprobs * upstream).sum(), [hidden, weight] + ([b] if bias else []))

    logits = hidden @ weight.t() + (b if bias else 0)
    expected, expected_entropy = full_logits_logprobs(logits, targets, 0.7)
    expected_grads = torch.autograd.grad((expected * upstream).sum(), [hidden, weight] + ([b] if bias else []))

    torch.testing.assert_close(logprobs, expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(entropy, expected_entropy, rtol=1e-5, atol=1e-5)
    assert not entropy.requires_grad
    for got, want in zip(grads, expected_grads):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def _batch(group_size: int = 3) -> tuple[torch.Tensor, ...]:
    """Two prompts of different lengths (left-padded), G completions each with right padding."""
    prompts = [[5, 6, 7, 8, 9], [10, 11]]
    width = 5
    prompt_ids = torch.tensor([[0] * (width - len(p)) + p for p in prompts]).repeat_interleave(group_size, 0)
    prompt_mask = (prompt_ids != 0)
    generator = torch.Generator().manual_seed(1)
    completion_ids = torch.randint(2, VOCAB, (prompt_ids.shape[0], 6), generator=generator)  # (N, T)
    lengths = torch.tensor([6, 3, 1, 4, 6, 2])[: prompt_ids.shape[0]]
    completion_mask = torch.arange(6).unsqueeze(0) < lengths.unsqueeze(1)
    completion_ids = completion_ids.masked_fill(~completion_mask, 0)
    return prompt_ids, prompt_mask, completion_ids, completion_mask


def _plain(model: PreTrainedModel, input_ids: torch.Tensor, attention_mask: torch.Tensor, T: int, temperature: float):
    logits = model(input_ids=input_ids, attention_mask=attention_mask.long(),
                   position_ids=position_ids_from_mask(attention_mask), use_cache=False).logits[:, -(T + 1) : -1]
    return full_logits_logprobs(logits, input_ids[:, -T:], temperature)


def _ids(args: tuple, kwargs: dict) -> torch.Tensor:
    """The input_ids a base model was called with (GPT-2's head passes them positionally)."""
    return kwargs["input_ids"] if "input_ids" in kwargs else args[0]


def _grads(model: PreTrainedModel, logprobs: torch.Tensor, mask: torch.Tensor) -> list[torch.Tensor]:
    weights = torch.linspace(-1.0, 2.0, mask.numel()).view_as(mask)  # mixed signs per token
    return list(torch.autograd.grad((logprobs * weights * mask).sum(), list(model.parameters()), allow_unused=True))


@pytest.mark.parametrize("build", [_llama, _gpt2])
def test_completion_logprobs_chunked_path_matches_model_logits(build) -> None:
    model = build().train()
    assert output_layer(model) is not None, "plain Llama and GPT-2 heads take the chunked path"
    prompt_ids, prompt_mask, completion_ids, completion_mask = _batch()
    input_ids = torch.cat([prompt_ids, completion_ids], 1)
    mask = torch.cat([prompt_mask, completion_mask], 1)
    logprobs, entropy = completion_logprobs(model, input_ids, mask, 6, 0.8)
    expected, expected_entropy = _plain(model, input_ids, mask, 6, 0.8)
    kept = completion_mask
    torch.testing.assert_close(logprobs[kept], expected[kept], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(entropy[kept], expected_entropy[kept], rtol=1e-5, atol=1e-5)
    for got, want in zip(_grads(model, logprobs, kept), _grads(model, expected, kept)):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("build", [_llama, _gpt2])
def test_shared_prompt_forward_matches_plain_forward(build) -> None:
    model = build().train()
    prompt_ids, prompt_mask, completion_ids, completion_mask = _batch()
    assert output_layer(model) is not None  # runs the one-time head check before calls are counted
    calls = []
    model.base_model.register_forward_pre_hook(lambda m, a, k: calls.append(_ids(a, k).shape), with_kwargs=True)
    logprobs, entropy = grouped_completion_logprobs(
        model, prompt_ids, prompt_mask, completion_ids, completion_mask, 3, 0.8
    )
    # The B = 2 prompts run once; then the N = 6 completions, sorted by length (1, 2 | 3, 4 | 6 | 6)
    # in 4 buckets, each cut to its longest completion minus the last token (which predicts nothing).
    assert calls == [torch.Size(s) for s in ([2, 5], [2, 1], [2, 3], [1, 5], [1, 5])]
    input_ids = torch.cat([prompt_ids, completion_ids], 1)
    expected, expected_entropy = _plain(model, input_ids, torch.cat([prompt_mask, completion_mask], 1), 6, 0.8)
    kept = completion_mask
    torch.testing.assert_close(logprobs[kept], expected[kept], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(entropy[kept], expected_entropy[kept], rtol=1e-5, atol=1e-5)
    for got, want in zip(_grads(model, logprobs, kept), _grads(model, expected, kept)):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)


def test_rows_that_are_not_groups_fall_back_to_the_plain_forward() -> None:
    model = _llama()
    prompt_ids, prompt_mask, completion_ids, completion_mask = _batch()
    rows = slice(1, 4)  # straddles the two groups
    assert output_layer(model) is not None  # runs the one-time head check before calls are counted
    calls = []
    model.base_model.register_forward_pre_hook(lambda m, a, k: calls.append(_ids(a, k).shape), with_kwargs=True)
    logprobs, _ = grouped_completion_logprobs(
        model, prompt_ids[rows], prompt_mask[rows], completion_ids[rows], completion_mask[rows], 3, 1.0
    )
    assert calls == [torch.Size([3, 11])]
    input_ids = torch.cat([prompt_ids, completion_ids], 1)[rows]
    expected, _ = _plain(model, input_ids, torch.cat([prompt_mask, completion_mask], 1)[rows], 6, 1.0)
    kept = completion_mask[rows]
    torch.testing.assert_close(logprobs[kept], expected[kept], rtol=1e-5, atol=1e-5)


def test_a_scaled_head_is_detected_and_uses_the_model_logits() -> None:
    model = _llama()

    def scale(module: torch.nn.Module, args: tuple, output: object) -> None:
        output.logits.mul_(3.0)  # a logit scale the plain lm_head(hidden) would miss

    model.register_forward_hook(scale)
    assert output_layer(model) is None
    prompt_ids, prompt_mask, completion_ids, completion_mask = _batch()
    input_ids = torch.cat([prompt_ids, completion_ids], 1)
    mask = torch.cat([prompt_mask, completion_mask], 1)
    logprobs, _ = completion_logprobs(model, input_ids, mask, 6, 1.0)
    expected, _ = _plain(model, input_ids, mask, 6, 1.0)
    torch.testing.assert_close(logprobs, expected, rtol=1e-5, atol=1e-5)
