"""Math answers: pulling the reference out of GSM8K and MATH solutions, checking with math-verify.

Answers are compared with `math-verify` (Hugging Face), which parses LaTeX and plain expressions
into sympy and checks equivalence, so "0.5", "\\frac{1}{2}" and "1/2" all match a reference of
"\\frac{1}{2}", and "1,234" matches "1234". String equality would score those as wrong.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence
from functools import lru_cache

from math_verify import parse, verify

ANSWER_TAG = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)
GSM8K_MARK = "####"
PARSE_TIMEOUT_S = 5


def gsm8k_reference(solution: str) -> str:
    """The final answer of a GSM8K solution: the text after "####", thousands separators removed.

    >>> gsm8k_reference("Natalia sold 48/2 = 24 clips in May.\\n#### 1,072")
    '1072'
    """
    if GSM8K_MARK not in solution:
        raise ValueError(f"no '{GSM8K_MARK}' answer line in GSM8K solution {solution[:60]!r}")
    return solution.rsplit(GSM8K_MARK, 1)[1].strip().replace(",", "")


def boxed_content(text: str) -> str | None:
    """The contents of the last \\boxed{...} (or \\fbox{...}) in `text`, braces matched; None if absent.

    >>> boxed_content("so $x = \\\\boxed{\\\\frac{1}{2}}$.")
    '\\\\frac{1}{2}'
    """
    start = max(text.rfind("\\boxed{"), text.rfind("\\fbox{"))
    if start < 0:
        return None
    index = text.index("{", start) + 1
    depth, begin = 1, index
    while index < len(text):
        depth += {"{": 1, "}": -1}.get(text[index], 0)
        if depth == 0:
            return text[begin:index]
        index += 1
    return None


def math_reference(solution: str) -> str:
    """The final answer of a MATH solution: its last \\boxed{} contents."""
    answer = boxed_content(solution)
    if answer is None:
        raise ValueError(f"no \\boxed{{}} answer in MATH solution {solution[:60]!r}")
    return answer


def answer_span(completion: str) -> str:
    """What a completion offers as its answer: the last <answer>...</answer> contents when tagged,
    else the whole completion (math-verify then takes its last boxed or plain expression)."""
    tagged = ANSWER_TAG.findall(completion)
    return tagged[-1] if tagged else completion


def _timeout() -> int:
    # math-verify's timeout uses SIGALRM, which only the main thread may set; elsewhere the reward
    # guard's own time limit applies.
    return PARSE_TIMEOUT_S if threading.current_thread() is threading.main_thread() else 0


@lru_cache(maxsize=4096)
def _parse_reference(reference: str) -> list:
    text = reference if ("$" in reference or "\\boxed" in reference) else f"${reference}$"
    return parse(text, parsing_timeout=_timeout())


def answers_match(completion: str, reference: str) -> bool:
    """Whether the completion's answer equals the reference under math-verify."""
    gold = _parse_reference(str(reference).strip())
    if not gold:
        return False
    span = answer_span(completion)
    candidates = [span]
    if ANSWER_TAG.search(completion) and "$" not in span and "\\boxed" not in span:
        # a tagged answer is one expression: read it whole in math mode first ("x^2 + 2x + 1", not its
        # last number), then as free text
        candidates.insert(0, f"${span.strip()}$")
    for text in candidates:
        predicted = parse(text, parsing_timeout=_timeout())
        if predicted:
            return verify(gold, predicted, timeout_seconds=_timeout())
    return False


def math_answer(completions: list[str], answer: Sequence[object], **_: Sequence[object]) -> list[float | None]:
    """1.0 when the completion's answer is mathematically equal to the reference, else 0.0.

    The answer is read from the last <answer> tag when there is one, else from the whole text.

    >>> math_answer(["<think>half</think><answer>0.5</answer>", "the answer is 3"], answer=["\\\\frac{1}{2}", "4"])
    [1.0, 0.0]
    """
    return [float(answers_match(text, str(ref))) for text, ref in zip(completions, answer)]
