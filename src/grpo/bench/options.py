"""The command-line options of each benchmark, kept apart from the benchmarks themselves so that
building the `grpo` parser (and answering `--help`) imports neither torch nor transformers.

`--threads` defaults to None, meaning torch's own thread count, resolved by `threads(args)` when the
benchmark runs.
"""

from __future__ import annotations

import argparse

THREADS_HELP = "torch threads (default: torch's own count)"


def threads(args: argparse.Namespace) -> int:
    """`--threads`, or torch's thread count when not given."""
    import torch

    return args.threads if args.threads is not None else torch.get_num_threads()


def generate(parser: argparse.ArgumentParser) -> None:
    """Options of `grpo bench generate`."""
    parser.add_argument("--model", choices=["tiny", "small"], default="tiny")
    parser.add_argument("--prompts", type=int, default=4, help="B distinct prompts")
    parser.add_argument("--group-size", type=int, default=8, help="G completions per prompt")
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=7, help="timed rounds (plus one warm-up)")
    parser.add_argument("--threads", type=int, default=None, help=THREADS_HELP)
    parser.add_argument("--compile", action="store_true", help="also time the engine with rollout.compile; "
                        "compile vLLM's model too (rollout.vllm.compile)")
    parser.add_argument("--backend", choices=["engine", "vllm"], default="engine",
                        help="vllm: also time a colocated vLLM engine (needs vllm installed)")
    parser.add_argument("--full-length", action="store_true",
                        help="EOS stops no sample: every contender decodes max_new_tokens for every row")


def logprob(parser: argparse.ArgumentParser) -> None:
    """Options of `grpo bench logprob`."""
    parser.add_argument("--sequences", type=int, default=4)
    parser.add_argument("--tokens", type=int, default=1024, help="tokens per sequence")
    parser.add_argument("--vocab", type=int, default=151_936)
    parser.add_argument("--hidden", type=int, default=896)
    parser.add_argument("--repeats", type=int, default=1, help="child runs per path")
    parser.add_argument("--threads", type=int, default=None, help=THREADS_HELP)


def step(parser: argparse.ArgumentParser) -> None:
    """Options of `grpo bench step`."""
    parser.add_argument("--model", choices=["tiny", "small"], default="tiny")
    parser.add_argument("--prompts", type=int, default=4, help="B prompts per step")
    parser.add_argument("--group-size", type=int, default=8, help="G completions per prompt")
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--beta", type=float, default=0.04)
    parser.add_argument("--lr", type=float, default=3e-4)
    parser.add_argument("--steps", type=int, default=10, help="steps per round")
    parser.add_argument("--rounds", type=int, default=2, help="timed rounds of each (plus one warm-up round)")
    parser.add_argument("--backend", choices=["engine", "vllm"], default="engine",
                        help="who generates our rollouts (rollout.backend); vllm's weight sync is inside the step")
    parser.add_argument("--curve", type=int, default=0, help="instead: run N continuous steps of each, log rewards")
    parser.add_argument("--no-trl", action="store_true", help="time this trainer only (TRL not installed)")
    parser.add_argument("--threads", type=int, default=None, help=THREADS_HELP)


def sandbox(parser: argparse.ArgumentParser) -> None:
    """Options of `grpo bench sandbox`."""
    parser.add_argument("--executions", type=int, default=200, help="sequential executions timed (default 200)")
    parser.add_argument("--parallel", type=int, default=200, help="executions in the throughput run (default 200)")
    parser.add_argument("--workers", type=int, default=0, help="pool slots for throughput (default: core count)")


def faults(parser: argparse.ArgumentParser) -> None:
    """Options of `grpo bench faults`."""
    parser.add_argument("--steps", type=int, default=20, help="steps per run (default 20)")
    parser.add_argument("--prompts", type=int, default=8, help="rollout.prompts_per_step (default 8)")
    parser.add_argument("--every", type=int, default=10, help="the reward misbehaves on every N-th call (default 10)")
    parser.add_argument("--timeout", type=float, default=3.0, help="guards.reward_timeout in seconds (default 3)")
    parser.add_argument("--rounds", type=int, default=2, help="runs of each fault, each beside a clean run (default 2)")
    parser.add_argument("--faults", nargs="+", type=_fault, default=None,
                        help="faults to inject: hang, spin, exit, segfault, memory (default all)")
    parser.add_argument("--threads", type=int, default=None, help=THREADS_HELP)


def _fault(name: str) -> str:
    """A fault kind of `grpo.rewards.faults` (imported only when `--faults` is given: it loads torch)."""
    from grpo.rewards.faults import FAULTS

    if name not in FAULTS:
        raise argparse.ArgumentTypeError(f"unknown fault {name!r}; choose from {', '.join(FAULTS)}")
    return name
