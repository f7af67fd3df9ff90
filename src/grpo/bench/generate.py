"""`grpo bench generate`: new tokens per second of the rollout engine against transformers `generate`.

Both sample G completions for each of B prompts from the same model with the same settings
(temperature, top-k, top-p, max_new_tokens, EOS and pad ids); transformers gets the prompts
left-padded with `num_return_sequences=G`. A new token is one that counts in a completion (up to
and including its EOS), read the same way from both outputs. With `--compile` a third contender,
`grpo_compiled`, runs the engine with `compile=True` (its compile happens in the untimed warm-up round),
and vLLM, if it runs, is started as `rollout.vllm.compile=true` starts it.
With `--backend vllm` a colocated vLLM engine (`grpo.rollout.vllm_backend`) joins as `grpo_vllm`, sampling
from the same model directory with per-request seeds; its start-up is not timed.

With `--full-length` no contender stops at EOS (the built-in engine gets an EOS id no token has, vLLM
none, transformers `min_new_tokens = max_new_tokens`), so every row decodes `max_new_tokens` tokens and every contender
does the same work. By default EOS ends a row, and engines that drop finished rows (ours, vLLM) gain
over `generate`, which decodes padded rows until the last one ends.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from grpo.bench.common import alternate, arithmetic_examples, emit, load, machine, model_dir
from grpo.bench.options import threads
from grpo.rollout import SamplingParams, generate


def _ours(model: PreTrainedModel, eos: int, pad: int, prompts: list[list[int]], group_size: int,
          params: SamplingParams, generator: torch.Generator, fast: bool = True, compile: bool = False) -> int:
    batch = generate(model, prompts, group_size=group_size, params=params, eos_token_id=eos, pad_token_id=pad,
                     generator=generator, fast=fast, compile=compile)
    return int(batch.completion_mask.sum())


NO_EOS = -1  # an EOS id no token has: with --full-length the engines never stop a row early


def _transformers(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, texts: list[str], group_size: int,
                  params: SamplingParams, full_length: bool = False) -> int:
    inputs = tokenizer(texts, return_tensors="pt", padding=True)  # left padding (load_tokenizer sets it)
    with torch.inference_mode():
        out = model.generate(
            **inputs,
            do_sample=True,
            temperature=params.temperature,
            top_k=params.top_k,
            top_p=params.top_p,
            max_new_tokens=params.max_new_tokens,
            min_new_tokens=params.max_new_tokens if full_length else None,
            num_return_sequences=group_size,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
    new = out[:, inputs["input_ids"].shape[1] :]  # (N, T)
    is_eos = new == tokenizer.eos_token_id
    # Tokens up to and including the first EOS count; rows without EOS count every token.
    before_first_eos = (is_eos.cumsum(dim=1) - is_eos.long()) == 0
    return int(before_first_eos.sum())


def _vllm(llm: object, eos: int | None, pad: int, prompts: list[list[int]], group_size: int,
          params: SamplingParams, calls: list[int]) -> int:
    from grpo.rollout.vllm_backend import generate_vllm

    calls.append(len(calls))
    seeds = [(len(calls) << 20) + (index << 10) for index in range(len(prompts))]
    batch = generate_vllm(llm, prompts, group_size=group_size, params=params, eos_token_id=eos, pad_token_id=pad,
                          seeds=seeds)
    return int(batch.completion_mask.sum())


def _start_vllm(path: Path, model: PreTrainedModel, compile: bool) -> object:
    from grpo.rollout.vllm_backend import EngineOptions, start_engine

    limit = model.config.max_position_embeddings
    return start_engine(EngineOptions(str(path), "float32", limit, kv_cache_memory_gb=1.0, compile=compile))


def run(size: str, prompts: int, group_size: int, max_new_tokens: int, repeats: int, threads: int,
        compile: bool = False, backend: str = "engine", full_length: bool = False) -> dict:
    """Time the generators, alternating, and return the benchmark's record."""
    torch.set_num_threads(threads)
    start = machine()
    with tempfile.TemporaryDirectory() as tmp:
        model, tokenizer = load(model_dir(size, Path(tmp)))
        llm = _start_vllm(model_dir(size, Path(tmp)), model, compile) if backend == "vllm" else None
    model.eval()
    texts = [example.prompt for example in arithmetic_examples(prompts)]
    ids = [tokenizer(text)["input_ids"] for text in texts]
    params = SamplingParams(temperature=1.0, top_k=0, top_p=1.0, max_new_tokens=max_new_tokens)
    generator = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    eos, pad = (NO_EOS if full_length else tokenizer.eos_token_id), tokenizer.pad_token_id
    contenders = {
        "grpo": lambda: _ours(model, eos, pad, ids, group_size, params, generator),
        "grpo_plain_path": lambda: _ours(model, eos, pad, ids, group_size, params, generator, fast=False),
        "transformers": lambda: _transformers(model, tokenizer, texts, group_size, params, full_length),
    }
    if compile:
        contenders["grpo_compiled"] = lambda: _ours(model, eos, pad, ids, group_size, params, generator, compile=True)
    if llm is not None:
        calls: list[int] = []
        vllm_eos = None if full_length else eos
        contenders["grpo_vllm"] = lambda: _vllm(llm, vllm_eos, pad, ids, group_size, params, calls)
    tokens = {name: [] for name in contenders}
    timed = {name: (lambda name=name, run=run: tokens[name].append(run())) for name, run in contenders.items()}
    timings, _ = alternate(timed, repeats)
    record: dict = {"benchmark": "generate", "model": size, "backend": backend, "prompts": prompts,
                    "group_size": group_size, "max_new_tokens": max_new_tokens, "full_length": full_length,
                    "compile": compile, "repeats": repeats, "machine": start}
    for name, timing in timings.items():
        counts = tokens[name][1:]  # the warm-up round is not timed
        per_second = [count / wall for count, wall in zip(counts, timing.wall)]
        record[name] = {**timing.median(), "new_tokens_per_run": sorted(counts)[len(counts) // 2],
                        "new_tokens_per_s": sorted(per_second)[len(per_second) // 2]}
    ratios = [ours / peer for ours, peer in zip(_rates(tokens["grpo"], timings["grpo"].wall),
                                                 _rates(tokens["transformers"], timings["transformers"].wall))]
    record["ratio_tokens_per_s_vs_transformers"] = sorted(ratios)[len(ratios) // 2]
    for name in ("grpo_compiled", "grpo_vllm"):
        if name in contenders:
            ratios = [ours / peer for ours, peer in zip(_rates(tokens[name], timings[name].wall),
                                                         _rates(tokens["transformers"], timings["transformers"].wall))]
            key = f"ratio_{name.removeprefix('grpo_')}_tokens_per_s_vs_transformers"
            record[key] = sorted(ratios)[len(ratios) // 2]
    return record


def _rates(counts: list[int], walls: list[float]) -> list[float]:
    return [count / wall for count, wall in zip(counts[1:], walls)]


def main(args: argparse.Namespace) -> int:
    emit(run(args.model, args.prompts, args.group_size, args.max_new_tokens, args.repeats, threads(args),
             args.compile, args.backend, args.full_length))
    return 0
