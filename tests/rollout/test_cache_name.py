"""The KV cache goes to the model under the name its forward declares, and comes back from the field
its output class declares: `cache` (transformers 5.24 here) or `past_key_values` (5.19, and models
that only take **kwargs). A wrong guess is silent on 5.19 (an unknown `cache=` vanishes into
**kwargs and every token decodes without its prefix), so each convention is tested with a fake
forward signature, and the installed transformers with a real decode that must raise no deprecation.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass

import pytest
import torch
import transformers
from transformers import PreTrainedModel

from grpo.rollout import SamplingParams, generate
from grpo.rollout.cache_name import cache_keyword, innermost, returned_cache


class NewStyle(torch.nn.Module):
    def forward(self, input_ids=None, attention_mask=None, cache=None, use_cache=None, **kwargs):
        return input_ids


class OldStyle(torch.nn.Module):
    def forward(self, input_ids=None, attention_mask=None, past_key_values=None, use_cache=None, **kwargs):
        return input_ids


class KwargsOnly(torch.nn.Module):
    def forward(self, input_ids=None, **kwargs):
        return input_ids


class PeftLike(torch.nn.Module):
    """Like peft's PeftModelForCausalLM: its forward names neither, the base model does."""

    def __init__(self, base: torch.nn.Module) -> None:
        super().__init__()
        self.base = base

    def get_base_model(self) -> torch.nn.Module:
        return self.base

    def forward(self, input_ids=None, attention_mask=None, **kwargs):
        return self.base(input_ids=input_ids, **kwargs)


class DDPLike(torch.nn.Module):
    def __init__(self, module: torch.nn.Module) -> None:
        super().__init__()
        self.module = module

    def forward(self, *args, **kwargs):
        return self.module(*args, **kwargs)


@pytest.mark.parametrize(("model", "name"), [
    (NewStyle(), "cache"),
    (OldStyle(), "past_key_values"),
    (KwargsOnly(), "past_key_values"),
    (PeftLike(NewStyle()), "cache"),
    (PeftLike(OldStyle()), "past_key_values"),
    (DDPLike(PeftLike(NewStyle())), "cache"),
    (DDPLike(OldStyle()), "past_key_values"),
], ids=["new", "old", "kwargs-only", "peft-new", "peft-old", "ddp-peft-new", "ddp-old"])
def test_the_keyword_follows_the_innermost_forward_signature(model, name):
    assert cache_keyword(model) == name


def test_a_compiled_wrapper_is_unwrapped():
    base = NewStyle()

    class Compiled(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self._orig_mod = base

    assert innermost(Compiled()) is base


@dataclass
class NewOutput:
    logits: object = None
    cache: object = None


@dataclass
class OldOutput:
    logits: object = None
    past_key_values: object = None


def test_the_returned_cache_is_read_from_the_declared_field():
    assert returned_cache(NewOutput(cache="kv")) == "kv"
    assert returned_cache(OldOutput(past_key_values="kv")) == "kv"


def test_the_installed_transformers_decodes_with_its_cache_and_no_deprecation(llama: PreTrainedModel, caplog):
    declared = "cache" in __import__("inspect").signature(llama.forward).parameters
    assert cache_keyword(llama) == ("cache" if declared else "past_key_values")
    calls = []
    llama.register_forward_pre_hook(lambda module, args, kwargs: calls.append(kwargs), with_kwargs=True)
    with warnings.catch_warnings(), caplog.at_level(logging.WARNING, logger="transformers"):
        warnings.simplefilter("error", FutureWarning)
        generate(llama, [[1, 2, 3], [4, 5]], group_size=2, params=SamplingParams(max_new_tokens=4),
                 eos_token_id=0, pad_token_id=0, generator=torch.Generator().manual_seed(0), fast=False)
    assert not [record for record in caplog.records if "deprecated" in record.getMessage()], transformers.__version__
    decode_calls = calls[1:]  # after the prefill, every step hands the model a filled cache
    assert decode_calls and all(call.get(cache_keyword(llama)) is not None for call in decode_calls)
