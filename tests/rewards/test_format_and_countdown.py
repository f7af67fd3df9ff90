"""The R1 format reward and the Countdown reward (a parser, never eval)."""

from __future__ import annotations

from fractions import Fraction

import pytest

from grpo.rewards.countdown import EquationError, countdown, evaluate_equation
from grpo.rewards.format import R1_TEMPLATE, r1_format


@pytest.mark.parametrize(
    ("completion", "expected"),
    [
        ("add them: 2+2=4</think> <answer>4</answer>", 1.0),  # <think> opened by the template
        ("<think>2+2=4</think>\n<answer>4</answer>\n", 1.0),
        ("<answer>4</answer>", 0.0),  # no reasoning block
        ("2+2</think><answer>4", 0.0),  # unclosed answer
        ("a</think><answer>4</answer> trailing text", 0.0),  # text after the answer
        ("a</think><answer>4</answer><answer>5</answer>", 0.0),  # two answers
        ("a<think>b</think><answer>4</answer>", 0.0),  # nested think
    ],
)
def test_r1_format(completion, expected):
    assert r1_format([completion]) == [expected]


def test_r1_template_ends_with_an_open_think_tag():
    prompt = R1_TEMPLATE.format(prompt="What is 2+2?")
    assert prompt.endswith("User: What is 2+2?. Assistant: <think>")


def test_evaluate_equation_is_exact_and_respects_precedence():
    assert evaluate_equation("(6 - 4) * 25 / 5") == (Fraction(10), [6, 4, 25, 5])
    assert evaluate_equation("2 + 3 * 4")[0] == 14  # not 20
    assert evaluate_equation("7 / 2 * 2")[0] == 7  # exact fractions, no float rounding


@pytest.mark.parametrize(
    "text", ["__import__('os').system('true')", "2 ** 10", "1e3", "-5 + 10", "(1 + 2", "4 / (2 - 2)", "3 3", ""]
)
def test_evaluate_equation_refuses_anything_outside_the_grammar(text):
    with pytest.raises(EquationError):
        evaluate_equation(text)


@pytest.mark.parametrize(
    ("completion", "expected"),
    [
        ("<think>try</think><answer>(6 - 4) * 25</answer>", 1.0),  # 2 * 25 = 50, each number once
        ("<answer>(6 - 4) * 25 = 50</answer>", 1.0),  # a trailing "= target" is allowed
        ("<answer>6 * 25 / 3</answer>", 0.0),  # 50, but 3 is not given and 4 is unused
        ("<answer>25 + 25</answer>", 0.0),  # 50, but 25 used twice
        ("<answer>(6 - 4) * 25 + 4 - 4</answer>", 0.0),  # 4 used more often than given
        ("<answer>6 * 4 + 25</answer>", 0.0),  # uses each once but makes 49
        ("<answer>__import__('os')</answer>", 0.0),  # never evaluated
    ],
)
def test_countdown_reward(completion, expected):
    assert countdown([completion], nums=[[4, 6, 25]], target=[50]) == [expected]
