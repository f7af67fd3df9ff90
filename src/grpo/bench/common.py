"""What every benchmark shares: the models, the prompts, alternating timing and machine facts."""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from grpo.models.load import load_policy, load_tokenizer, resolve_model_path
from grpo.models.tiny import build_tiny_llama, save_model_dir
from grpo.tasks.api import Example
from grpo.tasks.arithmetic import ArithmeticTask
from grpo.trainers.data import PromptStream

# The two sizes the issue names: "tiny" is the trained default policy (hidden 128, 4 layers,
# intermediate 512, character vocabulary, about 1.05M parameters); "small" is the same architecture
# at hidden 512, 8 layers, intermediate 2048 (about 33.6M parameters), randomly initialised.
SMALL_SHAPE = dict(hidden_size=512, num_layers=8, num_heads=8, intermediate_size=2048, max_positions=128)


def model_dir(size: str, cache: Path) -> Path:
    """A model directory for `size` ("tiny" or "small"), built under `cache` on first use."""
    if size == "tiny":
        return resolve_model_path("builtin:arith-warmstart")
    if size != "small":
        raise ValueError(f"model size must be tiny or small, got {size!r}")
    path = cache / "small-llama"
    if not (path / "config.json").is_file():
        tokenizer = load_tokenizer(resolve_model_path("builtin:arith-warmstart"))
        save_model_dir(build_tiny_llama(tokenizer, **SMALL_SHAPE, seed=0), tokenizer, path)
    return path


def load(path: Path) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """The fp32 CPU policy and its tokenizer from a model directory."""
    return load_policy(path, "float32", torch.device("cpu")), load_tokenizer(path)


def arithmetic_examples(count: int, seed: int = 0) -> list[Example]:
    """`count` training examples of the built-in arithmetic task, drawn as the trainer draws them."""
    return PromptStream(ArithmeticTask(), seed).next_batch(count)


@dataclass
class Timings:
    """Wall-clock and process CPU seconds of repeated runs of one contender."""

    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)

    def median(self) -> dict[str, float]:
        return {"wall_s": statistics.median(self.wall), "cpu_s": statistics.median(self.cpu)}


def alternate(contenders: dict[str, Callable[[], object]], repeats: int) -> tuple[dict[str, Timings], dict]:
    """Run each contender once per round, A B A B ..., timing wall and CPU; returns the last results.

    The first round is a warm-up and is not timed (allocator, lazy initialisation, caches).
    """
    timings = {name: Timings() for name in contenders}
    results: dict[str, object] = {}
    for round_index in range(repeats + 1):
        for name, run in contenders.items():
            wall, cpu = time.perf_counter(), time.process_time()
            results[name] = run()
            if round_index > 0:
                timings[name].wall.append(time.perf_counter() - wall)
                timings[name].cpu.append(time.process_time() - cpu)
    return timings, results


def machine() -> dict[str, object]:
    """Facts that decide how far the figures can be trusted: load average, cores, threads, versions."""
    import transformers

    with open("/proc/loadavg") as handle:
        load = handle.read().split()[:3]
    return {
        "loadavg_1_5_15": [float(x) for x in load],
        "cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "device": torch.cuda.get_device_name() if torch.cuda.is_available() else platform.processor() or "cpu",
        "torch": torch.__version__,
        "transformers": transformers.__version__,
    }


def emit(record: dict[str, object]) -> None:
    """Print the benchmark's one JSON line (the load average is read again at the end)."""
    record["machine_end"] = machine()
    print(json.dumps(record, sort_keys=False))
