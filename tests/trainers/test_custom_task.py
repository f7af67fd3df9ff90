"""The README's "your own task" route: a Task object and a reward function passed to `train`."""

from __future__ import annotations

import random
from pathlib import Path

from grpo.config import load_config
from grpo.models.tiny import build_char_tokenizer, build_tiny_llama, save_model_dir
from grpo.tasks.api import Example
from grpo.trainers.train import train


class Capitals:
    pairs = [("france", "paris"), ("japan", "tokyo"), ("peru", "lima")]

    def sample(self, rng: random.Random, split: str) -> Example:
        country, city = rng.choice(self.pairs)
        return Example(prompt=f"capital of {country}:", answer=city)

    def test_examples(self) -> list[Example]:
        return [Example(f"capital of {c}:", a) for c, a in self.pairs]


def contains_answer(completions: list[str], answer: list[str], **_) -> list[float | None]:
    return [float(ref in text) for text, ref in zip(completions, answer)]


def test_train_accepts_a_custom_task_and_reward(tmp_path: Path):
    tokenizer = build_char_tokenizer("abcdefghijklmnopqrstuvwxyz :")
    model = build_tiny_llama(tokenizer, hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64)
    save_model_dir(model, tokenizer, tmp_path / "model")
    config = load_config(overrides=[f"model.path={tmp_path / 'model'}", f"log.output_dir={tmp_path}",
                                    "log.run_name=capitals", "optim.steps=2", "rollout.prompts_per_step=3",
                                    "rollout.group_size=2", "rollout.max_new_tokens=6", "log.progress=false"])
    result = train(config, task=Capitals(), reward_fn=contains_answer)
    assert result.steps == 2 and 0.0 <= result.final_accuracy <= 1.0
    samples = (tmp_path / "capitals" / "samples.jsonl").read_text()
    assert "capital of" in samples
