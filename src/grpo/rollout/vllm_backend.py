"""The rollout contract of `grpo.rollout.generate` on vLLM, colocated in the trainer's process.

One `vllm.LLM` lives in the trainer's process (``VLLM_ENABLE_V1_MULTIPROCESSING=0``: the engine
core runs in-process, so weights can be written into it directly and no child process re-imports
`__main__`). Prompts go in as token ids and completions come back as token ids: nothing is
re-tokenised. Each prompt is one request with ``n = G`` samples.

Log-probs: the engine is started with ``logprobs_mode="processed_logprobs"``, so the log-prob of a
sampled token is taken after temperature (vLLM's default, ``raw_logprobs``, is untempered). Without
top-k/top-p this is exactly the built-in engine's convention, log_softmax(logits / temperature);
greedy requests get log_softmax(logits). With top-k or top-p, vLLM's processed log-probs are those
of the truncated, renormalised distribution the token was actually drawn from, i.e. larger than the
trainer's pre-truncation log-prob by -log(mass kept); the importance ratios of `algo.rollout_correction`
then include that factor (see docs/vllm.md). The sync check below therefore scores fixed sequences
with prompt log-probs, which are never truncated or tempered.

Seeds: each request's seed is derived from the run's seed, the update count and the prompt's
index (`request_seed`); vLLM gives sample j of a request the seed ``seed + j``, so every sample of a
run has its own seed and a resumed run draws the same tokens again.

Threading on CPU: vLLM's CPU worker binds its OpenMP threads to the cores at start-up and replaces
``torch.set_num_threads`` with a no-op that warns; trainer and engine run in turn (generate, then
train) in the same OpenMP pool, so the trainer's thread count is whatever it was when the engine
started. `start_engine` is therefore called after the trainer has set its threads.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch

from grpo.rollout.engine import left_pad
from grpo.rollout.types import RolloutBatch, SamplingParams

VLLM_PACKAGES = "vllm (GPU: pip install 'grpo[vllm]'; CPU: make .venv-vllm/.installed, see README)"


def vllm_available() -> bool:
    """Whether the `vllm` package can be imported here (without importing it)."""
    return importlib.util.find_spec("vllm") is not None


@dataclass(frozen=True)
class EngineOptions:
    """How the colocated engine is started; one field per key of `rollout.vllm` plus the model's.

    Attributes:
        model_path: directory of a Hugging Face checkpoint (config.json and weights).
        dtype: "float32", "bfloat16" or "float16": the weights' dtype inside vLLM.
        max_model_len: longest prompt + completion; at most the model's max_position_embeddings.
        gpu_memory_utilization: share of accelerator memory (on CPU: of node memory) vLLM may take.
        kv_cache_memory_gb: fixed KV-cache size instead of the share above (None: use the share).
        sleep_mode: release weights and KV cache while the trainer runs (GPU only).
        tensor_parallel_size: GPUs one engine spans.
        seed: the engine's own seed (requests carry their own seeds as well).
        data_parallel_size: ranks that each hold a colocated engine; > 1 selects vLLM's
            `external_launcher` executor (the ranks are started by torchrun).
        compile: let vLLM compile the model (and capture CUDA graphs on GPUs) instead of running eager.
    """

    model_path: str
    dtype: str = "float32"
    max_model_len: int = 64
    gpu_memory_utilization: float = 0.5
    kv_cache_memory_gb: float | None = None
    sleep_mode: bool = False
    tensor_parallel_size: int = 1
    seed: int = 0
    data_parallel_size: int = 1
    compile: bool = False


def engine_arguments(options: EngineOptions) -> dict[str, Any]:
    """The keyword arguments of `vllm.LLM` for `options` (token ids only, no tokenizer)."""
    extra: dict[str, Any] = {}
    if options.kv_cache_memory_gb is not None:
        extra["kv_cache_memory_bytes"] = int(options.kv_cache_memory_gb * 2**30)
    if options.data_parallel_size > 1:
        extra.update(distributed_executor_backend="external_launcher", data_parallel_size=options.data_parallel_size)
    return dict(
        model=options.model_path,
        dtype=options.dtype,
        max_model_len=options.max_model_len,
        gpu_memory_utilization=options.gpu_memory_utilization,
        enable_sleep_mode=options.sleep_mode,
        tensor_parallel_size=options.tensor_parallel_size,
        seed=options.seed,
        skip_tokenizer_init=True,
        logprobs_mode="processed_logprobs",
        enforce_eager=not options.compile,
        **extra,
    )


def start_engine(options: EngineOptions) -> Any:
    """Start a colocated `vllm.LLM` (in-process engine core, token ids only, no tokenizer)."""
    os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"
    # vLLM logs its start-up at INFO and a harmless traceback for the chat-template warm-up it cannot run
    # without a tokenizer; the trainer's console keeps errors only unless the user sets the level.
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "ERROR")
    # Without OMP_NUM_THREADS vLLM drops torch to 1 thread "for serving", which would also slow the
    # trainer's own passes in this process; stating the current count keeps it.
    os.environ.setdefault("OMP_NUM_THREADS", str(torch.get_num_threads()))
    from vllm import LLM

    return LLM(**engine_arguments(options))


def stop_engine(llm: Any) -> None:
    """Shut a `start_engine` engine down: its workers, KV cache and the process groups it made.

    vLLM otherwise does this from a finalizer at interpreter exit, after a torchrun group it joined may
    already be gone, and prints a traceback.
    """
    llm.llm_engine.engine_core.shutdown()


def request_seed(run_seed: int, step: int, index: int) -> int:
    """Seed of the request for prompt `index` at update `step`; its G samples get seed + 0 .. G-1.

    seed = blake2b(run_seed, step) as a 40-bit integer, shifted left 20 bits, plus index * 2**10,
    so requests of different steps or prompts never share a seed (for G <= 1024 and < 1024 prompts).
    """
    digest = hashlib.blake2b(f"{run_seed}:{step}".encode(), digest_size=5).digest()
    return (int.from_bytes(digest, "big") << 20) + (index << 10)


def vllm_sampling_params(params: SamplingParams, group_size: int, eos_token_id: int | None, seed: int) -> Any:
    """vLLM's SamplingParams with the built-in sampler's semantics (temperature 0 is greedy).

    `eos_token_id` None: no token ends a completion, every sample runs to max_new_tokens.
    """
    from vllm import SamplingParams as VLLMSamplingParams

    return VLLMSamplingParams(
        n=group_size,
        temperature=params.temperature,
        top_k=params.top_k if params.top_k > 0 else -1,
        top_p=params.top_p,
        max_tokens=params.max_new_tokens,
        logprobs=0,  # the sampled token's own log-prob only
        seed=seed,
        stop_token_ids=[] if eos_token_id is None else [eos_token_id],  # kept in the output, as the engine keeps it
        ignore_eos=eos_token_id is None,
        detokenize=False,
    )


def generate_vllm(
    llm: Any,
    prompts: list[list[int]],
    *,
    group_size: int,
    params: SamplingParams,
    eos_token_id: int | None,
    pad_token_id: int,
    seeds: list[int],
    device: torch.device | str = "cpu",
) -> RolloutBatch:
    """Sample `group_size` completions per prompt on vLLM; the same RolloutBatch as `generate`.

    Args:
        llm: an engine from `start_engine`.
        prompts: B non-empty token-id lists.
        group_size: G.
        params: temperature, top-k, top-p, max_new_tokens (semantics of `grpo.rollout.sampling`).
        eos_token_id: ends a completion (kept, mask True); None: nothing does (benchmarks' full length).
        pad_token_id: written into prompt left padding and completion right padding.
        seeds: B request seeds (see `request_seed`).
        device: where the returned tensors live (the trainer's device).

    Returns:
        N = B*G prompt-major rows; sampler_logprobs as described in the module docstring.
    """
    from vllm.inputs import TokensPrompt

    if len(seeds) != len(prompts) or not prompts or any(len(p) == 0 for p in prompts):
        raise ValueError(f"generate_vllm needs B >= 1 non-empty prompts and B seeds (got {len(prompts)}, "
                         f"{len(seeds)})")
    # vLLM refuses n > 1 when greedy: then each prompt is sent G times with n = 1 (identical rows).
    copies, n = (group_size, 1) if params.greedy else (1, group_size)
    requests = [TokensPrompt(prompt_token_ids=list(prompt)) for prompt in prompts for _ in range(copies)]
    sampling = [vllm_sampling_params(params, n, eos_token_id, seed) for seed in seeds for _ in range(copies)]
    outputs = llm.generate(requests, sampling, use_tqdm=False)
    samples = [sample for output in outputs for sample in sorted(output.outputs, key=lambda s: s.index)]
    T = max(1, max(len(sample.token_ids) for sample in samples))
    ids = torch.full((len(samples), T), pad_token_id, dtype=torch.long)  # (N, T)
    mask = torch.zeros((len(samples), T), dtype=torch.bool)  # (N, T)
    logprobs = torch.zeros((len(samples), T), dtype=torch.float32)  # (N, T)
    for row, sample in enumerate(samples):
        tokens = list(sample.token_ids)
        ids[row, : len(tokens)] = torch.tensor(tokens, dtype=torch.long)
        mask[row, : len(tokens)] = True
        chosen = [step[token].logprob for step, token in zip(sample.logprobs, tokens)]
        logprobs[row, : len(tokens)] = torch.tensor(chosen)
    finished = torch.tensor([len(s.token_ids) > 0 and s.token_ids[-1] == eos_token_id for s in samples])  # (N,)
    prompt_ids, prompt_mask = left_pad(prompts, pad_token_id, torch.device("cpu"))  # (B, P)
    return RolloutBatch(
        prompt_ids=prompt_ids.repeat_interleave(group_size, dim=0).to(device),
        prompt_mask=prompt_mask.repeat_interleave(group_size, dim=0).to(device),
        completion_ids=ids.to(device),
        completion_mask=mask.to(device),
        sampler_logprobs=logprobs.to(device),
        truncated=(~finished).to(device),
        group_size=group_size,
    )


def sequence_logprobs(llm: Any, sequences: list[list[int]]) -> list[torch.Tensor]:
    """vLLM's log_softmax(logits) of tokens 1.. of each sequence (prompt log-probs, no temperature).

    Returns one (len - 1,) float32 tensor per sequence; token t is scored given tokens < t.
    """
    from vllm import SamplingParams as VLLMSamplingParams
    from vllm.inputs import TokensPrompt

    score = VLLMSamplingParams(max_tokens=1, prompt_logprobs=0, temperature=0.0, detokenize=False)
    outputs = llm.generate([TokensPrompt(prompt_token_ids=list(s)) for s in sequences], score, use_tqdm=False)
    scored = [[step[token].logprob for step, token in zip(out.prompt_logprobs[1:], seq[1:])]
              for out, seq in zip(outputs, sequences)]
    return [torch.tensor(values, dtype=torch.float32) for values in scored]


class WeightSyncTimeout(RuntimeError):
    """Writing the trainer's weights into the engine took longer than `rollout.vllm.sync_timeout`."""


def trainer_weights(model: torch.nn.Module) -> Iterator[tuple[str, torch.Tensor]]:
    """(name, tensor) of every weight in Hugging Face checkpoint names, as vLLM loads them.

    A peft (LoRA) model yields merged weights, W + (alpha / r) * B A per adapted layer, computed aside
    (`get_delta_weight`) so the trainer's weights are never merged and unmerged in place (which would
    drift by rounding at every sync), under the base model's names. With tied embeddings
    `lm_head.weight` is left out: vLLM's head reads the embedding matrix.
    """
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    tied = bool(getattr(getattr(base, "config", None), "tie_word_embeddings", False))
    deltas = _lora_deltas(base)
    for name, tensor in base.state_dict().items():
        if "lora_" in name or (tied and name == "lm_head.weight"):
            continue
        name = name.replace(".base_layer.", ".")
        yield name, (tensor + deltas[name] if name in deltas else tensor).detach()


@torch.no_grad()
def _lora_deltas(base: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Checkpoint name of each adapted weight -> the sum of its active adapters' (alpha / r) * B A."""
    deltas: dict[str, torch.Tensor] = {}
    for module_name, module in base.named_modules():
        if not (hasattr(module, "base_layer") and hasattr(module, "get_delta_weight")):
            continue
        active = [a for a in getattr(module, "active_adapters", []) if a in getattr(module, "lora_A", {})]
        if active and not getattr(module, "disable_adapters", False):
            deltas[f"{module_name}.weight"] = sum(module.get_delta_weight(adapter) for adapter in active)
    return deltas


def _reload(worker: Any, weights: list[tuple[str, torch.Tensor]]) -> None:
    """Run inside vLLM's worker: reload every weight layer by layer (re-packs CPU oneDNN weights)."""
    worker.model_runner.reload_weights(weights_iterator=iter(weights))


def sync_weights(llm: Any, model: torch.nn.Module, timeout_s: float) -> None:
    """Copy the trainer's weights into the engine in place, or raise WeightSyncTimeout.

    Goes through the worker's ``model_runner.reload_weights`` (via ``llm.collective_rpc``): the
    model's own ``load_weights`` fails part way on vLLM's CPU build once the linear weights have been
    re-packed for oneDNN, leaving old and new weights mixed. A LoRA adapter is sent merged.
    """
    weights = list(trainer_weights(model))
    _run_with_timeout(lambda: llm.collective_rpc(_reload, args=(weights,)), timeout_s)


def _run_with_timeout(call: Any, timeout_s: float) -> None:
    """Run `call` in a helper thread; raise WeightSyncTimeout if it has not returned in time."""
    failure: list[BaseException] = []

    def target() -> None:
        try:
            call()
        except BaseException as error:  # noqa: BLE001 - re-raised in the caller's thread below
            failure.append(error)

    worker = threading.Thread(target=target, name="grpo-vllm-weight-sync", daemon=True)
    worker.start()
    worker.join(timeout_s if timeout_s > 0 else None)
    if worker.is_alive():
        raise WeightSyncTimeout(f"rollout.vllm.sync_timeout: writing the weights into vLLM took more than "
                                f"{timeout_s:g} s; raise the key or check the engine (memory, sleep mode)")
    if failure:
        raise failure[0]
