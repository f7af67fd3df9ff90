"""Speed and memory benchmarks (`grpo bench generate|logprob|step|sandbox|faults`), each printing one JSON line.

Every benchmark runs this project's path and its peer (transformers `generate`, the full-logits
log-prob path, TRL's `GRPOTrainer`) in the same process, alternating A B A B, and reports medians,
their ratio and how idle the machine was. Never asserted in tests: figures go to docs/performance.md.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable


def _options(name: str) -> Callable[[argparse.ArgumentParser], None]:
    """A benchmark's options from `grpo.bench.options` (light: no torch import to build the parser)."""

    def add(parser: argparse.ArgumentParser) -> None:
        from grpo.bench import options

        getattr(options, name)(parser)

    return add


# name -> (one-line summary, function adding its options to an argparse parser)
BENCHMARKS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None]]] = {
    "generate": ("new tokens/s of the rollout engine vs transformers generate", _options("generate")),
    "logprob": ("peak memory of chunked vs full-logits log-probs + backward", _options("logprob")),
    "step": ("seconds per GRPO step vs TRL GRPOTrainer", _options("step")),
    "sandbox": ("per-execution overhead (median, p90) and executions/s of the code sandbox", _options("sandbox")),
    "faults": ("median step time of runs whose reward hangs, spins, exits or crashes, beside clean runs",
               _options("faults")),
}


def run(name: str, args: argparse.Namespace) -> int:
    """Run benchmark `name` with its parsed options; each module is imported only when its benchmark
    runs, so building the parser stays free of torch and transformers."""
    if name == "generate":
        from grpo.bench.generate import main
    elif name == "logprob":
        from grpo.bench.logprob import main
    elif name == "step":
        from grpo.bench.step import main
    elif name == "sandbox":
        from grpo.bench.sandbox import main
    elif name == "faults":
        from grpo.bench.faults import main
    else:
        raise ValueError(f"unknown benchmark {name!r}; choose from {', '.join(BENCHMARKS)}")
    return main(args)
