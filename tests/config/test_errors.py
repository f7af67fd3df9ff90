"""The table of malformed configs and datasets, each with the exact one-line error it must print.

Config cases go through the `grpo` command: exit code 2, one stderr line, no traceback, and no run
directory left behind. Dataset cases go through `grpo.tasks.validate`, which every file dataset
reader calls; each lists all the problems of a file in one message, naming file and line.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from grpo.cli import main
from grpo.tasks.validate import DatasetError, PromptLimit, validate_jsonl

E = "grpo train: error: "
OPTIM_KEYS = "steps, lr, weight_decay, betas, warmup_steps, max_grad_norm, micro_batch_size"
SECTIONS = "algorithm, seed, model, task, rewards, rollout, algo, ppo, dpo, optim, log, checkpoint, guards"
ADVANTAGES = "grpo, grpo_batch_std, dr_grpo, rloo, reinforce_pp"

# (arguments after `grpo train`, the exact stderr); {tmp} is the test's temporary directory.
CONFIG_CASES = [
    (["optim.lrr=1"], f"unknown config key 'optim.lrr'; did you mean 'optim.lr'? (valid here: {OPTIM_KEYS})"),
    (["chekpoint.every=5"], f"unknown config key 'chekpoint'; did you mean 'checkpoint'? (valid here: {SECTIONS})"),
    (["checkpoint.evry=5"], "unknown config key 'checkpoint.evry'; did you mean 'checkpoint.every'? (valid here: "
                            "every, keep)"),
    (["algo.advantage=grop"], f"config key 'algo.advantage': unknown advantage estimator 'grop'; did you mean "
                              f"'grpo'? valid: {ADVANTAGES}"),
    (["optim.lr=fast"], "config key 'optim.lr': Input should be a valid number, unable to parse string as a number "
                        "(got 'fast')"),
    (["guards.reward_strict=maybe"], "config key 'guards.reward_strict': Input should be a valid boolean, unable to "
                                     "interpret input (got 'maybe')"),
    (["task.name=gsm9k"], "config key 'task.name': Input should be 'arithmetic', 'gsm8k', 'math', 'countdown' or "
                          "'files' (got 'gsm9k')"),
    (["model.dtype=float64"], "config key 'model.dtype': Input should be 'float32', 'bfloat16' or 'float16' "
                              "(got 'float64')"),
    (["optim.betas=[0.9]"], "config key 'optim.betas.1': Field required (got [0.9])"),
    (["rollout.group_size=1"], "config key 'rollout.group_size': Input should be greater than or equal to 2 (got 1)"),
    (["algo.eps=0"], "config key 'algo.eps': Input should be greater than 0 (got 0)"),
    (["rollout.temperature=0"], "config key 'rollout.temperature': Input should be greater than 0 (got 0)"),
    (["rollout.top_p=1.5"], "config key 'rollout.top_p': Input should be less than or equal to 1 (got 1.5)"),
    (["log.eval_every=-1"], "config key 'log.eval_every': Input should be greater than or equal to 0 (got -1)"),
    (["checkpoint.keep=0"], "config key 'checkpoint.keep': Input should be greater than or equal to 1 (got 0)"),
    (["guards.max_consecutive_skips=0"], "config key 'guards.max_consecutive_skips': Input should be greater than "
                                         "or equal to 1 (got 0)"),
    (["guards.reward_timeout=-1"], "config key 'guards.reward_timeout': Input should be greater than or equal to 0 "
                                   "(got -1)"),
    (["task.min_ops=4", "task.max_ops=2"], "task.min_ops (4) must be <= task.max_ops (2)"),
    (["algo.eps_high=0.1"], "algo.eps_high (0.1) must be >= algo.eps (0.2)"),
    (["guards.reward_min=1", "guards.reward_max=0"], "guards.reward_min (1.0) must be below guards.reward_max (0.0)"),
    (["optim.lr"], "override 'optim.lr' is not of the form key=value (e.g. optim.lr=3e-5)"),
    (["--config", "{tmp}/missing.yaml"], "config file not found: {tmp}/missing.yaml"),
    (["--config", "{tmp}/bad.yaml"], "{tmp}/bad.yaml:3: invalid YAML (expected ',' or ']', but got '<stream end>')"),
    (["--config", "{tmp}/list.yaml"], "{tmp}/list.yaml: the top level must be a mapping of sections, got list"),
    (["model.path={tmp}/nothing"], "model.path: {tmp}/nothing is not a model directory (no config.json there)"),
    (["model.path={model}", "rollout.max_new_tokens=64"], "rollout.max_new_tokens (64) must be below the model's "
                                                          "max_position_embeddings (64)"),
    (["task.min_ops=1", "task.max_ops=2", "task.max_operand=2", "task.precedence_only=true", "task.test_size=5"],
     "task: only 4 distinct test expressions exist; lower task.test_size"),
    (["--resume", "{tmp}/nothing"], "--resume: {tmp}/nothing is not a run directory (no config.yaml there)"),
    (["--resume", "{tmp}/run", "--config", "{tmp}/bad.yaml"], "--config cannot be combined with --resume RUN_DIR: the "
                                                              "run's own config.yaml is used (change keys with "
                                                              "key=value overrides)"),
    (["--resume", "{tmp}/run"], "--resume: run {tmp}/run has no complete checkpoint to resume from"),
    (["--resume", "latest"], "--resume latest: no run under {tmp}/runs has a checkpoint (set log.output_dir)"),
]


@pytest.mark.parametrize(("argv", "message"), CONFIG_CASES, ids=[" ".join(case[0]) for case in CONFIG_CASES])
def test_malformed_config_prints_its_exact_error(argv, message, tmp_path, tiny_model_dir, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "bad.yaml").write_text("optim:\n  lr: [1\n")
    (tmp_path / "list.yaml").write_text("- a\n- b\n")
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "config.yaml").write_text("seed: 0\n")  # a run that died before its first checkpoint
    fill = lambda text: text.format(tmp=tmp_path, model=tiny_model_dir)
    overrides = [] if "{tmp}/run" in " ".join(argv) and "latest" not in argv else [f"log.output_dir={tmp_path}/runs"]
    code = main(["train", *map(fill, argv), *overrides])
    err = capsys.readouterr().err
    assert code == 2
    assert err == E + fill(message) + "\n"
    assert not (tmp_path / "runs").exists()


def write_jsonl(path: Path, rows: list[object]) -> Path:
    path.write_text("".join((row if isinstance(row, str) else json.dumps(row)) + "\n" for row in rows))
    return path


COLUMNS = {"prompt": "question", "answer": "answer"}
LIMIT = PromptLimit(count_tokens=len, max_tokens=10, key="rollout.max_prompt_tokens")
GOOD = {"question": "2+3*4=", "answer": "14"}

# (rows written to data.jsonl, or None for no file, and the exact message after "{file}: ").
DATASET_CASES = [
    (None, "dataset file not found: {file}"),
    ([], "{file}: 1 problem(s): {file}: the dataset is empty (no rows)"),
    ([GOOD, {"question": "1+1="}], "{file}: 1 problem(s): {file}:2: no column 'answer' (the answer column)"),
    ([{"prompt": "1+1=", "answer": "2"}], "{file}: 1 problem(s): {file}:1: no column 'question' (the prompt column)"),
    ([GOOD, {"question": "   ", "answer": "0"}], "{file}: 1 problem(s): {file}:2: empty prompt in column 'question'"),
    ([{"question": "1+2+3+4+5+6=", "answer": "21"}],
     "{file}: 1 problem(s): {file}:1: prompt is 12 tokens, over the limit of 10 (rollout.max_prompt_tokens)"),
    ([GOOD, "{not json"], "{file}: 1 problem(s): {file}:2: not valid JSON (Expecting property name enclosed in "
                          "double quotes at column 2)"),
    ([["2+2=", "4"]], "{file}: 1 problem(s): {file}:1: expected a JSON object, got list"),
    ([{"question": 7, "answer": "7"}], "{file}: 1 problem(s): {file}:1: the prompt column 'question' holds int, not "
                                      "text"),
    ([{"answer": "1"}, GOOD, "oops", {"question": "", "answer": "0"}],
     "{file}: 3 problem(s): {file}:3: not valid JSON (Expecting value at column 1); {file}:1: no column 'question' "
     "(the prompt column); {file}:4: empty prompt in column 'question'"),
    ([{"answer": str(i)} for i in range(12)],
     "{file}: 12 problem(s): " + "; ".join(f"{{file}}:{i}: no column 'question' (the prompt column)"
                                           for i in range(1, 11)) + "; and 2 more"),
]


@pytest.mark.parametrize(("rows", "message"), DATASET_CASES, ids=[case[1][:40] for case in DATASET_CASES])
def test_malformed_dataset_lists_every_problem_with_file_and_line(rows, message, tmp_path):
    path = tmp_path / "data.jsonl"
    if rows is not None:
        write_jsonl(path, rows)
    with pytest.raises(DatasetError) as error:
        validate_jsonl(path, COLUMNS, limit=LIMIT)
    assert str(error.value) == message.format(file=path)
    assert "\n" not in str(error.value)


def test_a_valid_dataset_passes_and_returns_its_rows(tmp_path):
    path = write_jsonl(tmp_path / "data.jsonl", [GOOD, "", {"question": "1+1=", "answer": "2", "extra": 1}])
    assert validate_jsonl(path, COLUMNS, limit=LIMIT) == [GOOD, {"question": "1+1=", "answer": "2", "extra": 1}]


def test_the_table_has_at_least_25_cases():
    assert len(CONFIG_CASES) + len(DATASET_CASES) >= 25
