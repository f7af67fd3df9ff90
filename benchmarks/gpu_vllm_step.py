"""The vLLM backend against the built-in engine on a Qwen2.5-0.5B-shaped model: the prepared GPU check of issue 10.

Builds a random-weight Qwen2 model of Qwen2.5-0.5B's shape (hidden 896, 24 layers, 14 query / 2 KV heads,
intermediate 4864, vocabulary 151,936, tied embeddings) with the project's character tokenizer, then runs
the command users type, `grpo train`, once per backend (alternating when --rounds > 1) at 64 prompts x 8
samples and 512 new tokens, and prints one JSON line: the median `step_time`, `generation_time` and
`generation_tokens_per_s` from each run's metrics.jsonl (its first step, which starts the engine, left
out) and the ratios. Random weights almost never sample the EOS among 151,936 ids, so completions run
to the full 512 tokens on both sides; ids the character tokenizer lacks decode to nothing and score 0.

    python benchmarks/gpu_vllm_step.py                      # the GPU check (bf16, CUDA)
    python benchmarks/gpu_vllm_step.py --shape tiny --device cpu --dtype float32 \\
        --prompts 2 --group-size 2 --max-new-tokens 8 --steps 2   # a CPU smoke run of the same path
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from grpo.models.load import load_tokenizer, resolve_model_path
from grpo.models.tiny import build_tiny_qwen2, save_model_dir

SHAPES = {  # Qwen2.5-0.5B's config.json; "tiny" keeps the architecture at a CPU's scale (head_dim 32 for vLLM)
    "qwen2.5-0.5b": dict(hidden_size=896, num_layers=24, num_attention_heads=14, num_key_value_heads=2,
                         intermediate_size=4864, vocab_size=151936, rope_theta=1_000_000.0, rms_norm_eps=1e-6),
    "tiny": dict(hidden_size=128, num_layers=2, num_attention_heads=4, num_key_value_heads=2,
                 intermediate_size=256, vocab_size=4096, rope_theta=1_000_000.0, rms_norm_eps=1e-6),
}


def build_model_dir(shape: str, path: Path) -> Path:
    """A random-weight Qwen2 model of `shape` with the built-in character tokenizer, saved under `path`."""
    tokenizer = load_tokenizer(resolve_model_path("builtin:arith-warmstart"))
    save_model_dir(build_tiny_qwen2(tokenizer, **SHAPES[shape], max_position_embeddings=2048), tokenizer, path)
    return path


def train_overrides(args: argparse.Namespace, model: Path, out: Path, name: str, backend: str) -> list[str]:
    """`grpo train` overrides of one run: the issue's batch, no dynamic sampling, evaluation kept minimal."""
    return [f"model.path={model}", f"model.dtype={args.dtype}", f"model.device={args.device}",
            f"rollout.backend={backend}", f"rollout.prompts_per_step={args.prompts}",
            f"rollout.group_size={args.group_size}", f"rollout.max_new_tokens={args.max_new_tokens}",
            f"optim.steps={args.steps}", f"optim.micro_batch_size={args.micro_batch_size}",
            "algo.dynamic_sampling=false", "algo.beta=0.04", "log.eval_every=0", "task.test_size=8",
            "task.slice_size=0", "log.progress=false", "rollout.vllm.max_model_len=1024",
            f"log.output_dir={out}", f"log.run_name={name}"]


def run_once(args: argparse.Namespace, model: Path, out: Path, name: str, backend: str) -> dict:
    """One `grpo train` run; the medians of its timed steps (all but the first)."""
    started = time.perf_counter()
    command = [sys.executable, "-m", "grpo", "train", *train_overrides(args, model, out, name, backend)]
    proc = subprocess.run(command, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"gpu_vllm_step: the {backend} run failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    rows = [json.loads(line) for line in (out / name / "metrics.jsonl").read_text().splitlines()]
    logged = [row for row in rows if "step_time" in row]
    steps = logged[1:] or logged
    median = lambda key: statistics.median(row[key] for row in steps)
    return {"step_time": median("step_time"), "generation_time": median("generation_time"),
            "generation_tokens_per_s": median("generation_tokens_per_s"),
            "completion_length": median("completion_length"), "steps_timed": len(steps),
            "wall_s": time.perf_counter() - started}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", choices=sorted(SHAPES), default="qwen2.5-0.5b")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--dtype", default="bfloat16")
    parser.add_argument("--prompts", type=int, default=64)
    parser.add_argument("--group-size", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=512)
    parser.add_argument("--steps", type=int, default=4, help="steps per run; the first is not timed")
    parser.add_argument("--rounds", type=int, default=1, help="runs per backend, alternating engine, vllm, ...")
    parser.add_argument("--micro-batch-size", type=int, default=32)
    parser.add_argument("--backends", default="engine,vllm", help="comma-separated subset of engine,vllm")
    args = parser.parse_args()
    backends = args.backends.split(",")
    record: dict = {"benchmark": "gpu_vllm_step", **vars(args),
                    "device_name": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"}
    with tempfile.TemporaryDirectory() as tmp:
        model = build_model_dir(args.shape, Path(tmp) / "model")
        runs: dict[str, list[dict]] = {backend: [] for backend in backends}
        for round_index in range(args.rounds):
            for backend in backends:
                runs[backend].append(run_once(args, model, Path(tmp) / "runs", f"{backend}{round_index}", backend))
    for backend, results in runs.items():
        record[backend] = {key: statistics.median(r[key] for r in results) for key in results[0]}
    if {"engine", "vllm"} <= set(runs):
        record["ratio_step_engine_over_vllm"] = record["engine"]["step_time"] / record["vllm"]["step_time"]
        record["ratio_tokens_per_s_vllm_over_engine"] = (record["vllm"]["generation_tokens_per_s"]
                                                         / record["engine"]["generation_tokens_per_s"])
    print(json.dumps(record), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
