"""`grpo sft`: the task supplies the teacher and the alphabet; the code task's warm start is graded
in the sandbox; settings that cannot work fail in one line naming the key."""

from __future__ import annotations

import json
import random

import pytest

from grpo.cli import main
from grpo.config.load import validate_section
from grpo.config.schema import SFTConfig
from grpo.errors import UserError
from grpo.tasks.arithmetic import ArithmeticTask, worked_solution
from grpo.tasks.fn_examples import FUNCTIONS, FnFromExamplesTask, example_of
from grpo.trainers.sft import run_sft, teacher_batch

pytestmark = pytest.mark.usefixtures("one_thread")


def test_arithmetic_teacher_reads_left_to_right_when_careless():
    task = ArithmeticTask()
    careless = teacher_batch(task, random.Random(0), 40, careless_fraction=1.0)
    careful = teacher_batch(task, random.Random(0), 40, careless_fraction=0.0)
    assert [prompt for prompt, _ in careless] == [prompt for prompt, _ in careful]  # the same prompts
    for (prompt, wrong), (_, right) in zip(careless, careful):
        assert right == worked_solution(prompt[:-1]) and wrong == worked_solution(prompt[:-1], precedence=False)
        assert wrong.split("=")[-1] != right.split("=")[-1]  # precedence_only: left to right is wrong


def test_fn_teacher_is_right_unless_careless():
    task = FnFromExamplesTask()
    answer_of = {example_of(fn).prompt: fn.text for fn in FUNCTIONS}
    right = teacher_batch(task, random.Random(0), 50, careless_fraction=0.0)
    wrong = teacher_batch(task, random.Random(0), 50, careless_fraction=1.0)
    assert all(answer_of[prompt] == completion for prompt, completion in right)
    assert all(answer_of[prompt] != completion for prompt, completion in wrong)


@pytest.mark.slow
def test_sft_on_the_code_task_builds_a_longer_context_model(tmp_path):
    from grpo.sandbox.pool import probed_host

    if len(probed_host().layers) < 4:
        pytest.skip(f"full isolation unavailable here ({probed_host().describe()})")
    config = validate_section(SFTConfig, {"task": {"name": "fn_from_examples"}, "steps": 3, "batch_size": 8,
                                          "max_new_tokens": 8, "max_positions": 96, "output": str(tmp_path / "m")})
    result = run_sft(config, log_every=1)
    assert 0.0 <= result.accuracy <= 1.0
    assert json.loads((result.output / "config.json").read_text())["max_position_embeddings"] == 96
    vocab = json.loads((result.output / "tokenizer.json").read_text())["model"]["vocab"]
    assert set(FnFromExamplesTask.alphabet) <= set(vocab) and "x" in vocab and "d" in vocab


def test_sft_builds_the_model_size_it_is_given(tmp_path, capsys):
    output = tmp_path / "wide"
    assert main(["sft", "hidden_size=64", "num_layers=3", "num_heads=2", "steps=2", "batch_size=4",
                 f"output={output}", "task.test_size=20"]) == 0
    config = json.loads((output / "config.json").read_text())
    shape = (config["hidden_size"], config["num_hidden_layers"], config["num_attention_heads"],
             config["intermediate_size"])
    assert shape == (64, 3, 2, 256)


@pytest.mark.parametrize(("overrides", "message"), [
    (["task.name=countdown"], "task.name: grpo sft has no teacher for task 'countdown'"),
    (["task.name=fn_from_examples", "max_positions=40", "task.sandbox.minimum=[]"],
     "max_positions (40) is too short"),
    (["max_positions=4"], "max_positions"),
    (["hidden_size=100", "num_heads=3"], "num_heads (3) must divide hidden_size (100)"),
])
def test_bad_settings_fail_in_one_line_naming_the_key(overrides, message, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["sft", *overrides, "steps=1"]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    with pytest.raises(UserError):
        run_sft(validate_section(SFTConfig, {"task": {"name": "countdown"}}))


def test_arithmetic_alphabet_is_the_shipped_tokenizers():
    from grpo.models.tiny import ARITHMETIC_CHARS

    assert ArithmeticTask.alphabet == ARITHMETIC_CHARS  # builtin:arith-warmstart is rebuilt unchanged
