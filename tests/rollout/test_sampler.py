"""The sampler chosen by rollout.backend: engine by default; request seeds that never collide."""

from __future__ import annotations

import torch

from grpo.config import load_config
from grpo.rollout.sampler import EngineSampler, build_sampler, seeds_for


def test_default_backend_is_the_builtin_engine(tiny_model_dir):
    from grpo.models.load import load_policy

    policy = load_policy(tiny_model_dir, "float32", torch.device("cpu"))
    assert isinstance(build_sampler(load_config(), policy, 2, 0), EngineSampler)


def test_request_seeds_are_reproducible_and_distinct_across_steps_draws_and_prompts():
    first = seeds_for(0, updates=5, draw=0, count=32)
    assert first == seeds_for(0, updates=5, draw=0, count=32)  # a resumed run asks for the same seeds
    others = [seeds_for(0, 6, 0, 32), seeds_for(0, 5, 1, 32), seeds_for(1, 5, 0, 32)]
    # each request's G samples use seed + 0 .. G-1 inside vLLM: no two samples of a run share a seed
    samples = {seed + j for seeds in [first, *others] for seed in seeds for j in range(8)}
    assert len(samples) == 4 * 32 * 8


def test_vllm_compiles_by_default_on_gpus_only_and_the_key_overrides(tiny_model_dir):
    from grpo.models.load import load_policy
    from grpo.rollout.sampler import engine_options
    from grpo.rollout.vllm_backend import engine_arguments

    policy = load_policy(tiny_model_dir, "float32", torch.device("cpu"))
    on_cpu = engine_options(load_config(), policy)
    assert on_cpu.compile is False and engine_arguments(on_cpu)["enforce_eager"] is True
    forced = engine_options(load_config(overrides=["rollout.vllm.compile=true"]), policy)
    assert forced.compile is True and engine_arguments(forced)["enforce_eager"] is False
