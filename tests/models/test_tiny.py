"""The built-in tokenizer and model load back with plain transformers and keep the prompt format."""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from grpo.models.tiny import build_char_tokenizer


def test_char_tokenizer_prepends_bos_and_round_trips():
    tokenizer = build_char_tokenizer()
    ids = tokenizer("2+2*6=")["input_ids"]
    assert ids[0] == tokenizer.bos_token_id and len(ids) == 7
    assert tokenizer.decode(ids + [tokenizer.eos_token_id], skip_special_tokens=True) == "2+2*6="


def test_saved_model_dir_loads_with_auto_classes(tiny_model_dir: Path):
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    assert tokenizer("1+2=")["input_ids"] == build_char_tokenizer()("1+2=")["input_ids"]
    out = model.generate(**tokenizer("1+2=", return_tensors="pt"), max_new_tokens=3, do_sample=False)
    assert out.shape == (1, 8) and torch.all(out[0, :5] == torch.tensor(tokenizer("1+2=")["input_ids"]))
