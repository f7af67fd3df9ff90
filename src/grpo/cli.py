"""The `grpo` command: train, eval, sft, compare, report and bench; user errors become one line and exit 2."""

from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path

from grpo.errors import UserError
from grpo.run.quiet import quiet_console

EXIT_USER_ERROR = 2
QUIET_COMMANDS = ("train", "eval", "sft", "compare")  # the commands that load models and read datasets


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="grpo", description="GRPO for language models with verifiable rewards.")
    commands = parser.add_subparsers(dest="command", required=True)
    train = commands.add_parser("train", help="train with GRPO (no arguments: the embedded default run)")
    train.add_argument("--config", type=Path, help="YAML config file (default: the embedded arith.yaml)")
    train.add_argument("--resume", metavar="RUN_DIR", help="continue a run from its newest complete checkpoint: "
                       "a run directory, one of its checkpoint directories, or 'latest' (newest run in log.output_dir)")
    train.add_argument("overrides", nargs="*", help="dotted key=value overrides, e.g. optim.lr=3e-5")
    evaluate = commands.add_parser("eval", help="greedy held-out accuracy of a model directory")
    evaluate.add_argument("model", help="model directory (or builtin:arith-warmstart, builtin:code-warmstart)")
    evaluate.add_argument("--config", type=Path, help="YAML config whose task section is used")
    evaluate.add_argument("overrides", nargs="*", help="dotted key=value overrides of the config")
    sft = commands.add_parser("sft", help="supervised warm start of the tiny model (reproduces the default base)")
    sft.add_argument("overrides", nargs="*", help="key=value overrides of the SFT config, e.g. steps=500")
    compare = commands.add_parser("compare", help="GRPO, PPO, DPO and a supervised baseline over several seeds")
    compare.add_argument("--config", type=Path, help="YAML config shared by all arms (default: arith.yaml)")
    compare.add_argument("--output", type=Path, default=Path("runs/compare"), help="where the table and plot go")
    compare.add_argument("--methods", default="grpo,ppo,dpo,sft", help="comma-separated arms to run (sft: the "
                         "supervised baseline, given the wall time of the RL arms before it)")
    compare.add_argument("--seeds", type=int, default=1, help="run every arm with this many seeds (seed, seed+1, ...)")
    compare.add_argument("overrides", nargs="*", help="key=value overrides, each given only to the arms it applies "
                         "to (algo.*: grpo, ppo; rollout.*: grpo, ppo, dpo; ppo.*, dpo.*, sft.*: that arm)")
    explain = commands.add_parser("explain", help="one group of a logged GRPO step, recomputed term by term")
    explain.add_argument("run_dir", type=Path, help="a GRPO run directory (holds explain/step-N.pt)")
    explain.add_argument("--step", type=int, help="a logged step (default: the latest; see log.samples_every)")
    explain.add_argument("--group", type=int, help="which group of the step (default: the first whose rewards differ)")
    report = commands.add_parser("report", help="write RUN_DIR/report.html: plots and best/worst completions")
    report.add_argument("run_dir", type=Path, help="a run directory (holds metrics.jsonl)")
    bench = commands.add_parser("bench", help="speed and memory benchmarks against their peers (one JSON line)")
    benchmarks = bench.add_subparsers(dest="benchmark", required=True)
    from grpo.bench import BENCHMARKS

    for name, (summary, add_arguments) in BENCHMARKS.items():
        add_arguments(benchmarks.add_parser(name, help=summary))
    from grpo.sandbox import command as sandbox_command

    sandbox_command.add_arguments(commands.add_parser("sandbox", help="run or grade a program in the code sandbox"))
    return parser


def _resume_target(args: argparse.Namespace) -> tuple[Path, Path]:
    """(the path to resume from, the run directory whose config.yaml applies) for `--resume`."""
    from grpo.config import load_config
    from grpo.trainers.resume import CHECKPOINTS_DIR, latest_run

    if args.resume == "latest":
        target = latest_run(Path(load_config(args.config, args.overrides).log.output_dir))
    elif args.config is not None:
        raise UserError("--config cannot be combined with --resume RUN_DIR: the run's own config.yaml is used "
                        "(change keys with key=value overrides)")
    else:
        target = Path(args.resume)
    run_dir = target.parent.parent if target.parent.name == CHECKPOINTS_DIR else target
    if not (run_dir / "config.yaml").is_file():
        raise UserError(f"--resume: {run_dir} is not a run directory (no config.yaml there)")
    return target, run_dir
def _compare(args: argparse.Namespace) -> int:
    from grpo.compare import markdown_table, run_compare

    methods = tuple(name.strip() for name in args.methods.split(",") if name.strip())
    results = run_compare(args.output, args.config, args.overrides, methods, args.seeds)
    print(markdown_table(results), end="")
    print(f"table, curves and plot written to {args.output}")
    return 0


def _train(args: argparse.Namespace) -> int:
    from grpo.config import load_config
    from grpo.config.applicability import refuse_unused, user_keys
    from grpo.trainers.train import train

    resume, run_dir = _resume_target(args) if args.resume else (None, None)
    config = load_config(run_dir / "config.yaml" if run_dir else args.config, args.overrides)
    refuse_unused(config.algorithm, user_keys(None if run_dir else args.config, args.overrides))
    result = train(config, resume=resume)
    from grpo import dist

    if result.stopped_by is not None:
        where = result.checkpoint.parent.parent if result.checkpoint is not None else run_dir
        dist.print0(f"stopped by {result.stopped_by} after step {result.steps}; checkpoint saved to "
                    f"{result.checkpoint}; resume with: grpo train --resume {where}")
        return 0

    gain = (result.final_accuracy - result.base_accuracy) * 100
    ratio = result.final_accuracy / result.base_accuracy if result.base_accuracy > 0 else float("inf")
    dist.print0(
        f"held-out greedy accuracy: base {result.base_accuracy:.3f} -> final {result.final_accuracy:.3f} "
        f"({gain:+.1f} points, {ratio:.2f}x) after {result.steps} steps in {result.train_seconds:.0f} s"
        + _pass_rates(result.base_scores, result.final_scores)
    )
    _print_slices(config, result.base_scores, result.final_scores)
    if result.checkpoint is not None:
        dist.print0(f"final checkpoint: {result.checkpoint}")
        report = result.checkpoint.parent / "report.html"
        if report.is_file():
            dist.print0(f"report: {report}  (TensorBoard: tensorboard --logdir {result.checkpoint.parent})")
    return 0


def _pass_rates(base: dict[str, float] | None, final: dict[str, float] | None) -> str:
    """"; sampled pass@1 0.342 -> 0.952, pass@8 ..." when the run logged sampled pass rates, else ""."""
    from grpo.trainers.evaluate import PASS_PREFIX

    keys = sorted((key for key in (final or {}) if key.startswith(PASS_PREFIX) and key in (base or {})),
                  key=lambda key: int(key.removeprefix(PASS_PREFIX)))
    parts = [f"{key.removeprefix('eval_')} {base[key]:.3f} -> {final[key]:.3f}" for key in keys]
    return "; sampled " + ", ".join(parts) if parts else ""


def _print_slices(config: object, base: dict[str, float] | None, final: dict[str, float] | None) -> None:
    """The per-slice table of a finished run, and a warning for each slice that fell below the base."""
    from grpo import dist
    from grpo.tasks.api import held_out_slices
    from grpo.tasks.registry import build_task_setup
    from grpo.trainers.evaluate import forgotten, slice_table

    if not base or not final or len(base) < 2:
        return
    slices = held_out_slices(build_task_setup(config.task).task, config.task.slice_size)
    dist.print0("held-out accuracy per slice (greedy; base -> final):\n" + slice_table(slices, base, final))
    for name in forgotten(base, final, config.log.forgetting_points):
        dist.print0(f"forgetting: slice {name!r} ended more than {config.log.forgetting_points:g} points "
                    "below the base")


def _eval(args: argparse.Namespace) -> int:
    from grpo.config import load_config
    from grpo.models.load import load_policy, load_tokenizer, resolve_device, resolve_model_path
    from grpo.tasks.api import held_out_slices
    from grpo.trainers.checks import checked_task_setup
    from grpo.trainers.evaluate import ACCURACY_KEY, PASS_PREFIX, HeldOutEvaluator, slice_table
    from grpo.trainers.train import sampled_pass

    config = load_config(args.config, [*args.overrides, f"model.path={args.model}"])
    path = resolve_model_path(config.model.path)
    tokenizer = load_tokenizer(path)
    setup = checked_task_setup(config, tokenizer)
    model = load_policy(path, config.model.dtype, resolve_device(config.model.device))
    examples = setup.task.test_examples()
    slices = held_out_slices(setup.task, config.task.slice_size)
    scores = HeldOutEvaluator(model, tokenizer, examples, slices, config.rollout.max_new_tokens, setup.check,
                              pass_rates=sampled_pass(config))()
    print(f"greedy accuracy on {len(examples)} held-out prompts: {scores[ACCURACY_KEY]:.3f}")
    for key in sorted(key for key in scores if key.startswith(PASS_PREFIX)):
        print(f"sampled {key.removeprefix('eval_')} ({config.log.eval_pass_samples} samples a prompt): "
              f"{scores[key]:.3f}")
    if slices:
        print("per slice:\n" + slice_table(slices, scores, label="acc"))
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


def _explain(args: argparse.Namespace) -> int:
    from grpo.explain import dissect, load_record, render_text

    print(render_text(dissect(load_record(args.run_dir, args.step), args.group)))
    return 0


def _report(args: argparse.Namespace) -> int:
    from grpo.run.report import write_report

    print(f"report written to {write_report(args.run_dir)}")
    return 0
def _bench(args: argparse.Namespace) -> int:
    from grpo.bench import run

    return run(args.benchmark, args)


def _sandbox(args: argparse.Namespace) -> int:
    from grpo.sandbox.command import main as sandbox_main

    return sandbox_main(args)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `grpo` console script."""
    args = _parser().parse_args(argv)
    handlers = {"train": _train, "eval": _eval, "sft": _sft, "compare": _compare, "explain": _explain,
                "report": _report, "bench": _bench, "sandbox": _sandbox}
    try:
        with quiet_console() if args.command in QUIET_COMMANDS else contextlib.nullcontext():
            return handlers[args.command](args)
    except UserError as error:
        print(f"grpo {args.command}: error: {error}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print(f"grpo {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
