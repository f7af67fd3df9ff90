"""The trainer's log-probs of sampled tokens equal the sampler's own (same weights, same temperature)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from grpo.models.load import load_policy, load_tokenizer
from grpo.models.logprobs import completion_logprobs
from grpo.rollout import SamplingParams, generate


@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_completion_logprobs_match_sampler_logprobs(tiny_model_dir: Path, temperature: float):
    tokenizer = load_tokenizer(tiny_model_dir)
    model = load_policy(tiny_model_dir, "float32", torch.device("cpu"))
    prompts = [tokenizer(text)["input_ids"] for text in ("1+2*3=", "(4-1)*2+7=", "9=")]
    generator = torch.Generator().manual_seed(0)
    batch = generate(model, prompts, group_size=3, params=SamplingParams(temperature, max_new_tokens=6),
                     eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, generator=generator)
    input_ids, attention_mask = batch.sequences()
    logprobs, entropy = completion_logprobs(model, input_ids, attention_mask, batch.completion_ids.shape[1],
                                            temperature)
    mask = batch.completion_mask
    torch.testing.assert_close(logprobs[mask], batch.sampler_logprobs[mask], atol=1e-5, rtol=1e-5)
    assert logprobs.requires_grad and not entropy.requires_grad
    vocab = len(tokenizer)
    assert torch.all(entropy[mask] >= 0) and torch.all(entropy[mask] <= torch.log(torch.tensor(float(vocab))) + 1e-4)
