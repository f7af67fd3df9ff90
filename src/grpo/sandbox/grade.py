"""Grading outside the sandbox: the untrusted program never holds the verdict.

Function-style suites: the program runs once in a sandbox and its entry point is called on every
test input; the outputs come back as data and are compared here (`values.same`). Residual test code
(what could not be converted to input/output pairs) runs in a SECOND sandbox where the candidate is
a table of outputs recorded from the first, so test code and untrusted code never share a process;
calls the table lacks are found by a scanning pass first and, if test code computes arguments from
outputs, by up to `MAX_ROUNDS` further rounds. Stdin/stdout suites: one execution per case, stdout
compared here.

Every test gets a `Verdict`; the score is the share passed (`partial_credit`) or all-or-nothing, and
is None when the sandbox itself failed (`sandbox_error`), so that the trainer leaves the sample out
of the group baseline instead of scoring a broken sandbox as a wrong program.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from grpo.sandbox.pool import SandboxPool
from grpo.sandbox.runner import Execution, Job, Limits
from grpo.sandbox.tests_format import CallCase, Suite
from grpo.sandbox.values import decode, encode, key_of, same, same_text

MAX_ROUNDS = 3


class Verdict(str, Enum):
    """What happened to one test."""

    PASSED = "passed"
    WRONG_ANSWER = "wrong_answer"
    RUNTIME_ERROR = "runtime_error"
    TIMED_OUT = "timed_out"
    MEMORY_EXCEEDED = "memory_exceeded"
    OUTPUT_TOO_LARGE = "output_too_large"
    SANDBOX_VIOLATION = "sandbox_violation"
    SANDBOX_ERROR = "sandbox_error"


_STATUS_VERDICT = {"timeout": Verdict.TIMED_OUT, "memory": Verdict.MEMORY_EXCEEDED,
                   "output_limit": Verdict.OUTPUT_TOO_LARGE, "violation": Verdict.SANDBOX_VIOLATION,
                   "sandbox_error": Verdict.SANDBOX_ERROR}


@dataclass
class Grade:
    """Each test's verdict, the score (None on a sandbox error) and the executions' wall time."""

    verdicts: list[Verdict]
    score: float | None
    wall_s: float = 0.0
    details: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        """A JSON-ready summary."""
        return {"score": self.score, "passed": sum(v is Verdict.PASSED for v in self.verdicts),
                "total": len(self.verdicts), "verdicts": [v.value for v in self.verdicts],
                "wall_s": round(self.wall_s, 4), "details": self.details}


def score_of(verdicts: list[Verdict], partial_credit: bool) -> float | None:
    """Share passed (or 1/0 without partial credit); None if any test met a sandbox error."""
    if not verdicts or Verdict.SANDBOX_ERROR in verdicts:
        return None
    passed = sum(v is Verdict.PASSED for v in verdicts)
    return passed / len(verdicts) if partial_credit else float(passed == len(verdicts))


def _check_call(case: CallCase, record: dict | None) -> Verdict:
    if record is None:
        return Verdict.RUNTIME_ERROR
    if "error" in record:
        return Verdict.MEMORY_EXCEEDED if record["error"] == "MemoryError" else Verdict.RUNTIME_ERROR
    value = decode(record.get("value"))
    if case.check == "true":
        ok = value is True
    elif case.check == "false":
        ok = value is False
    elif case.check == "close":
        ok = same(value, float(case.expected), case.tolerance)
    else:
        ok = same(value, case.expected, case.tolerance, case.json_expected)
    return Verdict.PASSED if ok else Verdict.WRONG_ANSWER


def _indexed(execution: Execution) -> dict[int, dict]:
    return {r["i"]: r for r in execution.records if isinstance(r.get("i"), int)}


def _call_verdicts(cases: list[CallCase], execution: Execution) -> list[Verdict]:
    """Verdicts of the cases from one function-mode execution (records first, then how it ended)."""
    if execution.status in ("violation", "sandbox_error"):
        return [_STATUS_VERDICT[execution.status]] * len(cases)
    records = _indexed(execution)
    ended = _STATUS_VERDICT.get(execution.status, Verdict.RUNTIME_ERROR)
    return [_check_call(case, records[i]) if i in records else ended for i, case in enumerate(cases)]


class Grader:
    """Grades programs against suites on a sandbox pool."""

    def __init__(self, pool: SandboxPool, limits: Limits | None = None, partial_credit: bool = True) -> None:
        self.pool, self.limits, self.partial_credit = pool, limits or pool.limits, partial_credit

    def grade(self, source: str, suite: Suite) -> Grade:
        """Run `source` against `suite` and decide each test here."""
        if suite.kind == "stdio":
            return self._grade_stdio(source, suite)
        return self._grade_function(source, suite)

    def grade_many(self, sources: list[str], suites: list[Suite]) -> list[Grade]:
        """`grade` for each (program, suite) pair, the executions spread over the pool."""
        return self.pool.parallel(self.grade, sources, suites)

    def _grade_stdio(self, source: str, suite: Suite) -> Grade:
        verdicts, details, wall = [], [], 0.0
        for case in suite.stdio:
            run = self.pool.execute(Job("script", source, stdin=case.stdin.encode()), self.limits)
            wall += run.wall_s
            if run.status != "exited":
                verdicts.append(_STATUS_VERDICT[run.status])
            elif run.exit_code != 0:
                verdicts.append(Verdict.RUNTIME_ERROR)
            else:
                ok = same_text(run.stdout.decode(errors="replace"), case.expected)
                verdicts.append(Verdict.PASSED if ok else Verdict.WRONG_ANSWER)
            details.append(run.detail)
            if verdicts[-1] is Verdict.SANDBOX_ERROR:
                break
        return Grade(verdicts, score_of(verdicts, self.partial_credit), wall, [d for d in details if d])

    def _run_calls(self, source: str, entry: str, args: list[tuple]) -> Execution:
        calls = tuple(encode(list(a)) for a in args)
        return self.pool.execute(Job("function", source, entry=entry, calls=calls), self.limits)

    def _grade_function(self, source: str, suite: Suite) -> Grade:
        wall = 0.0
        extra: list[tuple] = []
        if suite.residual:
            scan = self._run_tests(suite, {}, scan=True)
            wall += scan.wall_s
            extra = _needed(scan)
        cases = list(suite.calls)
        run = self._run_calls(source, suite.entry, [c.args for c in cases] + extra)
        wall += run.wall_s
        verdicts = _call_verdicts(cases, run)
        details = [run.detail] if run.detail else []
        if suite.residual:
            verdict, spent = self._residual(source, suite, run, [c.args for c in cases] + extra)
            verdicts.append(verdict)
            wall += spent
        return Grade(verdicts, score_of(verdicts, self.partial_credit), wall, details)

    def _run_tests(self, suite: Suite, table: dict[str, dict], scan: bool) -> Execution:
        job = Job("tests", entry=suite.entry, tests=suite.residual, table=tuple(table.items()), scan=scan)
        return self.pool.execute(job, self.limits)

    def _residual(self, source: str, suite: Suite, run: Execution, args: list[tuple]) -> tuple[Verdict, float]:
        """The residual test code's verdict, run against the outputs recorded in `run` (and more rounds)."""
        if run.status != "exited":
            return _STATUS_VERDICT[run.status], 0.0
        table: dict[str, dict] = {}
        _record(table, args, run)
        spent = 0.0
        for _ in range(MAX_ROUNDS):
            check = self._run_tests(suite, table, scan=False)
            spent += check.wall_s
            if check.status == "sandbox_error":
                return Verdict.SANDBOX_ERROR, spent
            outcome = next((r for r in check.records if "tests" in r), {})
            if outcome.get("tests") != "missing":
                return (Verdict.PASSED if outcome.get("tests") == "passed" else Verdict.WRONG_ANSWER), spent
            needed = _needed(self._run_tests(suite, table, scan=True))
            more = self._run_calls(source, suite.entry, needed)
            spent += more.wall_s
            if more.status != "exited" or not needed:
                return _STATUS_VERDICT.get(more.status, Verdict.RUNTIME_ERROR), spent
            _record(table, needed, more)
        return Verdict.RUNTIME_ERROR, spent


def _needed(scan: Execution) -> list[tuple]:
    """Argument lists the scanning pass found calls for (deduplicated, in order)."""
    seen: dict[str, tuple] = {}
    for record in scan.records:
        if "need" in record:
            args = decode(record["need"])
            if isinstance(args, list):
                seen.setdefault(key_of(args), tuple(args))
    return list(seen.values())


def _record(table: dict[str, dict], args: list[tuple], run: Execution) -> None:
    """Add each call's recorded output (or the name of what it raised) to the table by argument key."""
    records = _indexed(run)
    for i, call_args in enumerate(args):
        record = records.get(i)
        if record is None or "error" in record:
            value = {"t": "raised", "v": (record or {}).get("error", "no result")}
        else:
            value = _clean(record.get("value"))
        table[key_of(list(call_args))] = value


def _clean(data: object) -> dict:
    """Untrusted tagged data rebuilt from its decoded value, so only well-formed tags reach test code."""
    value = decode(data)
    try:
        return encode(value)
    except ValueError:
        return {"t": "object", "v": "opaque"}
