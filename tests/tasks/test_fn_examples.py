"""task.name=fn_from_examples: prompts show three values and open the definition, the hidden tests are
other inputs, train and test functions never meet, and the held-out slices split the test set by form."""

from __future__ import annotations

import json
import random
from collections import Counter

import pytest

from grpo.tasks.fn_examples import (
    DEF_LINE,
    FUNCTIONS,
    HIDDEN_INPUTS,
    SHOWN_INPUTS,
    FnFromExamplesTask,
    careless_text,
    example_of,
    hidden_tests,
    is_test_function,
)


def run(expression: str, x: int) -> int:
    """The program a completion makes, run here on trusted teacher text (never on model output)."""
    namespace: dict = {}
    exec(DEF_LINE + expression, namespace)  # noqa: S102 - the task's own expressions
    return namespace["f"](x)


def test_prompt_shows_three_values_and_opens_the_definition():
    example = FnFromExamplesTask().sample(random.Random(0), "train")
    shown = " ".join(f"f({x})={run(example.answer, x)}" for x in SHOWN_INPUTS)
    assert example.prompt == f"{shown} {DEF_LINE}"
    assert example.columns["code_prefix"] == DEF_LINE
    assert json.loads(example.columns["tests"])["entry_point"] == "f"


def test_hidden_tests_are_inputs_the_prompt_does_not_show():
    for fn in FUNCTIONS:
        tests = json.loads(hidden_tests(fn))
        assert tests["entry_point"] == "f"
        assert [case["input"] for case in tests["cases"]] == [[x] for x in HIDDEN_INPUTS]
        assert all(case["output"] == run(fn.text, case["input"][0]) for case in tests["cases"])
    assert not set(HIDDEN_INPUTS) & set(SHOWN_INPUTS)


def test_function_space_and_split():
    forms = Counter(fn.form for fn in FUNCTIONS)
    assert forms == {"linear_add": 72, "linear_sub": 72, "square": 46}
    assert len({fn.text for fn in FUNCTIONS}) == len(FUNCTIONS)
    held_out = [fn for fn in FUNCTIONS if is_test_function(fn)]
    assert 55 <= len(held_out) <= 80
    task = FnFromExamplesTask()
    assert [e.answer for e in task.test_examples()] == [fn.text for fn in held_out]
    assert len(FnFromExamplesTask(test_size=5).test_examples()) == 5


@pytest.mark.parametrize("seed", range(5))
def test_train_and_test_are_disjoint_for_every_seed(seed):
    task, rng = FnFromExamplesTask(), random.Random(seed)
    test = {example.prompt for example in task.test_examples()}
    train = {task.sample(rng, "train").prompt for _ in range(500)}
    assert not train & test
    assert {task.sample(rng, "test").prompt for _ in range(200)} <= test


def test_slices_split_the_held_out_set_by_form():
    task = FnFromExamplesTask()
    slices = {piece.name: piece for piece in task.test_slices(1000)}
    assert list(slices) == ["linear_add", "linear_sub", "square"]
    assert sorted(e.prompt for piece in slices.values() for e in piece.examples) == sorted(
        e.prompt for e in task.test_examples())
    assert all("*x+" in e.answer and not e.answer.startswith("x*x") for e in slices["linear_add"].examples)
    assert all("*x-" in e.answer and not e.answer.startswith("x*x") for e in slices["linear_sub"].examples)
    assert all(e.answer.startswith("x*x") for e in slices["square"].examples)
    assert [len(piece.examples) for piece in task.test_slices(3)] == [3, 3, 3]


def test_careless_teacher_reads_the_shown_values_as_a_line():
    rng, task = random.Random(0), FnFromExamplesTask()
    assert careless_text(FUNCTIONS[0]) == "3*x+1"  # 2*x+1: f(1)=3 taken for the slope
    for fn in FUNCTIONS:
        wrong = careless_text(fn)
        assert run(wrong, 0) == fn(0) and wrong.startswith(f"{fn(1)}*x")  # f(0) kept, f(1) the slope...
        assert any(run(wrong, x) != fn(x) for x in HIDDEN_INPUTS)  # ...and fails a hidden test
    example = task.sample(rng, "train")
    assert task.teach(example, careless=False) == example.answer
    assert task.teach(example, careless=True) == careless_text(FUNCTIONS[[fn.text for fn in FUNCTIONS].index(
        example.answer)])
    alphabet = set(task.alphabet)
    assert all(set(careless_text(fn)) <= alphabet and len(careless_text(fn)) < 10 for fn in FUNCTIONS)
    assert all(set(e.prompt + e.answer) <= alphabet for e in map(example_of, FUNCTIONS))
