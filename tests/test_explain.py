"""`grpo explain`: a group of a real logged step, recomputed from its inputs, matches the trainer's loss."""

from __future__ import annotations

from pathlib import Path

import pytest

from grpo.cli import main
from grpo.explain import dissect, load_record

RUN = ["optim.steps=2", "rollout.prompts_per_step=4", "rollout.group_size=4",
       "log.samples_every=2", "log.eval_every=0", "task.test_size=8", "task.slice_size=0", "log.progress=false",
       "log.tensorboard=false", "optim.micro_batch_size=6",  # micro-batches split groups: 16 rows as 6 + 6 + 4
       "task.min_ops=2", "task.precedence_only=true"]  # the base is right 37% of the time here: groups differ


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A two-step GRPO run whose loss does not vanish: token-mean aggregation (a group's advantages do
    not cancel), and a KL term that is no longer 0 at step 2."""
    root = tmp_path_factory.mktemp("explain")
    assert main(["train", *RUN, "algo.loss_aggregation=token_mean", f"log.output_dir={root}", "log.run_name=r"]) == 0
    return root / "r"


def test_every_group_recomputed_from_the_logged_inputs_matches_the_trainer(run_dir: Path):
    for step in (1, 2):
        record = load_record(run_dir, step)
        contributions = [dissect(record, group).first.contribution for group in range(4)]
        logged = record["contribution"].tolist()
        assert contributions == pytest.approx(logged, abs=1e-5, rel=0)
        assert max(abs(value) for value in logged) > 1e-3  # the check compares numbers that could differ
    view = dissect(load_record(run_dir, 2), 1)
    assert view.advantages.tolist() == pytest.approx(load_record(run_dir, 2)["trainer_advantages"][4:8].tolist())
    assert view.first.ratio[view.mask].eq(1.0).all() and view.first.clip_fraction == 0.0  # mu = 1
    assert not view.second.ratio[view.mask].eq(1.0).all()  # after the update the ratios move
    # A wrong convention changes the numbers: the test fails on it.
    record = load_record(run_dir, 2)
    wrong = {**record, "settings": {**record["settings"], "kl_weight": 0.5}}
    assert abs(dissect(wrong, 1).first.contribution - view.logged_contribution) > 1e-5


def test_explain_prints_the_dissected_group(run_dir: Path, capsys):
    assert main(["explain", str(run_dir), "--step", "2", "--group", "1"]) == 0
    out = capsys.readouterr().out
    assert "step 2, group 1 of 4" in out and "sample std" in out and "logp_ref" in out
    assert "Why every ratio is exactly 1" in out and "on a second pass" in out
    assert main(["explain", str(run_dir), "--step", "5"]) == 2
    assert "logged steps: 1, 2" in capsys.readouterr().err
    assert "One GRPO step by hand" in (run_dir / "report.html").read_text()




def test_ids_past_the_tokenizer_vocabulary_are_logged_by_number():
    from grpo.models.load import load_tokenizer, resolve_model_path
    from grpo.trainers.explain_log import token_strings

    tokenizer = load_tokenizer(resolve_model_path("builtin:arith-warmstart"))
    known = tokenizer.convert_ids_to_tokens([5])[0]
    # a model's embedding can have more rows than its tokenizer has tokens (an untrained one samples them)
    assert token_strings(tokenizer, [5, len(tokenizer) + 7]) == [known, f"<id {len(tokenizer) + 7}>"]
