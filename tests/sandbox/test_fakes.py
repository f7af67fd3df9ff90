"""The four ways to fake a pass, each scoring 0, and a correct solution scoring 1, in both formats.

The reference graders decide pass/fail inside the untrusted process, where all four fakes earn
credit; here the verdict is decided by the trainer, from the program's outputs as data.
"""

from __future__ import annotations

import pytest

from grpo.sandbox.grade import Grader, Verdict
from grpo.sandbox.tests_format import parse_suite

HUMANEVAL = {"entry_point": "add", "test": (
    "def check(candidate):\n"
    "    assert candidate(1, 2) == 3\n"
    "    assert candidate(-4, 4) == 0\n"
    "    for i in range(3):\n"
    "        assert candidate(i, 1) == i + 1\n")}
STDIO = {"cases": [{"input": "1 2\n", "output": "3\n"}, {"input": "10 -3\n", "output": "7\n"}]}
CORRECT_FUNCTION = "def add(a, b):\n    return a + b\n"
CORRECT_STDIO = "a, b = map(int, input().split())\nprint(a + b)\n"

FAKES = {
    "exit_before_asserts": "import sys\nsys.exit(0)\ndef add(a, b):\n    return 99\n",
    "always_equal": ("class Yes:\n    def __eq__(self, other):\n        return True\n    __hash__ = None\n"
                     "    def __bool__(self):\n        return True\n"
                     "def add(a, b):\n    return Yes()\n"),
    "int_subclass_equal": ("class Yes(int):\n    def __eq__(self, other):\n        return True\n"
                           "    __hash__ = int.__hash__\n"
                           "def add(a, b):\n    return Yes(0)\n"),
    "monkeypatch_builtins_and_harness": (
        "import builtins, sys\n"
        "builtins.AssertionError = type('Never', (BaseException,), {})\n"
        "frame = sys._getframe()\n"
        "while frame is not None:\n"
        "    for name in ('emit', 'encode', 'same', 'check_call'):\n"
        "        if name in frame.f_globals:\n"
        "            frame.f_globals[name] = lambda *a, **k: None\n"
        "    frame = frame.f_back\n"
        "def add(a, b):\n    return 99\n"),
    "prints_passed": "print('PASSED')\nprint('All tests passed')\ndef add(a, b):\n    return 99\n",
}


@pytest.fixture(scope="module")
def grader(pool):
    return Grader(pool)


def test_correct_function_solution_scores_one(grader):
    grade = grader.grade(CORRECT_FUNCTION, parse_suite(HUMANEVAL))
    assert grade.score == 1.0 and set(grade.verdicts) == {Verdict.PASSED}, grade.to_json()


def test_correct_stdio_solution_scores_one(grader):
    assert grader.grade(CORRECT_STDIO, parse_suite(STDIO)).score == 1.0


@pytest.mark.parametrize("name", sorted(FAKES))
def test_fake_function_solution_scores_zero(grader, name):
    grade = grader.grade(FAKES[name], parse_suite(HUMANEVAL))
    assert grade.score == 0.0, grade.to_json()


@pytest.mark.parametrize("name", sorted(FAKES))
def test_fake_stdio_solution_scores_zero(grader, name):
    source = FAKES[name].replace("def add(a, b):\n    return", "print(")  # fakes as scripts
    source = source.replace("print( 99\n", "print(99)\n").replace("print( Yes()\n", "print(Yes())\n")
    source = source.replace("print( Yes(0)\n", "print(Yes(0))\n")
    assert grader.grade(source, parse_suite(STDIO)).score == 0.0


def test_test_code_never_shares_a_process_with_the_candidate(grader):
    # A candidate that records that it ran into a file would see the tests' process only if shared; instead we
    # check that residual test code sees a table value, not the candidate's object: an object's __eq__ that
    # returns True would pass `assert candidate(i, 1) == i + 1` if it were called there.
    grade = grader.grade(FAKES["always_equal"], parse_suite(HUMANEVAL))
    assert grade.verdicts[-1] is Verdict.WRONG_ANSWER  # the residual (loop) test


def test_partial_credit_is_the_share_passed(pool):
    half = "def add(a, b):\n    return a + b if a > 0 else 0\n"
    suite = parse_suite({"entry_point": "add", "test_list": ["assert add(1, 2) == 3", "assert add(-1, 2) == 1"]})
    assert Grader(pool).grade(half, suite).score == 0.5
    assert Grader(pool, partial_credit=False).grade(half, suite).score == 0.0
