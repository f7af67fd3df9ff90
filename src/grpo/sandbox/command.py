"""`grpo sandbox run|grade|fuzz`: check a program by hand, or the sandbox with random ones; one JSON line each.

`run` and `grade` exit 0 whenever the sandbox itself worked, whatever the program did; 1 when the
sandbox broke (`sandbox_error`) or cannot give its minimum layers; 2 for bad input (missing file,
malformed tests). `fuzz` exits 1 when any execution met a sandbox error or left a process or file behind.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from grpo.errors import UserError

RUN_VERDICTS = {"timeout": "timed_out", "memory": "memory_exceeded", "output_limit": "output_too_large",
                "violation": "sandbox_violation", "sandbox_error": "sandbox_error"}
TEXT_CAP = 4096  # characters of stdout / stderr printed


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The `run` and `grade` sub-commands (nothing imported until they run)."""
    commands = parser.add_subparsers(dest="sandbox_command", required=True)
    run = commands.add_parser("run", help="run FILE.py in the sandbox; one JSON line (verdict, output, time)")
    run.add_argument("file", type=Path, help="the Python program")
    run.add_argument("--stdin", type=Path, help="file given to the program as its standard input")
    _limits(run)
    grade = commands.add_parser("grade", help="grade SOLUTION.py against a tests file; one JSON line")
    grade.add_argument("--tests", type=Path, required=True, help="tests JSON: function-style or stdin/stdout")
    grade.add_argument("solution", type=Path, help="the Python program under test")
    grade.add_argument("--all-or-nothing", action="store_true", help="score 1 only when every test passes")
    _limits(grade)
    fuzz = commands.add_parser("fuzz", help="random small programs on a sandbox pool; one JSON line (leftovers)")
    fuzz.add_argument("--count", type=int, default=1000, help="programs to run (default 1000)")
    fuzz.add_argument("--seed", type=int, default=0)
    fuzz.add_argument("--workers", type=int, default=0, help="pool slots (default: core count)")


def _limits(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--timeout", type=float, default=10.0, help="wall-clock seconds per execution (default 10)")
    parser.add_argument("--memory", type=int, default=512, help="address-space limit in MB (default 512)")


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as error:
        raise UserError(f"{what}: cannot read {path}: {error.strerror}") from None


def main(args: argparse.Namespace) -> int:
    """Run the chosen sub-command and print its JSON line."""
    from grpo.sandbox.layers import SandboxUnavailable
    from grpo.sandbox.pool import SandboxPool
    from grpo.sandbox.runner import Limits

    if args.sandbox_command == "fuzz":
        return _fuzz(args)
    if args.timeout <= 0 or args.memory < 16:
        raise UserError("--timeout must be > 0 and --memory at least 16 (MB)")
    limits = Limits(timeout_s=args.timeout, memory_mb=args.memory)
    try:
        pool = SandboxPool(workers=1, limits=limits, announce=False)
    except SandboxUnavailable as error:
        print(json.dumps({"verdict": "sandbox_error", "detail": str(error)}))
        return 1
    try:
        line = _run(args, pool) if args.sandbox_command == "run" else _grade(args, pool)
    finally:
        pool.close()
    line["layers"] = sorted(pool.host.layers)
    print(json.dumps(line))
    return 1 if line["verdict"] == "sandbox_error" else 0


def _run(args: argparse.Namespace, pool: object) -> dict:
    from grpo.sandbox.runner import Job

    source = _read(args.file, "FILE").decode(errors="replace")
    stdin = _read(args.stdin, "--stdin") if args.stdin else b""
    result = pool.execute(Job("script", source, stdin=stdin))
    verdict = RUN_VERDICTS.get(result.status) or ("ok" if result.exit_code == 0 else "runtime_error")
    summary = result.summary()
    for stream in ("stdout", "stderr"):
        text = summary[stream]
        summary[stream], summary[f"{stream}_truncated"] = text[:TEXT_CAP], len(text) > TEXT_CAP
    return {"verdict": verdict, **{k: v for k, v in summary.items() if k != "status"}}


def _grade(args: argparse.Namespace, pool: object) -> dict:
    from grpo.sandbox.grade import Grader
    from grpo.sandbox.tests_format import SuiteFormatError, parse_suite

    source = _read(args.solution, "SOLUTION").decode(errors="replace")
    try:
        suite = parse_suite(_read(args.tests, "--tests").decode(errors="replace"))
    except SuiteFormatError as error:
        raise UserError(f"--tests {args.tests}: {error}") from None
    grade = Grader(pool, partial_credit=not args.all_or_nothing).grade(source, suite)
    summary = grade.to_json()
    verdict = "sandbox_error" if grade.score is None else "passed" if grade.score == 1 else "failed"
    return {"verdict": verdict, **summary}


def _fuzz(args: argparse.Namespace) -> int:
    import os

    from grpo.sandbox.fuzz import fuzz
    from grpo.sandbox.pool import SandboxPool

    if args.count < 1 or args.workers < 0:
        raise UserError("--count must be at least 1 and --workers at least 0")
    pool = SandboxPool(workers=args.workers)
    try:
        report = fuzz(pool, args.count, args.seed)
    finally:
        pool.close()
    print(json.dumps({"executions": report.executions, "statuses": report.statuses, "seconds": round(report.seconds, 1),
                      "slowest_s": round(report.slowest_s, 2), "leftover_processes": report.leftover_processes,
                      "leftover_dirs": report.leftover_dirs, "sandbox_errors": len(report.bad_status),
                      "layers": sorted(pool.host.layers), "loadavg": os.getloadavg()}))
    return 1 if report.bad_status or report.leftover_processes or report.leftover_dirs else 0
