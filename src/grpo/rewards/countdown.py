"""The Countdown reward: an equation must use each given number once and reach the target.

Completions are untrusted text, so they are never passed to `eval`. A small recursive-descent
parser accepts only non-negative integer literals, + - * /, and parentheses, and evaluates with
exact fractions (so 6/4*2 is 3, and division by zero is simply a wrong answer).

Grammar: expr := term (("+" | "-") term)* ; term := factor (("*" | "/") factor)* ;
factor := INT | "(" expr ")". Unary minus is not allowed: the numbers must be combined, not negated.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from fractions import Fraction

from grpo.rewards.math_answer import answer_span

TOKEN = re.compile(r"\s*(?:(\d+)|(.))")
MAX_LENGTH = 200  # longer equations are refused before parsing


class EquationError(ValueError):
    """The text is not an equation of the accepted grammar (or divides by zero)."""


def _tokens(text: str) -> list[int | str]:
    tokens: list[int | str] = []
    for number, symbol in TOKEN.findall(text.strip()):
        if number:
            tokens.append(int(number))
        elif symbol in "+-*/()":
            tokens.append(symbol)
        else:
            raise EquationError(f"unexpected {symbol!r}")
    return tokens


class _Parser:
    def __init__(self, tokens: list[int | str]) -> None:
        self.tokens, self.at, self.numbers = tokens, 0, []

    def peek(self) -> int | str | None:
        return self.tokens[self.at] if self.at < len(self.tokens) else None

    def take(self) -> int | str | None:
        token = self.peek()
        self.at += 1
        return token

    def expr(self) -> Fraction:
        value = self.term()
        while self.peek() in ("+", "-"):
            value = value + self.term() if self.take() == "+" else value - self.term()
        return value

    def term(self) -> Fraction:
        value = self.factor()
        while self.peek() in ("*", "/"):
            op, right = self.take(), self.factor()
            if op == "/" and right == 0:
                raise EquationError("division by zero")
            value = value * right if op == "*" else value / right
        return value

    def factor(self) -> Fraction:
        token = self.take()
        if isinstance(token, int):
            self.numbers.append(token)
            return Fraction(token)
        if token == "(":
            value = self.expr()
            if self.take() != ")":
                raise EquationError("unbalanced parentheses")
            return value
        raise EquationError(f"expected a number or '(', got {token!r}")


def evaluate_equation(text: str) -> tuple[Fraction, list[int]]:
    """Exact value of an equation and the numbers it uses, in order of appearance.

    >>> evaluate_equation("(6 - 4) * 25 / 5")
    (Fraction(10, 1), [6, 4, 25, 5])
    """
    if len(text) > MAX_LENGTH:
        raise EquationError(f"longer than {MAX_LENGTH} characters")
    parser = _Parser(_tokens(text))
    value = parser.expr()
    if parser.peek() is not None:
        raise EquationError(f"unexpected {parser.peek()!r} after the equation")
    return value, parser.numbers


def equation_of(completion: str) -> str:
    """The equation a completion proposes: its answer span, without a trailing "= target"."""
    return answer_span(completion).split("=", 1)[0].strip()


def countdown(
    completions: list[str], nums: Sequence[object], target: Sequence[object], **_: Sequence[object]
) -> list[float | None]:
    """1.0 when the equation uses every number exactly once and equals the target, else 0.0.

    >>> countdown(["<answer>(6 - 4) * 25</answer>", "<answer>6 * 25</answer>", "50"], nums=[[4, 6, 25]] * 3,
    ...           target=[50, 50, 50])
    [1.0, 0.0, 0.0]
    """
    scores: list[float | None] = []
    for text, numbers, goal in zip(completions, nums, target):
        try:
            value, used = evaluate_equation(equation_of(text))
        except EquationError:
            scores.append(0.0)
            continue
        same_numbers = Counter(used) == Counter(int(n) for n in numbers)  # type: ignore[union-attr]
        scores.append(float(same_numbers and value == int(goal)))  # type: ignore[arg-type]
    return scores
