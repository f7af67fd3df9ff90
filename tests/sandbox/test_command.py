"""`grpo sandbox run` and `grpo sandbox grade` from the command line: one JSON line, exit 0 whenever
the sandbox worked, 2 for bad input."""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from grpo.cli import main


def grpo(*args: str) -> subprocess.CompletedProcess:
    """`grpo sandbox ARGS` in this process (the console script's `main`), its output captured."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["sandbox", *args])
    return subprocess.CompletedProcess(args, code, out.getvalue(), err.getvalue())


def test_the_console_script_runs_it(tmp_path: Path):
    program = tmp_path / "p.py"
    program.write_text("print(6 * 7)\n")
    out = subprocess.run([sys.executable, "-m", "grpo", "sandbox", "run", str(program)], capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0 and json.loads(out.stdout)["stdout"] == "42\n"


@pytest.fixture(autouse=True)
def _isolation(pool):
    """The session pool's fixture skips (saying why) where full isolation is unavailable."""


def test_run_prints_one_json_line_whatever_the_program_does(tmp_path: Path):
    program = tmp_path / "p.py"
    program.write_text("import sys\nprint('hello')\nprint('oops', file=sys.stderr)\nraise SystemExit(3)\n")
    out = grpo("run", str(program), "--timeout", "5")
    assert out.returncode == 0
    line = json.loads(out.stdout)
    assert out.stdout.count("\n") == 1
    assert (line["verdict"], line["exit_code"], line["stdout"], line["stderr"]) == ("runtime_error", 3, "hello\n",
                                                                                      "oops\n")
    assert {"wall_s", "peak_mb", "layers"} <= line.keys() and line["peak_mb"] > 0


def test_run_reads_stdin_and_reports_limits(tmp_path: Path):
    program, data = tmp_path / "p.py", tmp_path / "in.txt"
    program.write_text("print(input()[::-1])\n")
    data.write_text("abc\n")
    assert json.loads(grpo("run", str(program), "--stdin", str(data)).stdout)["stdout"] == "cba\n"
    program.write_text("while True:\n    pass\n")
    line = json.loads(grpo("run", str(program), "--timeout", "1").stdout)
    assert line["verdict"] == "timed_out"
    program.write_text("x = bytearray(300 * 1024**2)\n")
    assert json.loads(grpo("run", str(program), "--memory", "128").stdout)["verdict"] == "memory_exceeded"


def test_grade_both_formats(tmp_path: Path):
    solution, tests = tmp_path / "s.py", tmp_path / "t.json"
    solution.write_text("def add(a, b):\n    return a + b\n")
    test = "def check(candidate):\n    assert candidate(1, 2) == 3\n    assert candidate(0, 0) == 1\n"
    tests.write_text(json.dumps({"entry_point": "add", "test": test}))
    out = grpo("grade", "--tests", str(tests), str(solution))
    line = json.loads(out.stdout)
    assert out.returncode == 0 and line["score"] == 0.5 and line["verdicts"] == ["passed", "wrong_answer"]
    solution.write_text("print(sum(map(int, input().split())))\n")
    tests.write_text(json.dumps({"cases": [{"input": "1 2\n", "output": "3\n"}]}))
    assert json.loads(grpo("grade", "--tests", str(tests), str(solution)).stdout)["score"] == 1.0


def test_bad_input_is_one_line_and_exit_2(tmp_path: Path):
    solution, tests = tmp_path / "s.py", tmp_path / "t.json"
    solution.write_text("x = 1\n")
    tests.write_text("{not json")
    out = grpo("grade", "--tests", str(tests), str(solution))
    assert out.returncode == 2 and out.stderr.count("\n") == 1 and "t.json" in out.stderr
    assert grpo("run", str(tmp_path / "missing.py")).returncode == 2


def test_fuzz_reports_every_execution_and_nothing_left_behind():
    out = grpo("fuzz", "--count", "12", "--seed", "3", "--workers", "2")
    line = json.loads(out.stdout)
    assert out.returncode == 0, line
    assert line["executions"] == sum(line["statuses"].values()) == 12
    assert line["leftover_processes"] == [] and line["leftover_dirs"] == [] and line["sandbox_errors"] == 0


def test_fuzz_refuses_a_zero_count():
    out = grpo("fuzz", "--count", "0")
    assert out.returncode == 2 and "--count" in out.stderr
