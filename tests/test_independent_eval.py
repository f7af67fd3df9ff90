"""benchmarks/independent_eval.py: its own arithmetic agrees with Python's, its slices hold the kind they
name, and it scores a checkpoint end to end with plain transformers."""

from __future__ import annotations

import importlib.util
import random
from pathlib import Path

import pytest

from grpo.models.load import resolve_model_path

pytestmark = pytest.mark.usefixtures("one_thread")

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "independent_eval.py"


@pytest.fixture(scope="module")
def scorer():
    spec = importlib.util.spec_from_file_location("independent_eval", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_values_by_hand(scorer):
    assert scorer.value(list("2+2*6"), precedence=True) == 14
    assert scorer.value(list("2+2*6"), precedence=False) == 24
    assert scorer.value(list("9-3*2-1"), precedence=True) == 2
    assert scorer.value(list("9-3*2-1"), precedence=False) == 11


def test_precedence_value_agrees_with_python(scorer):
    rng = random.Random(0)
    for _ in range(300):
        tokens = [str(rng.randint(0, 9))]
        for _ in range(rng.randint(1, 4)):
            tokens += [rng.choice("+-*"), str(rng.randint(0, 9))]
        assert scorer.value(tokens, precedence=True) == eval("".join(tokens))  # noqa: S307 - digits and + - *


def test_slices_hold_their_kind(scorer):
    rng = random.Random(1)
    for kind, differs in (("precedence", True), ("left_to_right", False)):
        items = scorer.expressions(rng, 2, kind, 50)
        assert len(items) == 50 and len({text for text, _ in items}) == 50
        for text, answer in items:
            assert answer == eval(text)  # noqa: S307
            assert (scorer.value(list(text), precedence=False) != answer) == differs


def test_scores_the_shipped_warm_start(scorer):
    items = scorer.expressions(random.Random(2), 1, None, 40)
    score = scorer.accuracy(str(resolve_model_path("builtin:arith-warmstart")), items, batch=16)
    assert 0.0 < score < 1.0 and score * len(items) == round(score * len(items))
