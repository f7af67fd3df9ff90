"""MATH (Hendrycks et al. 2021): competition problems whose solutions put the answer in \\boxed{}.

The usual copies (e.g. `HuggingFaceH4/MATH-500`, the Hendrycks files) have `problem` and `solution`
columns; the reference is the last \\boxed{} of the solution, compared with math-verify, which
accepts equivalent LaTeX (\\frac{1}{2}, 0.5, \\dfrac12).
"""

from grpo.rewards.math_answer import math_reference

DEFAULT_COLUMNS = {"prompt": "problem", "answer": "solution"}
ANSWER_FORMAT = "boxed"

__all__ = ["ANSWER_FORMAT", "DEFAULT_COLUMNS", "math_reference"]
