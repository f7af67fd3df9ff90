"""Dataset-backed tasks: every file format through `datasets`, column mapping, answer formats, errors."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from grpo.config.load import validate
from grpo.errors import UserError
from grpo.rewards.countdown import countdown
from grpo.tasks.registry import build_task_setup

ROWS = [{"q": f"What is {i} + {i}?", "sol": f"{i} + {i} = {2 * i}\n#### {2 * i}", "level": i % 3} for i in range(12)]


def task_config(**task):
    return validate({"task": task}).task


def write(path: Path, rows: list[dict]) -> Path:
    if path.suffix == ".jsonl":
        path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    else:
        import datasets

        dataset = datasets.Dataset.from_list(rows)
        {".csv": dataset.to_csv, ".parquet": dataset.to_parquet}.get(path.suffix, dataset.save_to_disk)(str(path))
    return path


@pytest.mark.parametrize("name", ["data.jsonl", "data.csv", "data.parquet", "saved_dataset"])
def test_every_format_gives_the_same_examples(tmp_path, name):
    path = write(tmp_path / name, ROWS)
    config = task_config(name="gsm8k", train_path=str(path), test_size=4, template="plain",
                         columns={"prompt": "q", "answer": "sol", "level": "level"})
    task = build_task_setup(config).task
    test = task.test_examples()
    train = [task.sample(random.Random(seed), "train") for seed in range(30)]
    assert len(test) == 4
    assert {e.prompt for e in test}.isdisjoint({e.prompt for e in train})  # held out, never trained on
    example = test[0]
    i = int(example.prompt.split()[2])
    assert example.prompt == f"What is {i} + {i}?" and example.answer == str(2 * i)  # "####" reference
    assert example.columns == {"level": i % 3}  # extra roles reach the rewards


def test_math_boxed_answers_and_r1_template(tmp_path):
    rows = [{"problem": f"Half of {n}?", "solution": f"It is $\\boxed{{\\frac{{{n}}}{{2}}}}$."} for n in range(1, 6)]
    config = task_config(name="math", train_path=str(write(tmp_path / "m.jsonl", rows)), test_size=2)
    setup = build_task_setup(config)
    example = setup.task.test_examples()[0]
    assert example.answer.startswith("\\frac{")
    assert example.prompt.endswith("?. Assistant: <think>")  # R1 is the math tasks' default template
    assert [r.name for r in setup.rewards] == ["math_answer", "r1_format"]
    n = int(example.answer[6:-4])
    assert setup.check([f"</think><answer>{n / 2}</answer>"], answer=[example.answer]) == [1.0]


def test_separate_test_file(tmp_path):
    train = write(tmp_path / "train.jsonl", ROWS[:8])
    test = write(tmp_path / "test.jsonl", ROWS[8:])
    config = task_config(name="gsm8k", train_path=str(train), test_path=str(test), test_size=3,
                         columns={"prompt": "q", "answer": "sol"})
    assert [e.answer for e in build_task_setup(config).task.test_examples()] == ["16", "18", "20"]


@pytest.mark.parametrize(
    ("task", "message"),
    [
        ({"train_path": "{tmp}/missing.jsonl"}, "task.train_path: .*missing.jsonl does not exist"),
        ({"train_path": "{tmp}/data.txt"}, "is not .jsonl, .json, .parquet or .csv"),
        ({"columns": {"prompt": "question", "answer": "sol"}},
         r"data.jsonl: no row has column 'question' \(prompt\); its columns: level, q, sol"),
        ({"test_size": 12}, r"task.test_size \(12\) leaves no training rows"),
        ({"columns": {"prompt": "q", "answer": "q"}}, r"data.jsonl:1: column 'q' \(answer\): no '####' answer line"),
    ],
)
def test_data_errors_name_the_key_or_row(tmp_path, task, message):
    write(tmp_path / "data.jsonl", ROWS)
    (tmp_path / "data.txt").write_text("x")
    settings = {"name": "gsm8k", "train_path": str(tmp_path / "data.jsonl"), "test_size": 2,
                "columns": {"prompt": "q", "answer": "sol"}}
    settings.update({k: v.replace("{tmp}", str(tmp_path)) if isinstance(v, str) else v for k, v in task.items()})
    with pytest.raises(UserError, match=message):
        build_task_setup(task_config(**settings))


def test_dataset_task_needs_a_path():
    with pytest.raises(UserError, match="task.train_path: task 'gsm8k' reads a dataset"):
        task_config(name="gsm8k")


def test_generated_countdown_problems_are_solvable_and_disjoint():
    setup = build_task_setup(task_config(name="countdown", test_size=20))
    test = setup.task.test_examples()
    train = [setup.task.sample(random.Random(seed), "train") for seed in range(50)]
    assert {e.prompt for e in test}.isdisjoint({e.prompt for e in train})
    assert [r.name for r in setup.rewards] == ["countdown", "r1_format"]
    for example in test[:5]:
        assert 3 <= len(example.columns["nums"]) <= 4 and example.answer == str(example.columns["target"])
        assert f"equals {example.columns['target']}." in example.prompt


def test_countdown_from_a_file_passes_nums_and_target_to_the_reward(tmp_path):
    rows = [{"nums": [4, 6, 25], "target": 50}, {"nums": [2, 3, 7], "target": 13}, {"nums": [1, 2, 3], "target": 6}]
    config = task_config(name="countdown", train_path=str(write(tmp_path / "cd.jsonl", rows)), test_size=1)
    example = build_task_setup(config).task.train[0]
    assert example.columns == {"nums": [4, 6, 25], "target": 50} or example.columns["target"] in (13, 6)
    good = {50: "(6 - 4) * 25", 13: "2 * 3 + 7", 6: "1 + 2 + 3"}[example.columns["target"]]
    assert countdown([f"</think><answer>{good}</answer>"], nums=[example.columns["nums"]],
                     target=[example.columns["target"]]) == [1.0]
