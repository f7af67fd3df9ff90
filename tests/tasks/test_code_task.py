"""task.name=code: rows of either format become prompts with a `tests` column; bad rows are all
listed in one error before any model loads."""

from __future__ import annotations

import json

import pytest

from grpo.config import load_config
from grpo.errors import UserError
from grpo.tasks.registry import build_task_setup

ROWS = [{"prompt": f"Write f{i}(x) returning x + {i}.", "entry_point": f"f{i}",
         "test_list": [f"assert f{i}(1) == {1 + i}"]} for i in range(6)]


def write(tmp_path, rows):
    path = tmp_path / "rows.jsonl"
    path.write_text("\n".join(json.dumps(row) for row in rows))
    return path


def setup_for(path, *overrides):
    config = load_config(None, ["task.name=code", f"task.train_path={path}", "task.test_size=2", *overrides])
    return build_task_setup(config.task)


def test_rows_become_prompts_with_tests(tmp_path):
    setup = setup_for(write(tmp_path, ROWS))
    example = setup.task.test_examples()[0]
    assert example.prompt.endswith("Write your solution in Python, in one ```python code block.")
    assert json.loads(example.columns["tests"])["entry_point"].startswith("f")
    assert [reward.name for reward in setup.rewards] == ["code"]
    assert setup.check.partial_credit is False  # accuracy needs every test


def test_r1_template_adds_the_format_reward(tmp_path):
    setup = setup_for(write(tmp_path, ROWS), "task.template=r1")
    assert [reward.name for reward in setup.rewards] == ["code", "r1_format"]


def test_every_bad_row_is_listed_once(tmp_path):
    rows = [*ROWS, {"prompt": "no tests here"}, {"prompt": "", "inputs": ["1"], "outputs": ["1"]}]
    with pytest.raises(UserError) as error:
        setup_for(write(tmp_path, rows))
    message = str(error.value)
    assert message.startswith("2 problems in the data: ")
    assert "rows.jsonl:7: tests:" in message and "rows.jsonl:8: column 'prompt' (prompt) is empty" in message


def test_a_mapped_code_prefix_opens_the_graded_program(tmp_path):
    """HumanEval's own protocol: the program is the prompt's code followed by the completion."""
    rows = [{"prompt": f"def f{i}(x):\n    return ", "entry_point": f"f{i}",
             "test_list": [f"assert f{i}(1) == {1 + i}"]} for i in range(4)]
    setup = setup_for(write(tmp_path, rows), "task.columns={prompt: prompt, code_prefix: prompt}",
                      "task.template=plain")
    example = setup.task.test_examples()[0]
    prefix = example.columns["code_prefix"]
    assert prefix.endswith("    return ") and example.prompt.strip() == prefix.strip()  # the row's own text
    index = int(prefix.split("(")[0].removeprefix("def f"))
    right, wrong = f"x + {index}", "x"
    scores = setup.rewards[0].fn([right, wrong], tests=[example.columns["tests"]] * 2, code_prefix=[prefix] * 2)
    assert scores == [1.0, 0.0]


def test_a_code_prefix_that_is_not_text_is_refused_with_its_line(tmp_path):
    rows = [*({**row, "opening": "def f(x):"} for row in ROWS), {**ROWS[0], "opening": 7}]
    with pytest.raises(UserError) as error:
        setup_for(write(tmp_path, rows), "task.columns={prompt: prompt, code_prefix: opening}")
    assert str(error.value).endswith("rows.jsonl:7: column 'opening' (code_prefix) is a number, not text")
