"""GSM8K (Cobbe et al. 2021): grade-school word problems whose solutions end with "#### <answer>".

The Hugging Face copy (`openai/gsm8k`, config `main`) has columns `question` and `answer`; the
reference is the number after "####", compared with math-verify, so "18.00" or "$18" match "18".
"""

from grpo.rewards.math_answer import gsm8k_reference

DEFAULT_COLUMNS = {"prompt": "question", "answer": "answer"}
ANSWER_FORMAT = "gsm8k"

__all__ = ["ANSWER_FORMAT", "DEFAULT_COLUMNS", "gsm8k_reference"]
