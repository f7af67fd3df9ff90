"""The example configs are complete but for model and data paths: with tiny local stand-ins for those
(and sizes shrunk for a CPU), each one trains for a step as written. code-tiny.yaml needs no stand-in:
it runs on the shipped warm start, shortened to a few steps."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from grpo.cli import main
from grpo.config import load_config
from grpo.config.schema import SandboxSettings

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
SHRINK = ["rollout.group_size=2", "rollout.prompts_per_step=2", "rollout.max_new_tokens=8", "optim.steps=1",
          "task.test_size=2", "log.progress=false", "log.eval_every=0"]

pytestmark = pytest.mark.usefixtures("one_thread")


def test_examples_exist_and_validate():
    names = sorted(path.name for path in EXAMPLES.glob("*.yaml"))
    assert names == ["code-tiny.yaml", "codecontests-qwen2.5-coder-1.5b-instruct.yaml",
                     "countdown-qwen2.5-3b-instruct.yaml", "gsm8k-qwen2.5-0.5b-instruct.yaml",
                     "humaneval-qwen2.5-coder-1.5b-instruct.yaml"]
    tiny = load_config(EXAMPLES / "code-tiny.yaml")
    assert tiny.task.name == "fn_from_examples" and tiny.model.path == "builtin:code-warmstart"
    assert tiny.log.eval_pass_samples >= tiny.log.eval_pass_k > 1
    assert tiny.task.sandbox.minimum == SandboxSettings().minimum  # the full sandbox
    for name in names[1:]:
        config = load_config(EXAMPLES / name)
        assert config.model.lora is not None and config.task.chat
        assert config.task.template == ("code" if name.startswith("humaneval") else "r1")


@pytest.mark.slow
def test_gsm8k_example_runs_with_local_stand_ins(tmp_path, tiny_qwen2_dir, gsm8k_jsonl):
    code = main(["train", "--config", str(EXAMPLES / "gsm8k-qwen2.5-0.5b-instruct.yaml"),
                 f"model.path={tiny_qwen2_dir}", f"task.train_path={gsm8k_jsonl}", f"task.test_path={gsm8k_jsonl}",
                 *SHRINK,
                 f"log.output_dir={tmp_path}", "log.run_name=gsm8k"])
    assert code == 0
    sample = json.loads((tmp_path / "gsm8k" / "samples.jsonl").read_text().splitlines()[0])
    assert sample["prompt"].startswith("<|im_start|>system\nA conversation between User and Assistant.")


@pytest.mark.slow
def test_countdown_example_runs_with_local_stand_ins(tmp_path, tiny_qwen2_dir):
    import datasets

    rows = [{"target": 50, "nums": [4, 6, 25]}, {"target": 13, "nums": [2, 3, 7]}, {"target": 6, "nums": [1, 2, 3]},
            {"target": 24, "nums": [2, 3, 4]}]
    data = tmp_path / "countdown.parquet"
    datasets.Dataset.from_list(rows).to_parquet(str(data))
    code = main(["train", "--config", str(EXAMPLES / "countdown-qwen2.5-3b-instruct.yaml"),
                 f"model.path={tiny_qwen2_dir}", f"task.train_path={data}", *SHRINK,
                 f"log.output_dir={tmp_path}", "log.run_name=countdown"])
    assert code == 0
    metrics = (tmp_path / "countdown" / "metrics.jsonl").read_text()
    assert "reward/countdown" in metrics and "reward/r1_format" in metrics


CODE_ROWS = [
    {"prompt": "Write add(a, b).", "entry_point": "add",
     "test": "def check(candidate):\n    assert candidate(1, 2) == 3\n"},
    {"text": "Write neg(x).", "entry_point": "neg", "test_list": ["assert neg(1) == -1", "assert neg(0) == 0"]},
]
STDIO_ROWS = [{"question": "Print the sum of two integers.", "inputs": ["1 2\n", "5 5\n"], "outputs": ["3\n", "10\n"]},
              {"question": "Echo the line.", "inputs": ["hi\n"], "outputs": ["hi\n"]}]


@pytest.mark.slow
@pytest.mark.parametrize(("example", "rows"), [("humaneval-qwen2.5-coder-1.5b-instruct.yaml", CODE_ROWS * 2),
                                               ("codecontests-qwen2.5-coder-1.5b-instruct.yaml", STDIO_ROWS * 2)])
def test_code_examples_run_with_local_stand_ins(tmp_path, tiny_qwen2_dir, example, rows):
    from grpo.sandbox.pool import probed_host

    if len(probed_host().layers) < 4:
        pytest.skip(f"full isolation unavailable here ({probed_host().describe()})")
    data = tmp_path / "rows.jsonl"
    data.write_text("\n".join(json.dumps({"prompt": r.get("prompt") or r.get("text"), **r}) for r in rows))
    extra = [f"task.test_path={data}"] if example.startswith("humaneval") else []
    code = main(["train", "--config", str(EXAMPLES / example), f"model.path={tiny_qwen2_dir}",
                 f"task.train_path={data}", *extra, *SHRINK, "task.sandbox.timeout_s=2", "task.sandbox.workers=2",
                 f"log.output_dir={tmp_path}", "log.run_name=code"])
    assert code == 0
    assert "reward/code" in (tmp_path / "code" / "metrics.jsonl").read_text()


@pytest.mark.slow
def test_code_tiny_example_runs_a_few_steps_with_pass_at_k(tmp_path, capsys):
    from grpo.sandbox.pool import probed_host

    if len(probed_host().layers) < 4:
        pytest.skip(f"full isolation unavailable here ({probed_host().describe()})")
    code = main(["train", "--config", str(EXAMPLES / "code-tiny.yaml"), "optim.steps=2", "rollout.prompts_per_step=4",
                 "rollout.group_size=4", "task.test_size=6", "task.slice_size=2", "log.eval_every=0",
                 "log.eval_pass_samples=4", "log.eval_pass_k=4", "log.progress=false", "log.report=false",
                 "log.tensorboard=false", f"log.output_dir={tmp_path}", "log.run_name=code-tiny"])
    assert code == 0
    rows = [json.loads(line) for line in (tmp_path / "code-tiny" / "metrics.jsonl").read_text().splitlines()]
    first, last = rows[0], rows[-1]
    for row in (first, last):
        assert {"eval_accuracy", "eval_pass@1", "eval_pass@4", "eval/linear_add", "eval/square"} <= set(row)
    assert "reward/code" in last
    summary = capsys.readouterr().out
    assert "held-out greedy accuracy" in summary and "sampled pass@1" in summary and "pass@4" in summary
