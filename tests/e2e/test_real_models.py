"""The issue's Done-when: a hub-style Qwen2 (LoRA) and Llama (full fine-tuning) trained by `grpo train`
on GSM8K-format JSONL with the R1 template, and checkpoints that plain transformers (and peft) load."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from grpo.cli import main

# A dense toy reward the random models can move: the share of completion characters that are digits.
# It is loaded by import path, as a user's own reward would be.
REWARD_MODULE = '''
def digits(completions, **columns):
    """Share of characters that are digits."""
    return [sum(c.isdigit() for c in text) / max(len(text), 1) for text in completions]
'''

pytestmark = pytest.mark.usefixtures("one_thread")


def run_train(tmp_path: Path, model_dir: Path, data: Path, name: str, extra: list[str]) -> Path:
    code = main(["train", f"model.path={model_dir}", "task.name=gsm8k", f"task.train_path={data}", "task.test_size=8",
                 "rewards=[{function: 'my_rewards:digits', weight: 1.0}, {function: math_answer},"
                 " {function: r1_format, weight: 0.5}]",
                 "rollout.group_size=4", "rollout.prompts_per_step=4", "rollout.max_new_tokens=12",
                 "optim.steps=4", "log.eval_every=0", "log.samples_every=2", "log.progress=false",
                 f"log.output_dir={tmp_path}", f"log.run_name={name}", *extra])
    assert code == 0
    return tmp_path / name


def check_run_outputs(run_dir: Path) -> list[dict]:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [row["step"] for row in rows] == [0, 1, 2, 3, 4]
    for key in ("reward/digits", "reward/math_answer", "reward/r1_format", "kl", "entropy", "clip_fraction"):
        assert key in rows[-1], key
    assert list((run_dir / "tensorboard").glob("events.out.tfevents.*"))
    assert "data:image/png;base64," in (run_dir / "report.html").read_text()
    return rows


def greedy_text(model_dir: Path, prompt: str) -> tuple[str, torch.Tensor]:
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    inputs = tokenizer(prompt, return_tensors="pt")
    with torch.no_grad():
        logits = model(**inputs).logits[0, -1]
        out = model.generate(**inputs, max_new_tokens=8, do_sample=False)
    return tokenizer.decode(out[0, inputs["input_ids"].shape[1]:]), logits


@pytest.mark.slow
def test_qwen2_lora_r1_gsm8k_run_and_checkpoints_reload(tmp_path, monkeypatch, tiny_qwen2_dir, gsm8k_jsonl):
    (tmp_path / "my_rewards.py").write_text(REWARD_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    run_dir = run_train(tmp_path, tiny_qwen2_dir, gsm8k_jsonl, "qwen-lora", ["model.lora.r=4", "optim.lr=0.05"])
    rows = check_run_outputs(run_dir)
    assert any(row.get("kl", 0) > 0 for row in rows), "the adapter must have moved the policy off the base"
    prompt = json.loads((run_dir / "samples.jsonl").read_text().splitlines()[0])["prompt"]
    assert prompt.endswith("Assistant: <think>") and "User: Tom has" in prompt  # the R1 template

    # The merged checkpoint is a plain Qwen2 model; base + adapter through peft gives the same logits.
    merged_text, merged_logits = greedy_text(run_dir / "final", prompt)
    _, base_logits = greedy_text(tiny_qwen2_dir, prompt)
    assert not torch.allclose(merged_logits, base_logits, atol=1e-4), "training must change the merged weights"
    from peft import PeftModel

    base = AutoModelForCausalLM.from_pretrained(tiny_qwen2_dir)
    adapted = PeftModel.from_pretrained(base, run_dir / "adapter").eval()
    inputs = AutoTokenizer.from_pretrained(run_dir / "adapter")(prompt, return_tensors="pt")
    with torch.no_grad():
        adapter_logits = adapted(**inputs).logits[0, -1]
    torch.testing.assert_close(adapter_logits, merged_logits, atol=1e-4, rtol=1e-4)
    assert isinstance(merged_text, str)


@pytest.mark.slow
def test_llama_full_finetune_r1_gsm8k_run_and_checkpoint_reloads(tmp_path, monkeypatch, capsys, tiny_llama_bpe_dir,
                                                                 gsm8k_jsonl):
    (tmp_path / "my_rewards.py").write_text(REWARD_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    run_dir = run_train(tmp_path, tiny_llama_bpe_dir, gsm8k_jsonl, "llama-full", ["optim.lr=3e-3"])
    check_run_outputs(run_dir)
    assert not (run_dir / "adapter").exists()
    prompt = json.loads((run_dir / "samples.jsonl").read_text().splitlines()[0])["prompt"]
    _, final_logits = greedy_text(run_dir / "final", prompt)
    _, base_logits = greedy_text(tiny_llama_bpe_dir, prompt)
    assert not torch.allclose(final_logits, base_logits, atol=1e-4), "full fine-tuning must change the weights"
    config = json.loads((run_dir / "final" / "config.json").read_text())
    assert config["model_type"] == "llama"
    code = main(["eval", str(run_dir / "final"), "task.name=gsm8k", f"task.train_path={gsm8k_jsonl}",
                 "task.test_size=4", "rollout.max_new_tokens=4"])
    assert code == 0
    assert "greedy accuracy on 4 held-out prompts: 0.000" in capsys.readouterr().out
