"""Turning a question into the text the model continues: a template, optionally inside a chat template.

`plain` passes the question through; `r1` is the DeepSeek-R1-Zero template, which asks for
<think>...</think><answer>...</answer> and ends with "<think>" so the completion starts with reasoning;
`code` asks for the solution in a ```python block (what `grpo.rewards.code.extract_code` reads).
With `chat`, the question (and a system message) goes through the tokenizer's own chat template,
as an instruction-tuned model (Qwen2.5-Instruct, Llama-3-Instruct) expects.
"""

from __future__ import annotations

from dataclasses import dataclass

from transformers import PreTrainedTokenizerBase

from grpo.errors import UserError
from grpo.rewards.format import R1_SYSTEM, R1_TEMPLATE

CODE_TEMPLATE = "{prompt}\n\nWrite your solution in Python, in one ```python code block."
TEMPLATES = {"plain": "{prompt}", "r1": R1_TEMPLATE, "code": CODE_TEMPLATE}
SYSTEM_PROMPTS = {"plain": None, "r1": R1_SYSTEM, "code": None}
GENERATION_PREFIXES = {"plain": "", "r1": "<think>", "code": ""}  # written after the chat template's assistant header


@dataclass(frozen=True)
class PromptFormat:
    """How questions become prompts; `tokenizer` is needed only when `chat` is on."""

    template: str = "plain"
    chat: bool = False
    system_prompt: str | None = None
    tokenizer: PreTrainedTokenizerBase | None = None

    def __post_init__(self) -> None:
        if self.template not in TEMPLATES:
            raise UserError(f"task.template: unknown template {self.template!r} (choose from {', '.join(TEMPLATES)})")
        if self.chat and (self.tokenizer is None or not getattr(self.tokenizer, "chat_template", None)):
            raise UserError("task.chat: the model's tokenizer has no chat template (set task.chat=false)")

    def render(self, question: str) -> str:
        """The prompt text for `question`."""
        if not self.chat:
            return TEMPLATES[self.template].format(prompt=question.strip())
        system = self.system_prompt if self.system_prompt is not None else SYSTEM_PROMPTS[self.template]
        messages = ([{"role": "system", "content": system}] if system else []) + [
            {"role": "user", "content": question.strip()}
        ]
        text = self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        return _without_duplicate_bos(self.tokenizer, text) + GENERATION_PREFIXES[self.template]


def _without_duplicate_bos(tokenizer: PreTrainedTokenizerBase, text: str) -> str:
    """Drop a BOS the chat template wrote when the tokenizer adds one itself when encoding, so that
    the prompt does not start with two (which shifts every Llama-3 prompt off its training distribution)."""
    bos = tokenizer.bos_token
    if not bos or not text.startswith(bos):
        return text
    adds_bos = tokenizer("x")["input_ids"][:1] == [tokenizer.bos_token_id]
    return text[len(bos):] if adds_bos else text
