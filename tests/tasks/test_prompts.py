"""Prompt rendering: plain, the R1 template, and the tokenizer's chat template."""

from __future__ import annotations

import pytest

from grpo.errors import UserError
from grpo.models.tiny import build_char_tokenizer
from grpo.tasks.prompts import PromptFormat


def test_plain_and_r1_without_chat():
    assert PromptFormat("plain").render(" 2+2? ") == "2+2?"
    r1 = PromptFormat("r1").render("2+2?")
    assert r1.startswith("A conversation between User and Assistant.") and r1.endswith("User: 2+2?. Assistant: <think>")


def test_chat_template_with_r1_system_message(bpe_tokenizer):
    text = PromptFormat("r1", chat=True, tokenizer=bpe_tokenizer).render("What is 2+2?")
    assert text.startswith("<|im_start|>system\nA conversation between User and Assistant.")
    assert text.endswith("<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n<think>")


def test_chat_plain_with_own_system_prompt(bpe_tokenizer):
    text = PromptFormat("plain", chat=True, system_prompt="Be brief.", tokenizer=bpe_tokenizer).render("Hi")
    assert text == "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"


def test_chat_needs_a_chat_template():
    with pytest.raises(UserError, match="task.chat: the model's tokenizer has no chat template"):
        PromptFormat("plain", chat=True, tokenizer=build_char_tokenizer())


def test_a_bos_the_tokenizer_adds_itself_is_not_written_twice():
    tokenizer = build_char_tokenizer("abcdefghijklmnopqrstuvwxyz<>|_ \n")  # adds <bos> when encoding
    tokenizer.chat_template = "{{ bos_token }}{% for m in messages %}{{ m['content'] }}{% endfor %}"
    text = PromptFormat("plain", chat=True, tokenizer=tokenizer).render("hi")
    assert text == "hi"
    assert tokenizer(text)["input_ids"].count(tokenizer.bos_token_id) == 1
