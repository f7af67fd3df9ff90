"""The code reward: programs extracted from completions, graded in the sandbox, None on sandbox errors,
and a run-stopping error when the sandbox keeps failing."""

from __future__ import annotations

import dataclasses
import json

import pytest

from grpo.rewards.code import CodeReward, extract_code
from grpo.rewards.guard import RewardAbort, RewardGuard
from grpo.sandbox.layers import without
from grpo.sandbox.pool import SandboxPool, probed_host
from grpo.sandbox.runner import Limits

TESTS = json.dumps({"entry_point": "double", "test_list": ["assert double(2) == 4", "assert double(-1) == -2"]})
STDIO = json.dumps({"cases": [{"input": "3\n", "output": "9\n"}]})


@pytest.mark.parametrize(("completion", "program"), [
    ("```python\ndef f():\n    return 1\n```", "def f():\n    return 1\n"),
    ("First ```py\nx = 1\n``` then\n```python\nx = 2\n```", "x = 2\n"),
    ("<think>```python\nwrong\n```</think><answer>```python\nright = 1\n```</answer>", "right = 1\n"),
    ("<think>...</think><answer>print(1)</answer>", "print(1)"),
    ("```javascript\nalert(1)\n```\nprint(2)", "```javascript\nalert(1)\n```\nprint(2)"),
    ("def g():\n    pass", "def g():\n    pass"),
    ("```python\nunclosed = 1\n", "unclosed = 1\n"),
])
def test_extract_code(completion, program):
    assert extract_code(completion) == program


@pytest.fixture(scope="module")
def pool():
    if len(probed_host().layers) < 4:
        pytest.skip(f"full isolation unavailable here ({probed_host().describe()})")
    sandboxes = SandboxPool(workers=2, limits=Limits(timeout_s=3))
    yield sandboxes
    sandboxes.close()


def test_scores_share_of_tests_passed(pool):
    reward = CodeReward(pool=pool)
    completions = ["```python\ndef double(x):\n    return 2 * x\n```", "```python\ndef double(x):\n    return 4\n```",
                   "```python\nimport sys\nsys.exit(0)\n```", "```python\nx = int(input())\nprint(x * x)\n```"]
    assert reward(completions, tests=[TESTS, TESTS, TESTS, STDIO]) == [1.0, 0.5, 0.0, 1.0]
    assert CodeReward(pool=pool, partial_credit=False)(completions[:2], tests=[TESTS, TESTS]) == [1.0, 0.0]


def test_runs_in_the_trainer_without_a_warning(pool, caplog):
    guard = RewardGuard(processes=True, timeout=60)
    values, valid = guard.score(CodeReward(pool=pool), "code", ["```python\ndef double(x):\n    return x + x\n```"],
                                {"tests": [TESTS]})
    assert values.tolist() == [1.0] and valid.tolist() == [True]
    assert guard._workers is None and not caplog.records


@pytest.fixture
def broken_pool():
    host = dataclasses.replace(without(probed_host(), "seccomp", "test"), python="/nonexistent/python3")
    sandboxes = SandboxPool(workers=1, host=host, minimum=(), announce=False)
    yield sandboxes
    sandboxes.close()


def test_sandbox_errors_score_none_and_leave_the_baseline(broken_pool):
    guard = RewardGuard(timeout=60)
    values, valid = guard.score(CodeReward(pool=broken_pool), "code", ["print(1)", "print(2)"],
                                {"tests": [STDIO, STDIO]})
    assert valid.tolist() == [False, False]  # excluded from the group baseline, never a silent 0


def test_persistent_sandbox_errors_stop_the_run(broken_pool):
    reward = CodeReward(pool=broken_pool, max_error_share=0.5, max_error_steps=2)
    guard = RewardGuard(timeout=60)
    guard.score(reward, "code", ["print(1)"], {"tests": [STDIO]})
    with pytest.raises(RewardAbort, match=r"code sandbox failed for 100% of a batch in 2 calls in a row"):
        guard.score(reward, "code", ["print(1)"], {"tests": [STDIO]})


FN_TESTS = json.dumps({"entry_point": "f", "cases": [{"input": [x], "output": 2 * x + 3} for x in (2, 3, 4, 6, 9)]})
DEF_LINE = "def f(x):return "


def test_code_prefix_is_prepended_to_the_completion(pool):
    reward = CodeReward(pool=pool)
    completions = ["2*x+3", "2*x-3", "x+x+3", "(", "3"]
    scores = reward(completions, tests=[FN_TESTS] * 5, code_prefix=[DEF_LINE] * 5)
    assert scores == [1.0, 0.0, 1.0, 0.0, 0.0]  # right, wrong sign, right another way, syntax error, a constant
    assert reward(["2*x+3"], tests=[FN_TESTS]) == [0.0]  # without the prefix it is no function at all


class CountingPool:
    """A pool that counts the executions it runs (everything else is the real pool's)."""

    def __init__(self, pool: SandboxPool) -> None:
        self.inner, self.executions = pool, 0

    def execute(self, job, limits=None):
        self.executions += 1
        return self.inner.execute(job, limits)

    def __getattr__(self, name):
        return getattr(self.inner, name)


def test_identical_programs_in_one_call_run_once(pool):
    counting = CountingPool(pool)
    reward = CodeReward(pool=counting)
    other = FN_TESTS.replace('"output": 7', '"output": 8')
    completions = ["2*x+3", "2*x+3", "2*x-3", "2*x+3", "2*x+3"]
    tests = [FN_TESTS, FN_TESTS, FN_TESTS, FN_TESTS, other]
    scores = reward(completions, tests=tests, code_prefix=[DEF_LINE] * 5)
    assert scores == [1.0, 1.0, 0.0, 1.0, 0.8]
    assert counting.executions == 3  # (2*x+3, tests), (2*x-3, tests), (2*x+3, other tests)
