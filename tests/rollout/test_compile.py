"""`rollout.compile`: the torch.compile'd decode step against the eager engine, its fallback, its config key."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from torch._dynamo.utils import counters
from transformers import PreTrainedModel

import grpo.rollout.engine as engine
import grpo.rollout.sampler as sampler_module
import grpo.trainers.rollout_phase as rollout_phase
from grpo.config import ConfigError, load_config
from grpo.models.load import load_policy, load_tokenizer
from grpo.rewards.combine import single
from grpo.rollout import RolloutBatch, SamplingParams, generate
from grpo.rollout.compiled import CAPACITY_BUCKET
from grpo.tasks.api import Example
from grpo.trainers.state import build_state

PAD_ID, EOS_ID = 0, 1
PROMPTS = [[3, 4, 5, 6, 7, 8, 9], [10, 11], [12, 13, 14, 15]]


def _generate(model: PreTrainedModel, params: SamplingParams, prompts: list[list[int]] = PROMPTS,
              **kwargs: bool) -> RolloutBatch:
    return generate(model, prompts, group_size=2, params=params, eos_token_id=EOS_ID, pad_token_id=PAD_ID,
                    generator=torch.Generator().manual_seed(0), **kwargs)


def _assert_same(compiled: RolloutBatch, eager: RolloutBatch) -> None:
    for name in ("prompt_ids", "prompt_mask", "completion_ids", "completion_mask", "truncated"):
        assert torch.equal(getattr(compiled, name), getattr(eager, name)), name
    torch.testing.assert_close(compiled.sampler_logprobs, eager.sampler_logprobs, rtol=0, atol=1e-5)


def _fallbacks(caught: list[warnings.WarningMessage]) -> list[str]:
    return [str(w.message) for w in caught if str(w.message).startswith("rollout.compile")]


@pytest.mark.slow
def test_compiled_greedy_equals_eager_greedy_and_compiles_once(make_model: Callable[[str], PreTrainedModel]) -> None:
    model = make_model("llama")
    params = SamplingParams(temperature=0.0, max_new_tokens=10)
    graphs = counters["stats"]["unique_graphs"]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        compiled = _generate(model, params, compile=True)
        # Different prompt width (4 instead of 7) and length, same capacity bucket and batch size: no new graph.
        other = [[5, 6, 7, 8], [9, 10, 11], [3]]
        assert -(-(7 + 10) // CAPACITY_BUCKET) == -(-(4 + 10) // CAPACITY_BUCKET)
        again = _generate(model, params, other, compile=True)
    assert not _fallbacks(caught)  # a fallback to eager would warn: the compiled path must really run
    assert counters["stats"]["unique_graphs"] - graphs == 1
    _assert_same(compiled, _generate(model, params, fast=False))
    _assert_same(again, _generate(model, params, other, fast=False))


def test_a_compile_failure_warns_once_and_runs_eager(make_model: Callable[[str], PreTrainedModel],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    model = make_model("llama")
    params = SamplingParams(temperature=1.0, max_new_tokens=6)

    def broken(*args: object) -> None:
        generator = args[-1]
        torch.rand(3, generator=generator)  # consumes randomness before failing, as a failing first step would
        raise RuntimeError("backend exploded\nsecond line")

    monkeypatch.setattr(engine, "decode_static", broken)
    with pytest.warns(RuntimeWarning, match=r"rollout.compile: decoding LlamaForCausalLM eagerly instead "
                                             r"\(RuntimeError: backend exploded\)$"):
        fallen_back = _generate(model, params, compile=True)
    _assert_same(fallen_back, _generate(model, params))  # same random numbers as an eager run
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _generate(model, params, compile=True)
    assert not _fallbacks(caught)  # the model is remembered: no second attempt, no second warning


def test_an_unsupported_cache_runs_eager(make_model: Callable[[str], PreTrainedModel],
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    model = make_model("gpt2")
    monkeypatch.setattr(engine, "static_cache", lambda *args: None)
    params = SamplingParams(temperature=1.0, max_new_tokens=6)
    with pytest.warns(RuntimeWarning, match="not a plain full-attention DynamicCache"):
        fallen_back = _generate(model, params, compile=True)
    _assert_same(fallen_back, _generate(model, params))


def _zeros(completions: list[str], **_: object) -> list[float]:
    return [0.0] * len(completions)


def test_the_config_key_validates_and_reaches_generate(tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_config().rollout.compile is False
    with pytest.raises(ConfigError, match="rollout.compile"):
        load_config(overrides=["rollout.compile=maybe"])
    policy = load_policy(tiny_model_dir, "float32", torch.device("cpu"))
    seen = []
    real = sampler_module.generate
    monkeypatch.setattr(sampler_module, "generate", lambda *args, **kwargs: seen.append(kwargs["compile"]) or real(
        *args, **{**kwargs, "compile": False}))
    for value in ("true", "false"):
        config = load_config(overrides=["rollout.max_new_tokens=4", "rollout.group_size=2", f"rollout.compile={value}"])
        state = build_state(config, policy, None, load_tokenizer(tiny_model_dir), torch.Generator().manual_seed(0),
                            single(_zeros))
        rollout_phase.sample(state, [Example("1+2=", "3")])
    assert seen == [True, False]
