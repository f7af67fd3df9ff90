"""The built-in code task `fn_from_examples`: write a one-line integer function from three of its values.

A prompt shows f(0), f(1) and f(10) of a hidden function, then opens its definition (the prompt ends
with the space after `return`):

    f(0)=-3 f(1)=-1 f(10)=17 def f(x):return

The completion is the return expression only ("2*x-3"). The reward runs the prompt's definition line
(the `code_prefix` column) followed by the completion in the code sandbox and checks f, outside the
sandbox, on the hidden inputs 2, 3, 4, 6 and 9, none of which the prompt shows: a program that
returned a value copied from the prompt passes nothing, the program has to compute.

The hidden functions have four forms over small constants (`FUNCTIONS`, 190 in all):

    linear_add   a*x+b   a in 2..9, b in 1..9
    linear_sub   a*x-b   a in 2..9, b in 1..9
    square       x*x+b and x*x-b, b in 1..23

Train and test are disjoint by construction, as in the arithmetic task: a function is held out when
a hash of its text falls in the test buckets, whatever the seed. The held-out set is every held-out
function (capped at `test_size`), and the named slices split it by form (`linear_add`, `linear_sub`,
`square`).

For the supervised warm start (`grpo sft`) the task is its own teacher: `teach` writes the right
expression, or, when told to be careless, the classic misreading of the shown values: f(0) is the
constant and f(1) the slope of a line, `f(1)*x+f(0)` ("5*x+3" for 2*x+3, "2*x+1" for x*x+1). Like
the arithmetic teacher's left-to-right reading, the mistake is one rule that the prompt determines,
so the student cannot tell from its data which of the two readings is right; every held-out function
is wrong under it (b is never 0, and a square is no line), and only the verifier can settle it.
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass
from typing import ClassVar

from grpo.tasks.api import Example, HeldOutSlice

DEF_LINE = "def f(x):return "
SHOWN_INPUTS = (0, 1, 10)
HIDDEN_INPUTS = (2, 3, 4, 6, 9)
TEST_BUCKETS = 8
HELD_OUT_BUCKETS = 3  # 3 buckets in 8 are held out: about 71 of the 190 functions
ALPHABET = "0123456789+-*()=: defnrtux"  # every character of a prompt or a completion


@dataclass(frozen=True)
class Fn:
    """A hidden function: `slope*x+offset` (form linear_*) or `x*x+offset` (form square)."""

    form: str  # linear_add, linear_sub or square
    slope: int  # a of a*x+b; 0 for the square form
    offset: int  # b with its sign: f(0)

    @property
    def text(self) -> str:
        """The return expression, as a careful teacher writes it: "2*x+3", "2*x-3", "x*x-5"."""
        head = "x*x" if self.form == "square" else f"{self.slope}*x"
        return f"{head}{'+' if self.offset >= 0 else '-'}{abs(self.offset)}"

    def __call__(self, x: int) -> int:
        return (x * x if self.form == "square" else self.slope * x) + self.offset


def _functions() -> tuple[Fn, ...]:
    linear = [Fn("linear_add", a, b) for a in range(2, 10) for b in range(1, 10)]
    linear += [Fn("linear_sub", a, -b) for a in range(2, 10) for b in range(1, 10)]
    square = [Fn("square", 0, sign * b) for sign in (1, -1) for b in range(1, 24)]
    return tuple(linear + square)


FUNCTIONS = _functions()
FORMS = {"linear_add": "a*x+b, a in 2-9, b in 1-9", "linear_sub": "a*x-b, a in 2-9, b in 1-9",
         "square": "x*x+b and x*x-b, b in 1-23"}


def is_test_function(fn: Fn) -> bool:
    """Whether a function is held out (a fixed hash bucket of its text, seed-independent)."""
    return hashlib.sha256(fn.text.encode()).digest()[0] % TEST_BUCKETS < HELD_OUT_BUCKETS


def prompt_of(fn: Fn) -> str:
    """"f(0)=3 f(1)=5 f(10)=23 def f(x):return ": the shown values, then the definition to complete."""
    shown = " ".join(f"f({x})={fn(x)}" for x in SHOWN_INPUTS)
    return f"{shown} {DEF_LINE}"


def hidden_tests(fn: Fn) -> str:
    """The hidden tests as a `tests` column (JSON, function-style input/output pairs of `grpo.sandbox`)."""
    cases = [{"input": [x], "output": fn(x)} for x in HIDDEN_INPUTS]
    return json.dumps({"entry_point": "f", "cases": cases}, sort_keys=True)


def example_of(fn: Fn) -> Example:
    """The task's example for `fn`: the answer is the careful teacher's expression."""
    return Example(prompt_of(fn), fn.text, {"tests": hidden_tests(fn), "code_prefix": DEF_LINE})


def careless_text(fn: Fn) -> str:
    """The careless teacher's expression for `fn`: f(1)*x+f(0), the shown values misread as a line's
    slope and constant (wrong for every function here: b is never 0, and a square is no line)."""
    return Fn("linear_add" if fn(0) > 0 else "linear_sub", fn(1), fn(0)).text


_BY_TEXT = {fn.text: fn for fn in FUNCTIONS}
_SPLITS = {test: tuple(fn for fn in FUNCTIONS if is_test_function(fn) == test) for test in (False, True)}


@dataclass(frozen=True)
class FnFromExamplesTask:
    """Prompts for the hidden functions of one split; see the module docstring."""

    test_size: int = 200
    alphabet: ClassVar[str] = ALPHABET

    def _split(self, test: bool) -> tuple[Fn, ...]:
        return _SPLITS[test]  # hashed once at import: `sample` runs for every prompt drawn

    def sample(self, rng: random.Random, split: str) -> Example:
        """One example of `split` ("train" or "test"), drawn with `rng`."""
        return example_of(rng.choice(self._split(split == "test")))

    def test_examples(self) -> list[Example]:
        """Every held-out function, at most `test_size` of them, in a fixed order."""
        return [example_of(fn) for fn in self._split(True)][: self.test_size]

    def test_slices(self, size: int) -> list[HeldOutSlice]:
        """The held-out functions of each form, up to `size` each."""
        held_out = self._split(True)
        return [HeldOutSlice(form, description, tuple(example_of(fn) for fn in held_out if fn.form == form)[:size])
                for form, description in FORMS.items()]

    def teach(self, example: Example, careless: bool) -> str:
        """The completion the warm-start teacher writes for `example` (a careless one is wrong)."""
        fn = _BY_TEXT[example.answer]
        return careless_text(fn) if careless else fn.text
