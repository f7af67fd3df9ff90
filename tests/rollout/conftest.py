"""Tiny random-weight causal LMs of three architectures, built locally (no downloads).

Weights are drawn with a large initializer range so next-token distributions are peaked: greedy
choices then have clear margins and log-prob checks are not comparing near-uniform numbers.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from transformers import (
    GPT2Config,
    GPT2LMHeadModel,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedModel,
    Qwen2Config,
    Qwen2ForCausalLM,
)

VOCAB = 32
INIT_RANGE = 0.3


def _llama() -> PreTrainedModel:
    config = LlamaConfig(
        vocab_size=VOCAB,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=64,
        initializer_range=INIT_RANGE,
    )
    return LlamaForCausalLM(config)


def _qwen2() -> PreTrainedModel:
    config = Qwen2Config(
        vocab_size=VOCAB,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=64,
        initializer_range=INIT_RANGE,
    )
    return Qwen2ForCausalLM(config)


def _gpt2() -> PreTrainedModel:
    # GPT-2 keeps its default dropout of 0.1, so tests also see whether generation runs in eval mode.
    config = GPT2Config(
        vocab_size=VOCAB,
        n_embd=32,
        n_layer=2,
        n_head=4,
        n_positions=64,
        initializer_range=INIT_RANGE,
        # GPT-2's default special ids (50256) lie outside the tiny vocabulary; the engine takes its
        # EOS and pad ids as arguments, so the config needs none.
        bos_token_id=None,
        eos_token_id=None,
    )
    return GPT2LMHeadModel(config)


BUILDERS: dict[str, Callable[[], PreTrainedModel]] = {"llama": _llama, "qwen2": _qwen2, "gpt2": _gpt2}


def _build(arch: str, seed: int = 0) -> PreTrainedModel:
    """A freshly seeded tiny model of the named architecture, in eval mode."""
    torch.manual_seed(seed)
    return BUILDERS[arch]().eval()


@pytest.fixture
def make_model() -> Callable[[str], PreTrainedModel]:
    """Factory for a fresh tiny model by architecture name, for tests that change the model's state."""
    return _build


@pytest.fixture(scope="module", params=sorted(BUILDERS))
def causal_lm(request: pytest.FixtureRequest) -> PreTrainedModel:
    """Each tiny architecture in turn (the engine must work for all of them)."""
    return _build(request.param)


@pytest.fixture(scope="module")
def llama() -> PreTrainedModel:
    """The tiny Llama, for tests where one architecture is enough."""
    return _build("llama")


@pytest.fixture
def eos_at_position() -> Callable[[int, int], PreTrainedModel]:
    """Factory (position, eos_token_id): a tiny Llama that emits EOS exactly at absolute `position`.

    A forward hook sets the EOS logit to +1e4 where the input token's position id equals `position`
    and to -1e4 everywhere else, so EOS is chosen deterministically (greedy or sampled) at a
    completion index that depends only on the prompt length: with a prompt of length L the EOS is
    completion token `position - L + 1`; a prompt longer than `position + 1` never emits it. Because
    the trigger is the position id the engine passes, a wrong position id shows up as a misplaced EOS.
    """

    def build(position: int, eos_token_id: int) -> PreTrainedModel:
        model = _build("llama", seed=1)

        def force_eos(module: torch.nn.Module, args: tuple, kwargs: dict, output: object) -> None:
            logits = output.logits  # (n, S_kept, V), the last S_kept columns of the input
            at = kwargs["position_ids"][:, -logits.shape[1] :] == position  # (n, S_kept)
            logits[..., eos_token_id] = torch.where(at, 1e4, -1e4)

        model.register_forward_hook(force_eos, with_kwargs=True)
        return model

    return build
