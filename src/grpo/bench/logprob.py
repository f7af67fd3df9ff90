"""`grpo bench logprob`: peak memory and time of log-probs + backward, chunked against full logits.

The shapes default to Qwen2.5-0.5B's output layer (vocabulary 151,936, hidden 896) on 4 sequences
of 1,024 tokens. Each path runs in a fresh child process, so its peak resident memory (VmHWM)
belongs to it alone: `path_bytes` is the peak minus the resident memory once the inputs (weight,
hidden states, targets) exist, i.e. what the log-prob computation and its backward add; the
weight's gradient is part of it on both paths. Children alternate plain, chunked, plain, ...
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

import torch

from grpo.bench.common import emit, machine
from grpo.bench.options import logprob as add_arguments
from grpo.bench.options import threads


def _status_bytes(field: str) -> int:
    """A memory field of /proc/self/status (VmRSS, VmHWM) in bytes."""
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"/proc/self/status has no {field} line")


def child(path: str, sequences: int, tokens: int, vocab: int, hidden_size: int, threads: int) -> dict:
    """Run one path once in this process and measure it (called in a fresh interpreter)."""
    from grpo.models.chunked_head import chunked_logprobs
    from grpo.models.logprobs import full_logits_logprobs

    torch.set_num_threads(threads)
    generator = torch.Generator().manual_seed(0)
    weight = (torch.randn(vocab, hidden_size, generator=generator) * 0.02).requires_grad_()  # (V, H)
    hidden = torch.randn(sequences, tokens, hidden_size, generator=generator).requires_grad_()  # (N, T, H)
    targets = torch.randint(vocab, (sequences, tokens), generator=generator)  # (N, T)
    baseline = _status_bytes("VmRSS")
    start_wall, start_cpu = time.perf_counter(), time.process_time()
    if path == "chunked":
        logprobs, entropy = chunked_logprobs(hidden, weight, None, targets, 1.0)
    else:
        logprobs, entropy = full_logits_logprobs(hidden @ weight.t(), targets, 1.0)
    logprobs.sum().backward()
    record = {
        "wall_s": time.perf_counter() - start_wall,
        "cpu_s": time.process_time() - start_cpu,
        "inputs_bytes": baseline,
        "peak_bytes": _status_bytes("VmHWM"),
        "checksum": [float(logprobs.sum()), float(entropy.sum()), float(weight.grad.norm())],
    }
    record["path_bytes"] = record["peak_bytes"] - baseline
    return record


def run(args: argparse.Namespace) -> dict:
    """Run the children alternately and gather their measurements into one record."""
    start = machine()
    shape = [str(args.sequences), str(args.tokens), str(args.vocab), str(args.hidden), str(threads(args))]
    runs: dict[str, list[dict]] = {"full_logits": [], "chunked": []}
    for _ in range(args.repeats):
        for path, key in (("full", "full_logits"), ("chunked", "chunked")):
            command = [sys.executable, "-m", "grpo.bench.logprob", "--child", path, *shape]
            output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
            runs[key].append(json.loads(output.strip().splitlines()[-1]))
    record: dict = {"benchmark": "logprob", "sequences": args.sequences, "tokens": args.tokens, "vocab": args.vocab,
                    "hidden": args.hidden, "repeats": args.repeats, "machine": start}
    for key, values in runs.items():
        record[key] = {name: statistics.median(v[name] for v in values)
                       for name in ("wall_s", "cpu_s", "path_bytes", "peak_bytes")}
        record[key]["checksum"] = values[0]["checksum"]
    full, chunked = record["full_logits"], record["chunked"]
    record["ratio_path_bytes_chunked_over_full"] = chunked["path_bytes"] / full["path_bytes"]
    record["ratio_peak_bytes_chunked_over_full"] = chunked["peak_bytes"] / full["peak_bytes"]
    record["ratio_wall_chunked_over_full"] = chunked["wall_s"] / full["wall_s"]
    return record


def main(args: argparse.Namespace) -> int:
    emit(run(args))
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 8 and sys.argv[1] == "--child":
        numbers = [int(x) for x in sys.argv[3:]]
        print(json.dumps(child(sys.argv[2], *numbers)))
    else:
        parser = argparse.ArgumentParser(prog="python -m grpo.bench.logprob", description=__doc__)
        add_arguments(parser)
        sys.exit(main(parser.parse_args()))
