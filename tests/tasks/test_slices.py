"""Named held-out slices of the arithmetic task: each holds what its name says, and stays held out."""

from __future__ import annotations

import pytest
import torch

from grpo.tasks.api import Example, HeldOutSlice, held_out_slices
from grpo.tasks.arithmetic import OPERATORS, ArithmeticTask, evaluate, is_test_expression, kind
from grpo.tasks.files import ListTask
from grpo.trainers.evaluate import HeldOutEvaluator, forgotten, slice_table


def operator_count(prompt: str) -> int:
    return sum(char in OPERATORS for char in prompt)


@pytest.mark.full_slices
def test_each_slice_holds_what_its_name_says_and_stays_held_out():
    task = ArithmeticTask()  # the default: 2-3 operators, precedence kind only
    slices = {piece.name: piece for piece in task.test_slices(1000)}
    assert list(slices) == ["precedence", "left_to_right", "ops1", "ops2", "ops3", "longer", "all"]
    for name, piece in slices.items():
        prompts = [example.prompt for example in piece.examples]
        assert len(set(prompts)) == len(prompts), name  # distinct
        assert all(e.answer == str(evaluate(e.prompt[:-1])) for e in piece.examples), name
    assert len(slices["ops1"].examples) == 300  # every single-digit a op b: 10 * 10 * 3
    for name in ("precedence", "left_to_right", "ops2", "ops3", "longer"):
        assert len(slices[name].examples) == 1000, name
    assert {kind(e.prompt[:-1]) for e in slices["precedence"].examples} == {"precedence"}
    assert {kind(e.prompt[:-1]) for e in slices["left_to_right"].examples} == {"left_to_right"}
    assert {operator_count(e.prompt) for e in slices["longer"].examples} == {4}
    for k in (1, 2, 3):
        assert {operator_count(e.prompt) for e in slices[f"ops{k}"].examples} == {k}
    # Slices the training split can draw from keep only test-bucket expressions; the others need no bucket.
    for name in ("precedence", "ops2", "ops3"):
        assert all(is_test_expression(e.prompt[:-1]) for e in slices[name].examples), name
    assert not all(is_test_expression(e.prompt[:-1]) for e in slices["left_to_right"].examples)
    # Under the bucket rule per slice the natural mix of kinds survives (about 10% precedence at 2 ops).
    share = sum(kind(e.prompt[:-1]) == "precedence" for e in slices["ops2"].examples) / 1000
    assert 0.05 < share < 0.2, share
    assert slices["all"].parts == ("ops1", "ops2", "ops3")
    again = task.test_slices(50)[0].examples  # the same draw order every time: a prefix of the full slice
    assert [e.prompt for e in again] == [e.prompt for e in slices["precedence"].examples[:50]]


def test_slices_of_a_task_trained_on_both_kinds_are_all_bucketed():
    task = ArithmeticTask(precedence_only=False, test_size=20)
    pieces = {piece.name: piece for piece in task.test_slices(30)}
    assert all(is_test_expression(e.prompt[:-1]) for e in pieces["left_to_right"].examples)
    assert not all(is_test_expression(e.prompt[:-1]) for e in pieces["longer"].examples)  # 4 ops: never trained


def test_tasks_without_slices_have_none():
    task = ListTask((Example("a", "1"),), (Example("b", "2"),))
    assert held_out_slices(task, 1000) == []
    assert held_out_slices(ArithmeticTask(), 0) == []


class LookupModel(torch.nn.Module):
    """Not a network: stands in for greedy decoding through a patched `greedy_accuracy`."""


def test_mean_slice_weighs_each_part_the_same_and_forgetting_is_flagged(monkeypatch):
    a = HeldOutSlice("a", "two right", (Example("1+1=", "2"), Example("2+2=", "4")))
    b = HeldOutSlice("b", "one of four right", tuple(Example(f"{i}*1=", str(i)) for i in range(4)))
    both = HeldOutSlice("ab", "mean", a.examples + b.examples, ("a", "b"))
    right = {"1+1=", "2+2=", "0*1="}

    def fake_greedy(model, tokenizer, examples, max_new_tokens, batch_size, check, guard=None):
        from grpo.trainers.evaluate import EvalResult

        return EvalResult(0.0, [{"prompt": e.prompt, "correct": e.prompt in right} for e in examples])

    monkeypatch.setattr("grpo.trainers.evaluate.greedy_accuracy", fake_greedy)
    scores = HeldOutEvaluator(LookupModel(), None, list(a.examples), [a, b, both], 8)()
    # a: 2/2 = 1.0, b: 1/4 = 0.25; the mean slice is (1.0 + 0.25) / 2 = 0.625, not 3/6 = 0.5.
    assert scores == {"eval_accuracy": 1.0, "eval/a": 1.0, "eval/b": 0.25, "eval/ab": 0.625}
    base = {"eval/a": 0.9, "eval/b": 0.29, "eval/ab": 0.6}
    assert forgotten(base, scores, points=3.0) == ["b"]  # 29 -> 25 is 4 points down; a and ab went up
    table = slice_table([a, b, both], base, scores)
    assert "b" in table and "-4.0p" in table
