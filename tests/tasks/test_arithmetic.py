"""The built-in arithmetic task: evaluation, worked solutions, splits and determinism."""

from __future__ import annotations

import random

import pytest

from grpo.tasks.arithmetic import (
    ArithmeticTask,
    evaluate,
    is_test_expression,
    random_expression,
    solution_steps,
    worked_solution,
)


@pytest.mark.parametrize(
    ("text", "value", "left_to_right"),
    [
        ("2+2*6", 14, 24),  # * binds tighter; read left to right: (2+2)*6
        ("(2+2)*6", 24, 24),  # parentheses win either way
        ("2*3-4*5+1", -13, 11),  # 6-20+1 vs ((6-4)*5)+1
        ("8-(1-9)", 16, 16),
        ("5-(3*4)*2", -19, -14),  # 5-24 vs (5-12)*2
        ("7", 7, 7),
    ],
)
def test_evaluate_with_and_without_precedence(text: str, value: int, left_to_right: int):
    assert evaluate(text) == value
    assert evaluate(text, precedence=False) == left_to_right


def test_evaluate_agrees_with_python_on_random_expressions():
    rng = random.Random(0)
    for _ in range(2000):
        text = random_expression(rng, rng.randint(1, 4), 9, 0.5)
        assert evaluate(text) == eval(text), text  # trusted test input; the package never calls eval


def test_worked_solutions_take_one_operation_per_step():
    assert worked_solution("2+2*6") == "2+12=14"
    assert worked_solution("2+2*6", precedence=False) == "4*6=24"
    assert worked_solution("3+(9*3-3)") == "3+(27-3)=3+24=27"  # "(24)" is unwrapped within the same step
    assert solution_steps("(2-9)*3+1") == ["-7*3+1", "-21+1", "-20"]
    assert worked_solution("8-(1-9)") == "8--8=16"  # a negative intermediate keeps its sign


def test_malformed_expressions_are_refused():
    for bad in ("2+", "(2+3", "2+a", "2+3)"):
        with pytest.raises(ValueError):
            evaluate(bad)


def test_splits_are_disjoint_and_deterministic():
    task = ArithmeticTask()
    rng = random.Random(0)
    train = {task.sample(rng, "train").prompt for _ in range(3000)}
    test = {example.prompt for example in task.test_examples()}
    assert len(test) == task.test_size
    assert not train & test
    assert all(is_test_expression(prompt[:-1]) for prompt in test)
    assert [e.prompt for e in task.test_examples()] == [e.prompt for e in ArithmeticTask().test_examples()]


def test_precedence_only_keeps_expressions_where_reading_order_matters():
    task, rng = ArithmeticTask(), random.Random(1)
    for _ in range(500):
        example = task.sample(rng, "train")
        text = example.prompt.removesuffix("=")
        assert int(example.answer) == evaluate(text) != evaluate(text, precedence=False)


def test_impossible_task_settings_fail_clearly():
    with pytest.raises(ValueError, match="distinct test expressions"):
        ArithmeticTask(min_ops=1, max_ops=1, test_size=10_000, precedence_only=False).test_examples()
