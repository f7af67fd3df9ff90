"""The built-in arithmetic task: integer expressions where operator precedence matters.

A prompt is an expression followed by "=", e.g. "2+2*6=". A completion works the expression out one
operation at a time and ends with the integer after its last "=": "2+12=14". The reward is 1 when
that final integer is exact, else 0 (see `grpo.rewards.api.exact_answer`).

An expression is a chain of single-digit operands joined by + - *, in which one run of operands may
be wrapped in parentheses. With `precedence_only` (the default) the task keeps only expressions
whose left-to-right reading gives a different value ("2+2*6" is 14, not 24), so every prompt tests
the precedence rule.

Train and test are disjoint by construction: an expression belongs to the test split when a hash of
its text falls in the test bucket, so no seed can leak a test expression into training.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from typing import ClassVar

from grpo.tasks.api import Example, HeldOutSlice, distinct_examples
from grpo.tasks.slices import Kind, arithmetic_slice_specs, build_slice, mean_slice

OPERATORS = ("+", "-", "*")
TEST_BUCKETS = 10  # one hash bucket in ten is held out
Token = int | str  # a number, an operator, "(" or ")"


def tokenize(text: str) -> list[Token]:
    """Numbers (a '-' directly before digits where no operand precedes is a sign) and symbols."""
    tokens: list[Token] = []
    i = 0
    while i < len(text):
        char = text[i]
        operand_expected = not tokens or tokens[-1] in ("(", *OPERATORS)
        if char.isdigit() or (char == "-" and operand_expected and i + 1 < len(text) and text[i + 1].isdigit()):
            j = i + 1
            while j < len(text) and text[j].isdigit():
                j += 1
            tokens.append(int(text[i:j]))
            i = j
        elif char in "+-*()":
            tokens.append(char)
            i += 1
        elif char == " ":
            i += 1
        else:
            raise ValueError(f"unexpected {char!r} at position {i} of {text!r}")
    return tokens


def render(tokens: list[Token]) -> str:
    return "".join(str(token) for token in tokens)


def _apply(op: str, a: int, b: int) -> int:
    return a + b if op == "+" else a - b if op == "-" else a * b


def _innermost_chain(tokens: list[Token]) -> tuple[int, int]:
    """[start, end) of the first innermost parenthesised chain, or of the whole list if none."""
    start = 0
    for index, token in enumerate(tokens):
        if token == "(":
            start = index + 1
        elif token == ")":
            return start, index
    return 0, len(tokens)


def reduce_once(tokens: list[Token], precedence: bool) -> tuple[list[Token], bool]:
    """Carry out one operation: inside the innermost parentheses, the first * if `precedence`
    says so, else the leftmost operator. A parenthesised single number loses its parentheses
    instead; the flag says which of the two happened (True: an operation)."""
    start, end = _innermost_chain(tokens)
    chain = tokens[start:end]
    if len(chain) == 1:  # "(n)" -> "n"
        return tokens[: start - 1] + chain + tokens[end + 1 :], False
    ops = [i for i in range(1, len(chain), 2)]
    if len(chain) % 2 == 0 or any(not isinstance(chain[i - 1], int) for i in ops):
        raise ValueError(f"malformed expression {render(tokens)!r}")
    products = [i for i in ops if chain[i] == "*"]
    at = products[0] if precedence and products else ops[0]
    value = _apply(str(chain[at]), int(chain[at - 1]), int(chain[at + 1]))
    chain = chain[: at - 1] + [value] + chain[at + 2 :]
    return tokens[:start] + chain + tokens[end:], True


def solution_steps(text: str, precedence: bool = True) -> list[str]:
    """Every intermediate expression down to the final integer: "2+2*6" -> ["2+12", "14"].

    Parenthesised single numbers are unwrapped silently, so each listed step is one operation.
    Without `precedence` every chain is read left to right ("2+2*6" -> ["4*6", "24"]), the
    classic mistake that the careless warm-start teacher makes on purpose.
    """
    tokens, steps = tokenize(text), []
    while len(tokens) > 1:
        tokens, operated = reduce_once(tokens, precedence)
        if operated or not steps:
            steps.append(render(tokens))
        else:
            steps[-1] = render(tokens)  # unwrapping "(n)" is not a step of its own
    return steps


def evaluate(text: str, precedence: bool = True) -> int:
    """Value of an expression over integers, + - * and parentheses (no `eval`)."""
    steps = solution_steps(text, precedence)
    return int(steps[-1]) if steps else int(render(tokenize(text)))


def worked_solution(text: str, precedence: bool = True) -> str:
    """The completion a teacher writes for prompt `text + "="`: steps joined by "="."""
    return "=".join(solution_steps(text, precedence)) or render(tokenize(text))


def random_expression(rng: random.Random, num_ops: int, max_operand: int, paren_prob: float) -> str:
    """A chain of `num_ops + 1` operands; with `paren_prob` a run of 2+ operands is parenthesised."""
    operands = [str(rng.randint(0, max_operand)) for _ in range(num_ops + 1)]
    ops = [rng.choice(OPERATORS) for _ in range(num_ops)]
    if num_ops >= 2 and rng.random() < paren_prob:
        start = rng.randint(0, num_ops - 1)
        end = rng.randint(start + 1, min(num_ops, start + num_ops - 1))  # never the whole chain
        operands[start], operands[end] = f"({operands[start]}", f"{operands[end]})"
    return operands[0] + "".join(op + operand for op, operand in zip(ops, operands[1:]))


def is_test_expression(text: str) -> bool:
    """Whether an expression belongs to the held-out split (a fixed hash bucket, seed-independent)."""
    return hashlib.sha256(text.encode()).digest()[0] % TEST_BUCKETS == 0


@dataclass(frozen=True)
class ArithmeticTask:
    """Seeded generator of arithmetic prompts with exact integer answers."""

    min_ops: int = 2
    max_ops: int = 3
    max_operand: int = 9
    paren_prob: float = 0.3
    precedence_only: bool = True
    test_size: int = 200
    alphabet: ClassVar[str] = "0123456789+-*()= "  # every character of a prompt or a worked solution

    def sample(self, rng: random.Random, split: str) -> Example:
        """One example from `split` ("train" or "test"), drawn with `rng`."""
        want_test = split == "test"
        for _ in range(100_000):
            num_ops = rng.randint(self.min_ops, self.max_ops)
            text = random_expression(rng, num_ops, self.max_operand, self.paren_prob)
            if self.precedence_only and kind(text) == "left_to_right":
                continue  # reading left to right would also be right: nothing to learn here
            if is_test_expression(text) == want_test:
                return Example(prompt=f"{text}=", answer=str(evaluate(text)))
        raise ValueError(f"task settings {self} produce no {split} expressions; allow more operators")

    def test_examples(self, seed: int = 1234) -> list[Example]:
        """The held-out set: `test_size` distinct test-bucket expressions, the same for a given seed."""
        rng = random.Random(seed)
        examples = distinct_examples(lambda: self.sample(rng, "test"), self.test_size, 50 * self.test_size)
        if len(examples) < self.test_size:
            raise ValueError(f"only {len(examples)} distinct test expressions exist; lower task.test_size")
        return examples

    def teach(self, example: Example, careless: bool) -> str:
        """The warm-start teacher's worked solution for `example`; a careless one reads left to right."""
        return worked_solution(example.prompt.removesuffix("="), precedence=not careless)

    def test_slices(self, size: int) -> list[HeldOutSlice]:
        """The named held-out slices (`grpo.tasks.slices`), up to `size` distinct expressions each."""
        draw = lambda rng, num_ops: random_expression(rng, num_ops, self.max_operand, self.paren_prob)
        answer = lambda text: str(evaluate(text))
        slices = []
        for spec in arithmetic_slice_specs(self.min_ops, self.max_ops):
            overlaps = spec.overlaps_training(self.min_ops, self.max_ops, self.precedence_only)
            slices.append(build_slice(spec, size, draw, kind, is_test_expression if overlaps else None, answer))
        counts = [piece for piece in slices if piece.name.startswith("ops")]
        slices.append(mean_slice("all", f"1-{self.max_ops} ops, all expressions (mean over the operator count)",
                                 counts))
        return slices


def kind(text: str) -> Kind:
    """"precedence" when reading `text` left to right gives a wrong value, else "left_to_right"."""
    return "left_to_right" if evaluate(text) == evaluate(text, precedence=False) else "precedence"
