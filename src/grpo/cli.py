"""The `grpo` command: train, eval and sft. User errors become one line on stderr and exit code 2."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from grpo.errors import UserError

EXIT_USER_ERROR = 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="grpo", description="GRPO for language models with verifiable rewards.")
    commands = parser.add_subparsers(dest="command", required=True)
    train = commands.add_parser("train", help="train with GRPO (no arguments: the embedded default run)")
    train.add_argument("--config", type=Path, help="YAML config file (default: the embedded arith.yaml)")
    train.add_argument("overrides", nargs="*", help="dotted key=value overrides, e.g. optim.lr=3e-5")
    evaluate = commands.add_parser("eval", help="greedy held-out accuracy of a model directory")
    evaluate.add_argument("model", help="model directory (or builtin:arith-warmstart)")
    evaluate.add_argument("--config", type=Path, help="YAML config whose task section is used")
    evaluate.add_argument("overrides", nargs="*", help="dotted key=value overrides of the config")
    sft = commands.add_parser("sft", help="supervised warm start of the tiny model (reproduces the default base)")
    sft.add_argument("overrides", nargs="*", help="key=value overrides of the SFT config, e.g. steps=500")
    bench = commands.add_parser("bench", help="speed and memory benchmarks against their peers (one JSON line)")
    benchmarks = bench.add_subparsers(dest="benchmark", required=True)
    from grpo.bench import BENCHMARKS

    for name, (summary, add_arguments) in BENCHMARKS.items():
        add_arguments(benchmarks.add_parser(name, help=summary))
    return parser


def _train(args: argparse.Namespace) -> int:
    from grpo.config import load_config
    from grpo.trainers.train import train

    config = load_config(args.config, args.overrides)
    result = train(config)
    from grpo import dist

    gain = (result.final_accuracy - result.base_accuracy) * 100
    ratio = result.final_accuracy / result.base_accuracy if result.base_accuracy > 0 else float("inf")
    dist.print0(
        f"held-out greedy accuracy: base {result.base_accuracy:.3f} -> final {result.final_accuracy:.3f} "
        f"({gain:+.1f} points, {ratio:.2f}x) after {result.steps} steps in {result.train_seconds:.0f} s"
    )
    if result.checkpoint is not None:
        dist.print0(f"final checkpoint: {result.checkpoint}")
    return 0


def _eval(args: argparse.Namespace) -> int:
    from grpo.config import load_config
    from grpo.models.load import load_policy, load_tokenizer, resolve_device, resolve_model_path
    from grpo.trainers.evaluate import greedy_accuracy
    from grpo.trainers.setup import build_task

    config = load_config(args.config, [*args.overrides, f"model.path={args.model}"])
    path = resolve_model_path(config.model.path)
    model = load_policy(path, config.model.dtype, resolve_device(config.model.device))
    examples = build_task(config.task).test_examples()
    result = greedy_accuracy(model, load_tokenizer(path), examples, config.rollout.max_new_tokens)
    print(f"greedy accuracy on {len(examples)} held-out prompts: {result.accuracy:.3f}")
    return 0


def _sft(args: argparse.Namespace) -> int:
    from grpo.config.load import apply_override, validate_section
    from grpo.config.schema import SFTConfig
    from grpo.trainers.sft import run_sft

    data: dict = {}
    for override in args.overrides:
        apply_override(data, override)
    result = run_sft(validate_section(SFTConfig, data))
    print(f"warm start saved to {result.output}; held-out greedy accuracy {result.accuracy:.3f}")
    return 0


def _bench(args: argparse.Namespace) -> int:
    import importlib

    return importlib.import_module(f"grpo.bench.{args.benchmark}").main(args)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `grpo` console script."""
    args = _parser().parse_args(argv)
    handlers = {"train": _train, "eval": _eval, "sft": _sft, "bench": _bench}
    try:
        return handlers[args.command](args)
    except UserError as error:
        print(f"grpo {args.command}: error: {error}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print(f"grpo {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
