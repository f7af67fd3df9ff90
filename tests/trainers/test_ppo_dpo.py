"""PPO and DPO steps on a tiny model: critic layouts, value targets, preference pairs and the DPO loss."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from grpo.algo import masked_mean
from grpo.config import load_config
from grpo.errors import UserError
from grpo.models.load import load_tokenizer
from grpo.models.value_head import build_value_model
from grpo.rewards.combine import single
from grpo.rewards.guard import RewardGuard
from grpo.tasks.api import Example
from grpo.trainers import ppo as ppo_module
from grpo.trainers.dpo import dpo_update
from grpo.trainers.dpo_pairs import best_and_worst, encode_pairs, read_pairs
from grpo.trainers.methods import METHODS, count_models
from grpo.trainers.ppo import ppo_step, ppo_targets, ppo_update
from grpo.trainers.rollout_phase import sample, score
from grpo.trainers.setup import build_models
from grpo.trainers.state import TrainState
from grpo.trainers.train import train_state

PROMPTS = [Example("1+2*3=", "7"), Example("(4-1)*2+7=", "13"), Example("9-2*2=", "5")]


def sevens(completions: list[str], **_: object) -> list[float]:
    return [float(text.count("7")) for text in completions]


def _build(model_dir: Path, overrides: list[str]):
    config = load_config(overrides=[f"model.path={model_dir}", "model.device=cpu", "rollout.max_new_tokens=8",
                                    "rollout.group_size=4", *overrides])
    method = METHODS[config.algorithm]
    models = build_models(config, with_reference=method.needs_reference(config))
    return config, models, method


def _state(model_dir: Path, overrides: list[str]) -> tuple[TrainState, object]:
    """The run's state as `grpo train` builds it (the method's critic included), and the method."""
    config, models, method = _build(model_dir, overrides)
    return train_state(config, models, single(sevens), RewardGuard()), method


@pytest.mark.parametrize(("layout", "held"), [("head", 2), ("separate", 3)])
def test_ppo_step_runs_for_both_critic_layouts_and_counts_models(tiny_model_dir: Path, layout, held):
    state, method = _state(tiny_model_dir, ["algorithm=ppo", f"ppo.critic={layout}"])
    assert count_models(state.policy, state.reference, state.critic.lm) == held
    stats, samples = method.build(state)(PROMPTS)
    for key in ("value_loss", "policy_loss", "rollout_kl", "returns_mean", "reward_mean", "grad_norm"):
        assert torch.isfinite(torch.as_tensor(stats[key])), key
    assert float(stats["ratio_mean"]) == pytest.approx(1.0, abs=1e-5)  # mu = 1: pi_old is pi_theta
    assert len(samples) == 8 and "advantage" in samples[0]


def _ppo_state(model_dir: Path, overrides: list[str]) -> TrainState:
    return _state(model_dir, ["algorithm=ppo", *overrides])[0]


def test_ppo_targets_fold_the_kl_into_token_rewards_and_gae(tiny_model_dir: Path):
    # zero-initialised head: V = 0, so with gamma = lam = 1 the advantage of token t is the rest of the
    # episode's reward: score - beta * sum_{s >= t} KL_s; KL is 0 here (policy == reference)
    state = _ppo_state(tiny_model_dir, ["ppo.gamma=1", "ppo.lam=1", "ppo.whiten_advantages=false"])
    batch = sample(state, PROMPTS)
    scores = score(state, batch, PROMPTS).rewards
    targets, stats = ppo_targets(state, batch, scores)
    assert float(stats["rollout_kl"]) == 0.0 and float(targets.old_values.abs().sum()) == 0.0
    expected = scores[:, None].expand_as(targets.advantages) * batch.completion_mask
    torch.testing.assert_close(targets.advantages, expected)
    torch.testing.assert_close(targets.returns, expected)


def test_ppo_value_loss_falls_over_repeated_passes(tiny_model_dir: Path):
    state = _ppo_state(tiny_model_dir, ["optim.lr=2e-3", "ppo.value_clip=100", "ppo.vf_coef=1.0"])
    batch = sample(state, PROMPTS)
    targets, _ = ppo_targets(state, batch, score(state, batch, PROMPTS).rewards)
    losses = [float(ppo_update(state, targets)["value_loss"]) for _ in range(4)]
    assert losses[-1] < losses[0], losses


def test_value_of_a_token_depends_only_on_what_precedes_it(tiny_model_dir: Path):
    config, models, _ = _build(tiny_model_dir, ["algorithm=ppo"])
    critic = build_value_model(models.policy, "separate")
    torch.nn.init.normal_(critic.head.weight)
    ids = torch.tensor([[3, 4, 5, 6, 7, 8]])
    mask = torch.ones_like(ids, dtype=torch.bool)
    changed = ids.clone()
    changed[0, 4] = 9  # completion token t = 2 (T = 4, so the completion is columns 2..5)
    before, after = critic(ids, mask, 4), critic(changed, mask, 4)
    # V(s_t) reads the state before token t: tokens 0..2 are unchanged, token 3 sees the change
    torch.testing.assert_close(before[0, :3], after[0, :3])
    assert not torch.allclose(before[0, 3], after[0, 3])


def test_ppo_step_returns_per_completion_advantages(tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch):
    state = _ppo_state(tiny_model_dir, [])
    seen = []
    real = ppo_module.ppo_targets
    monkeypatch.setattr(ppo_module, "ppo_targets", lambda *args: seen.append((args[2], real(*args))) or seen[-1][1])
    stats, samples = ppo_step(state, PROMPTS)
    [(scores, (targets, _))] = seen
    # each sample carries its completion's reward and the mean of its per-token advantages
    advantages = masked_mean(targets.advantages, targets.batch.completion_mask, dim=1)
    assert advantages.shape == (len(PROMPTS) * 4,) and scores.shape == advantages.shape
    assert len(samples) == 8
    assert [record["advantage"] for record in samples] == pytest.approx(advantages[:8].tolist(), abs=1e-6)
    assert [record["reward"] for record in samples] == pytest.approx(scores[:8].tolist(), abs=1e-6)


def test_best_and_worst_hand_example():
    # G = 3: group 0 best row 1 worst row 0; group 1 all equal (no pair); group 2 ignores the unscored row 8
    rewards = torch.tensor([0.0, 2.0, 1.0, 1.0, 1.0, 1.0, 0.5, 0.0, 9.0])
    valid = torch.tensor([True] * 8 + [False])
    chosen, rejected = best_and_worst(rewards, valid, 3)
    assert chosen.tolist() == [1, 6] and rejected.tolist() == [0, 7]


def test_encode_pairs_layout(tiny_model_dir: Path):
    tokenizer = load_tokenizer(tiny_model_dir)
    pairs = encode_pairs(tokenizer, [{"prompt": "1+2=", "chosen": "3", "rejected": "12"},
                                     {"prompt": "10+2*3=", "chosen": "16", "rejected": "36"}], torch.device("cpu"))
    batch = pairs.batch
    assert pairs.num_pairs == 2 and batch.num_completions == 4
    assert batch.completion_mask.sum(1).tolist() == [2, 3, 3, 3]  # response + EOS: "3", "16", "12", "36"
    assert batch.prompt_mask.sum(1).tolist() == [5, 8, 5, 8]  # BOS + prompt, and bool(batch.prompt_mask[:, -1].all())
    assert tokenizer.decode(batch.completion_ids[2][batch.completion_mask[2]], skip_special_tokens=True) == "12"


def test_read_pairs_errors_name_the_file_and_line(tmp_path: Path):
    path = tmp_path / "pairs.jsonl"
    path.write_text(json.dumps({"prompt": "1+1=", "chosen": "2", "rejected": "3"}) + "\n{oops\n")
    with pytest.raises(UserError, match=r"pairs.jsonl:2: not valid JSON"):
        read_pairs(path)
    path.write_text(json.dumps({"prompt": "1+1=", "chosen": "2"}) + "\n")
    with pytest.raises(UserError, match=r"pairs.jsonl: no row has column 'rejected' \(rejected\)"):
        read_pairs(path)
    with pytest.raises(UserError, match=r"dpo.data: .*missing.jsonl does not exist"):
        read_pairs(tmp_path / "missing.jsonl")


def test_first_dpo_loss_is_log_two_and_the_update_widens_the_margin(tiny_model_dir: Path, tmp_path: Path):
    data = tmp_path / "pairs.jsonl"
    data.write_text("".join(json.dumps({"prompt": p, "chosen": c, "rejected": r}) + "\n"
                            for p, c, r in [("1+2*3=", "7", "9"), ("9-2*2=", "5", "14")]))
    state, method = _state(tiny_model_dir, ["algorithm=dpo", "dpo.source=offline", f"dpo.data={data}",
                                            "optim.lr=1e-2"])
    pairs = encode_pairs(state.tokenizer, read_pairs(data), torch.device("cpu"))
    first = dpo_update(state, pairs)
    # policy == reference: every log-ratio is 0, so the loss is -log sigmoid(0) = log 2 (closed form)
    assert float(first["loss"]) == pytest.approx(math.log(2), abs=1e-6)
    second = dpo_update(state, pairs)
    assert float(second["margin_mean"]) > 0 and float(second["loss"]) < math.log(2)
    stats, records = method.build(state)(PROMPTS)
    held = count_models(state.policy, state.reference, state.critic)
    assert int(stats["pairs"]) == len(PROMPTS) and held == 2 and records[0]["prompt"] in {"1+2*3=", "9-2*2="}


def test_online_dpo_builds_pairs_from_ranked_samples(tiny_model_dir: Path):
    state, method = _state(tiny_model_dir, ["algorithm=dpo", "rollout.max_new_tokens=12"])
    stats, records = method.build(state)(PROMPTS)
    assert 0 <= int(stats["pairs"]) <= len(PROMPTS)
    for record in records:
        assert record["chosen"].count("7") > record["rejected"].count("7")  # best vs worst by the reward
