"""Test suites for code: function-style (MBPP / HumanEval) and stdin/stdout (APPS / CodeContests).

A suite is read from one JSON object (a tests file, or a dataset row's columns):

- function-style: `{"entry_point": "add", "test": "def check(candidate):\\n    assert candidate(1, 2) == 3"}`
  (HumanEval), `{"entry_point": "add", "test_list": ["assert add(1, 2) == 3"]}` (MBPP), or explicit
  pairs `{"entry_point": "add", "cases": [{"input": [1, 2], "output": 3}]}`;
- stdin/stdout: `{"cases": [{"input": "1 2\\n", "output": "3\\n"}]}` or
  `{"inputs": ["1 2\\n"], "outputs": ["3\\n"]}` (APPS' input_output).

Test code is converted where it has the common shape `assert f(literal args) == literal` (also
`abs(f(...) - x) < tol`, `math.isclose(f(...), x)`, `assert f(...)` and `assert not f(...)`): each
becomes an input/output pair that the trainer checks by value. Whatever is left (loops, helpers,
asserts of other shapes) is kept as residual test code, which runs in a second sandbox against
recorded outputs (`grpo.sandbox.grade`).
"""

from __future__ import annotations

import ast
import json
from dataclasses import dataclass
from typing import Any

from grpo.sandbox.values import FLOAT_TOLERANCE


class SuiteFormatError(ValueError):
    """A tests object that is neither format; the message names the problem."""


@dataclass(frozen=True)
class CallCase:
    """`entry(*args)` must equal `expected` (`check`: "equal", "close" within `tolerance`, "true", "false")."""

    args: tuple
    expected: Any = None
    check: str = "equal"
    tolerance: float = FLOAT_TOLERANCE
    json_expected: bool = False


@dataclass(frozen=True)
class StdioCase:
    """The program given `stdin` must print `expected`."""

    stdin: str
    expected: str


@dataclass(frozen=True)
class Suite:
    """A parsed test suite: `kind` "function" (calls and residual code) or "stdio" (cases)."""

    kind: str
    entry: str = ""
    calls: tuple[CallCase, ...] = ()
    residual: str = ""
    stdio: tuple[StdioCase, ...] = ()

    @property
    def size(self) -> int:
        """How many tests the score is a share of (the residual code counts as one)."""
        return len(self.stdio) if self.kind == "stdio" else len(self.calls) + bool(self.residual)


def _literal(node: ast.AST) -> Any:
    return ast.literal_eval(node)


def _call_args(node: ast.AST, names: set[str]) -> tuple | None:
    """The literal arguments of `name(...)` for a name in `names`, else None."""
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in names
            and not node.keywords and not any(isinstance(arg, ast.Starred) for arg in node.args)):
        try:
            return tuple(_literal(arg) for arg in node.args)
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
            return None
    return None


def convert_assert(node: ast.Assert, names: set[str]) -> CallCase | None:
    """The input/output pair an assert states, or None when it has another shape."""
    test = node.test
    try:
        if isinstance(test, ast.Compare) and len(test.ops) == 1 and isinstance(test.ops[0], ast.Eq):
            left, right = test.left, test.comparators[0]
            for call, other in ((left, right), (right, left)):
                args = _call_args(call, names)
                if args is not None:
                    return CallCase(args, _literal(other))
        if (isinstance(test, ast.Compare) and len(test.ops) == 1 and isinstance(test.ops[0], (ast.Lt, ast.LtE))
                and isinstance(test.left, ast.Call) and isinstance(test.left.func, ast.Name)
                and test.left.func.id == "abs" and len(test.left.args) == 1
                and isinstance(test.left.args[0], ast.BinOp) and isinstance(test.left.args[0].op, ast.Sub)):
            args = _call_args(test.left.args[0].left, names)
            if args is not None:
                return CallCase(args, float(_literal(test.left.args[0].right)), "close",
                                float(_literal(test.comparators[0])))
        args = _call_args(test, names)
        if args is not None:
            return CallCase(args, True, "true")
        if isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not):
            args = _call_args(test.operand, names)
            if args is not None:
                return CallCase(args, False, "false")
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return None
    return None


def split_test_code(code: str, entry: str) -> tuple[tuple[CallCase, ...], str]:
    """(pairs converted from asserts, residual code) for test code calling `candidate` or `entry`.

    Converted asserts are removed from the code; the residual is '' when nothing but imports,
    constant assignments, pass and an emptied `check` wrapper would remain.
    """
    try:
        tree = ast.parse(code)
    except SyntaxError as error:
        raise SuiteFormatError(f"test code does not parse: {error}") from None
    names = {"candidate", entry}
    calls: list[CallCase] = []
    substantive = False

    def strip(body: list[ast.stmt]) -> list[ast.stmt]:
        nonlocal substantive
        kept: list[ast.stmt] = []
        for statement in body:
            case = convert_assert(statement, names) if isinstance(statement, ast.Assert) else None
            if case is not None:
                calls.append(case)
                continue
            if isinstance(statement, ast.FunctionDef) and statement.name == "check":
                statement.body = strip(statement.body) or [ast.Pass()]
            elif not isinstance(statement, (ast.Import, ast.ImportFrom, ast.Pass, ast.Assign, ast.Expr)):
                substantive = True
            kept.append(statement)
        return kept

    tree.body = strip(tree.body)
    residual = ast.unparse(ast.fix_missing_locations(tree)) if substantive else ""
    return tuple(calls), residual


def _case_list(data: dict) -> list[dict]:
    if "cases" in data:
        cases = data["cases"]
    elif "inputs" in data and "outputs" in data:
        cases = [{"input": i, "output": o} for i, o in zip(data["inputs"], data["outputs"])]
    else:
        return []
    if not isinstance(cases, list) or not all(isinstance(c, dict) and {"input", "output"} <= c.keys()
                                               for c in cases):
        raise SuiteFormatError("'cases' must be a list of {\"input\": ..., \"output\": ...} objects")
    return cases


def parse_suite(data: Any) -> Suite:
    """A `Suite` from a tests object (module doc); `SuiteFormatError` names what is wrong."""
    if isinstance(data, str):
        try:
            data = json.loads(data)
        except ValueError as error:
            raise SuiteFormatError(f"tests are not JSON: {error}") from None
    if not isinstance(data, dict):
        raise SuiteFormatError("tests must be a JSON object")
    if isinstance(data.get("input_output"), str):  # APPS keeps its pairs as a JSON string
        return parse_suite(json.loads(data["input_output"]))
    entry = data.get("entry_point") or data.get("fn_name") or ""
    cases = _case_list(data)
    if not entry:
        if not cases:
            raise SuiteFormatError("tests need 'entry_point' (function-style) or 'cases'/'inputs'+'outputs' "
                                   "(stdin/stdout)")
        if not all(isinstance(c["input"], str) and isinstance(c["output"], str) for c in cases):
            raise SuiteFormatError("stdin/stdout cases need string 'input' and 'output'")
        return Suite("stdio", stdio=tuple(StdioCase(c["input"], c["output"]) for c in cases))
    calls = [CallCase(tuple(c["input"]) if isinstance(c["input"], list) else (c["input"],), c["output"],
                      json_expected=True) for c in cases]
    code = data.get("test") or "\n".join(data.get("test_list") or [])
    if isinstance(code, list):
        code = "\n".join(code)
    converted, residual = split_test_code(code, entry) if code else ((), "")
    setup = data.get("test_setup_code") or ""
    if residual and setup:
        residual = f"{setup}\n{residual}"
    if not calls and not converted and not residual:
        raise SuiteFormatError(f"no tests for entry point {entry!r} (give 'cases', 'test' or 'test_list')")
    return Suite("function", entry, tuple(calls) + converted, residual)
