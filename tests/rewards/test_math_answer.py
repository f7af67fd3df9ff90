"""Reference extraction for GSM8K and MATH, and math-verify equivalence instead of string equality."""

from __future__ import annotations

import pytest

from grpo.rewards.math_answer import answer_span, boxed_content, gsm8k_reference, math_answer, math_reference


def test_gsm8k_reference_takes_the_text_after_the_marks_without_separators():
    assert gsm8k_reference("48/2 = 24 clips.\n#### 1,072") == "1072"
    with pytest.raises(ValueError, match="####"):
        gsm8k_reference("no answer line")


def test_boxed_content_matches_nested_braces_and_takes_the_last_box():
    assert boxed_content(r"first \boxed{1} then \boxed{\frac{1}{2}}.") == r"\frac{1}{2}"
    assert boxed_content(r"\boxed{x^{2} + \sqrt{y}}") == r"x^{2} + \sqrt{y}"
    assert boxed_content("no box") is None
    assert boxed_content(r"\boxed{unclosed") is None
    assert math_reference(r"So the answer is $\boxed{5}$.") == "5"


def test_answer_span_prefers_the_last_answer_tag():
    assert answer_span("<think>3?</think><answer>4</answer> <answer> 5 </answer>") == " 5 "
    assert answer_span("just 7") == "just 7"


@pytest.mark.parametrize(
    ("completion", "reference", "expected"),
    [
        ("<think>half</think><answer>0.5</answer>", r"\frac{1}{2}", 1.0),  # decimal vs fraction
        (r"<answer>\frac{2}{4}</answer>", "0.5", 1.0),  # unreduced fraction
        ("<answer>1,234</answer>", "1234", 1.0),  # thousands separator
        (r"so the result is $\boxed{18}$", "18", 1.0),  # boxed, no tags
        ("<answer>17</answer>", "18", 0.0),
        ("<answer>x^2 + 2x + 1</answer>", "(x+1)^2", 1.0),  # symbolic equivalence
        ("<answer>x^2 + 1</answer>", "(x+1)^2", 0.0),
        ("gibberish ))((", "3", 0.0),
    ],
)
def test_math_answer_uses_mathematical_equivalence(completion, reference, expected):
    assert math_answer([completion], answer=[reference]) == [expected]


def test_string_equality_would_have_failed_these():
    # the point of math-verify: none of these pairs is string-equal, all are the same number
    pairs = [("0.5", r"\frac{1}{2}"), ("1,234", "1234"), (r"\dfrac{3}{6}", "0.5")]
    assert all(a != b for a, b in pairs)
    assert math_answer([f"<answer>{a}</answer>" for a, _ in pairs], answer=[b for _, b in pairs]) == [1.0] * 3
