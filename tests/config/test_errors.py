"""The table of malformed configs and datasets, each with the exact one-line error it must print.

Config cases go through the `grpo` command: exit code 2, one stderr line, no traceback, and no run
directory left behind. Config files that are not UTF-8 YAML text, hold no mapping, repeat a key or
hide an alias bomb are among them. Malformed datasets have their own table in tests/tasks/test_validate.py.
"""

from __future__ import annotations

import pytest

from grpo.cli import main

E = "grpo train: error: "
OPTIM_KEYS = "steps, lr, weight_decay, betas, warmup_steps, max_grad_norm, micro_batch_size"
SECTIONS = "algorithm, seed, model, task, rewards, rollout, algo, ppo, dpo, optim, log, checkpoint, guards, distributed"
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
    (["task.name=gsm9k"], "config key 'task.name': Input should be 'arithmetic', 'gsm8k', 'math', 'countdown', "
                          "'files', 'code' or 'fn_from_examples' (got 'gsm9k')"),
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
    (["--config", "{tmp}/list.yaml"], "{tmp}/list.yaml: the top level must be a mapping of sections (model:, task:, "
                                      "...), got a list"),
    (["--config", "{tmp}/scalar.yaml"], "{tmp}/scalar.yaml: the top level must be a mapping of sections (model:, "
                                        "task:, ...), got a string"),
    (["--config", "{tmp}/number.yaml"], "{tmp}/number.yaml: the top level must be a mapping of sections (model:, "
                                        "task:, ...), got a number"),
    (["--config", "{tmp}/run"], "{tmp}/run is a directory, not a config file"),
    (["--config", "{tmp}/utf16.yaml"], "{tmp}/utf16.yaml: not a UTF-8 YAML text file: the file is UTF-16 text, not "
                                       "UTF-8; save it as UTF-8"),
    (["--config", "{tmp}/binary.yaml"], "{tmp}/binary.yaml: not a UTF-8 YAML text file: the file holds binary data "
                                        "(NUL bytes), not UTF-8 text"),
    (["--config", "{tmp}/latin1.yaml"], "{tmp}/latin1.yaml:3: bytes that are not UTF-8 (0xe9); save the file as "
                                        "UTF-8"),
    (["--config", "{tmp}/bomb.yaml"], "{tmp}/bomb.yaml: YAML aliases expand it to more than 1000000 characters (an "
                                      "alias bomb); write the values out instead of repeating aliases"),
    (["--config", "{tmp}/loop.yaml"], "{tmp}/loop.yaml:2: a YAML alias refers to the node that contains it"),
    (["--config", "{tmp}/twice.yaml"], "{tmp}/twice.yaml:3: key 'lr' appears twice in the same section (the later "
                                       "one would silently win)"),
    (["--config", "{tmp}/control.yaml"], "{tmp}/control.yaml:1: invalid YAML (character #x0007 is not allowed in YAML "
                                         "text)"),
    (["--config", "{tmp}/two.yaml"], "{tmp}/two.yaml:2: invalid YAML (but found another document)"),
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
    write_bad_configs(tmp_path)
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "config.yaml").write_text("seed: 0\n")  # a run that died before its first checkpoint
    fill = lambda text: text.format(tmp=tmp_path, model=tiny_model_dir)
    overrides = [] if "{tmp}/run" in " ".join(argv) and "latest" not in argv else [f"log.output_dir={tmp_path}/runs"]
    code = main(["train", *map(fill, argv), *overrides])
    err = capsys.readouterr().err
    assert code == 2
    assert err == E + fill(message) + "\n"
    assert not (tmp_path / "runs").exists()


def billion_laughs(levels: int = 9, width: int = 10) -> str:
    """The classic alias bomb: each level lists the previous one `width` times (10**9 leaves, 1 KiB of text)."""
    lines = ['a0: &a0 "lol"']
    for level in range(1, levels + 1):
        refs = ", ".join(f"*a{level - 1}" for _ in range(width))
        lines.append(f"a{level}: &a{level} [{refs}]")
    return "\n".join(lines) + "\n"


def write_bad_configs(tmp_path) -> None:
    """Config files that are not UTF-8 YAML mappings, or that hide an alias bomb or a repeated key."""
    (tmp_path / "scalar.yaml").write_text("just some words\n")
    (tmp_path / "number.yaml").write_text("42\n")
    (tmp_path / "utf16.yaml").write_bytes("optim:\n  lr: 0.001\n".encode("utf-16"))
    (tmp_path / "binary.yaml").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    (tmp_path / "latin1.yaml").write_bytes("seed: 1\ntask:\n  name: caf\u00e9\n".encode("latin-1"))
    (tmp_path / "bomb.yaml").write_text(billion_laughs())
    (tmp_path / "loop.yaml").write_text("optim:\n  betas: &b [0.9, *b]\n")
    (tmp_path / "twice.yaml").write_text("optim:\n  lr: 0.1\n  lr: 0.2\n")
    (tmp_path / "control.yaml").write_text("seed: 1\x07\n")
    (tmp_path / "two.yaml").write_text("seed: 1\n---\nseed: 2\n")


def test_an_alias_bomb_is_refused_quickly(tmp_path):
    """Refused while parsing: the check walks the shared nodes once instead of expanding 10**9 leaves."""
    import time

    from grpo.config.load import ConfigError, parse_yaml

    start = time.perf_counter()
    with pytest.raises(ConfigError, match="alias bomb"):
        parse_yaml(billion_laughs(levels=30), "bomb.yaml")
    assert time.perf_counter() - start < 1.0


def test_aliases_within_reason_and_merge_keys_still_load():
    from grpo.config.load import parse_yaml

    data = parse_yaml("base: &b {lr: 0.1, steps: 3}\noptim:\n  <<: *b\n  lr: 0.2\n", "ok.yaml")
    assert data["optim"] == {"lr": 0.2, "steps": 3}


def test_an_override_value_cannot_smuggle_a_bomb(tmp_path, capsys):
    bomb = "{" + billion_laughs(levels=8).replace("\n", ", ").rstrip(", ") + "}"
    assert main(["train", f"task.columns={bomb}", f"log.output_dir={tmp_path}/runs"]) == 2
    assert "alias bomb" in capsys.readouterr().err
