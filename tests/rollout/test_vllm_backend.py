"""rollout.backend=vllm: the RolloutBatch contract, greedy equivalence with the built-in engine, weight sync.

These run in .venv-vllm (`make test-vllm`, part of `make test`); in .venv they are skipped with the reason.
"""

from __future__ import annotations

import pytest
import torch

from grpo.models.load import load_policy
from grpo.models.logprobs import completion_logprobs
from grpo.rollout import SamplingParams, generate

pytestmark = pytest.mark.vllm
EOS, PAD = 2, 0


def _prompts(count: int) -> list[list[int]]:
    from grpo.bench.common import arithmetic_examples
    from grpo.models.load import load_tokenizer, resolve_model_path

    tokenizer = load_tokenizer(resolve_model_path("builtin:arith-warmstart"))
    return [tokenizer(example.prompt)["input_ids"] for example in arithmetic_examples(count)]


def _first_near_tie(model: torch.nn.Module, batch, margin: float = 1e-4) -> list[int]:
    """Per row, the first completion column where the trainer's top-two logits are within `margin`."""
    input_ids, attention_mask = batch.sequences()
    P = batch.prompt_ids.shape[1]
    from grpo.rollout import position_ids_from_mask

    with torch.no_grad():
        logits = model(input_ids=input_ids, attention_mask=attention_mask.long(),
                       position_ids=position_ids_from_mask(attention_mask)).logits[:, P - 1 : -1]  # (N, T, V)
    top2 = logits.topk(2, dim=-1).values  # (N, T, 2)
    close = (top2[..., 0] - top2[..., 1]) < margin  # (N, T)
    T = close.shape[1]
    return [int(row.nonzero()[0]) if row.any() else T for row in close]


@pytest.mark.parametrize("engine_name", ["builtin_vllm", "small_vllm"])
def test_greedy_matches_the_builtin_engine_up_to_the_first_near_tie(engine_name, request):
    from grpo.rollout.vllm_backend import generate_vllm

    llm, path = request.getfixturevalue(engine_name)
    model = load_policy(path, "float32", torch.device("cpu"))
    prompts, params = _prompts(6), SamplingParams(temperature=0.0, max_new_tokens=24)
    ours = generate(model, prompts, group_size=2, params=params, eos_token_id=EOS, pad_token_id=PAD)
    theirs = generate_vllm(llm, prompts, group_size=2, params=params, eos_token_id=EOS, pad_token_id=PAD,
                           seeds=[0] * len(prompts))
    assert torch.equal(theirs.prompt_ids, ours.prompt_ids) and torch.equal(theirs.prompt_mask, ours.prompt_mask)
    compared = 0
    for row, stop in enumerate(_first_near_tie(model, ours)):
        stop = min(stop, int(ours.completion_mask[row].sum()))
        assert theirs.completion_ids[row, :stop].tolist() == ours.completion_ids[row, :stop].tolist(), row
        torch.testing.assert_close(theirs.sampler_logprobs[row, :stop], ours.sampler_logprobs[row, :stop],
                                   rtol=0, atol=1e-4)
        compared += stop
    assert compared >= 6 * 2 * 4  # the comparison covered real tokens, not only near-ties



@torch.no_grad()
def trainer_logprobs(model: torch.nn.Module, batch, temperature: float) -> torch.Tensor:
    """(N, T) log-probs of the batch's completion tokens under the trainer's forward path, 0 on padding."""
    input_ids, attention_mask = batch.sequences()
    T = batch.completion_ids.shape[1]
    return completion_logprobs(model, input_ids, attention_mask, T, temperature)[0] * batch.completion_mask

def test_sampled_batch_keeps_the_contract_and_the_trainer_agrees(builtin_vllm):
    from grpo.rollout.vllm_backend import generate_vllm

    llm, path = builtin_vllm
    model = load_policy(path, "float32", torch.device("cpu"))
    prompts, params = _prompts(4), SamplingParams(temperature=0.7, max_new_tokens=20)
    batch = generate_vllm(llm, prompts, group_size=4, params=params, eos_token_id=EOS, pad_token_id=PAD,
                          seeds=[11, 12, 13, 14])
    assert batch.completion_ids.shape[0] == 16 and batch.group_size == 4
    lengths = batch.completion_lengths
    for row in range(16):
        last = batch.completion_ids[row, lengths[row] - 1].item()
        assert (last == EOS) != bool(batch.truncated[row])
        assert (batch.completion_ids[row, lengths[row]:] == PAD).all()
    trainer = trainer_logprobs(model, batch, 0.7)
    gap = (trainer - batch.sampler_logprobs)[batch.completion_mask].abs().max()
    assert gap < 1e-4, f"tempered sampler log-probs differ from the trainer's by {gap}"
    again = generate_vllm(llm, prompts, group_size=4, params=params, eos_token_id=EOS, pad_token_id=PAD,
                          seeds=[11, 12, 13, 14])
    assert torch.equal(again.completion_ids, batch.completion_ids)  # same seeds, same samples
    other = generate_vllm(llm, prompts, group_size=4, params=params, eos_token_id=EOS, pad_token_id=PAD,
                          seeds=[21, 22, 23, 24])
    assert not torch.equal(other.completion_ids, batch.completion_ids)


def test_truncated_sampling_reports_the_renormalised_logprob(builtin_vllm):
    """Documented behaviour: with top-k, vLLM's processed log-probs are of the truncated distribution,
    so they are >= the trainer's pre-truncation log-probs (equal when the kept mass is 1)."""
    from grpo.rollout.vllm_backend import generate_vllm

    llm, path = builtin_vllm
    model = load_policy(path, "float32", torch.device("cpu"))
    params = SamplingParams(temperature=1.0, top_k=2, max_new_tokens=12)
    batch = generate_vllm(llm, _prompts(4), group_size=2, params=params, eos_token_id=EOS, pad_token_id=PAD,
                          seeds=[1, 2, 3, 4])
    trainer = trainer_logprobs(model, batch, 1.0)
    gap = (batch.sampler_logprobs - trainer)[batch.completion_mask]
    assert (gap > -1e-4).all() and gap.max() > 1e-3


def _large_update(model: torch.nn.Module, sequences: list[list[int]], lr: float = 0.05) -> None:
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    ids = torch.tensor(sequences)
    loss = model(input_ids=ids, labels=ids).loss
    loss.backward()
    optimizer.step()
    optimizer.zero_grad()


def test_weight_sync_after_a_large_update_matches_the_trainer_and_a_skipped_sync_is_caught(builtin_vllm):
    from grpo.rollout.sampler import SamplerMismatch, check_sync, trainer_sequence_logprobs
    from grpo.rollout.vllm_backend import sequence_logprobs, sync_weights

    llm, path = builtin_vllm
    model = load_policy(path, "float32", torch.device("cpu"))
    original = load_policy(path, "float32", torch.device("cpu"))
    fixed = [p + [16, 5, 19, 7, 2] for p in _prompts(3)]
    same_length = [s[:12] for s in fixed]
    before = torch.cat(trainer_sequence_logprobs(model, fixed))
    try:
        _large_update(model, same_length)
        after = torch.cat(trainer_sequence_logprobs(model, fixed))
        assert (after - before).abs().max() > 0.05  # the update moved the policy
        sync_weights(llm, model, timeout_s=60)
        engine = torch.cat(sequence_logprobs(llm, fixed))
        torch.testing.assert_close(engine, after, rtol=0, atol=1e-4)
        stats = check_sync(llm, model, fixed, ("rollout.vllm.check_kl_float32", 1e-6))
        assert float(stats["sync_kl_k3"]) < 1e-8
        _large_update(model, same_length)  # a second update whose sync is "forgotten"
        with pytest.raises(SamplerMismatch, match="check_kl_float32.*stale or partly copied weights"):
            check_sync(llm, model, fixed, ("rollout.vllm.check_kl_float32", 1e-6))
    finally:
        sync_weights(llm, original, timeout_s=60)  # the session's engine goes back to the built-in weights
    assert torch.equal(torch.cat(sequence_logprobs(llm, fixed)).sub(before).abs().lt(1e-4), torch.ones_like(before,
                       dtype=torch.bool))


def test_a_sync_that_never_returns_times_out_with_the_key():
    import threading

    from grpo.rollout.vllm_backend import WeightSyncTimeout, _run_with_timeout

    release = threading.Event()
    with pytest.raises(WeightSyncTimeout, match="rollout.vllm.sync_timeout"):
        _run_with_timeout(lambda: release.wait(10), 0.2)
    release.set()


def test_a_lora_policy_is_synced_as_merged_weights(builtin_vllm):
    from grpo.config.schema import LoraSettings
    from grpo.models.load import add_lora
    from grpo.rollout.sampler import trainer_sequence_logprobs
    from grpo.rollout.vllm_backend import sequence_logprobs, sync_weights

    llm, path = builtin_vllm
    policy = add_lora(load_policy(path, "float32", torch.device("cpu")), LoraSettings(r=4))
    with torch.no_grad():
        for name, parameter in policy.named_parameters():
            if "lora_B" in name:
                parameter.normal_(0.0, 0.05, generator=torch.Generator().manual_seed(1))  # a non-zero adapter
    fixed = [p + [16, 5, 19, 7, 2] for p in _prompts(3)]
    expected = torch.cat(trainer_sequence_logprobs(policy, fixed))
    try:
        sync_weights(llm, policy, timeout_s=60)
        torch.testing.assert_close(torch.cat(sequence_logprobs(llm, fixed)), expected, rtol=0, atol=1e-4)
        assert any("lora_" in name for name, _ in policy.named_parameters())  # the trainer keeps its adapter
        assert torch.equal(torch.cat(trainer_sequence_logprobs(policy, fixed)), expected)  # weights untouched
    finally:
        sync_weights(llm, load_policy(path, "float32", torch.device("cpu")), timeout_s=60)
