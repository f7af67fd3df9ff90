"""The fast rollout path (preallocated cache, finished rows dropped) against the plain one."""

from __future__ import annotations

from collections.abc import Callable

import torch
from transformers import PreTrainedModel
from transformers.cache_utils import DynamicCache

from grpo.rollout import RolloutBatch, SamplingParams, generate
from grpo.rollout.kv_cache import PreallocatedLayer, preallocate

PAD_ID, EOS_ID = 0, 1
PROMPTS = [[3, 4, 5, 6, 7, 8, 9], [10, 11], [12, 13, 14, 15]]


def _generate(model: PreTrainedModel, params: SamplingParams, fast: bool, group_size: int = 2,
              prompts: list[list[int]] = PROMPTS) -> RolloutBatch:
    return generate(model, prompts, group_size=group_size, params=params, eos_token_id=EOS_ID, pad_token_id=PAD_ID,
                    generator=torch.Generator().manual_seed(0), fast=fast)


def _assert_same(fast: RolloutBatch, plain: RolloutBatch) -> None:
    for name in ("prompt_ids", "prompt_mask", "completion_ids", "completion_mask", "truncated"):
        assert torch.equal(getattr(fast, name), getattr(plain, name)), name
    torch.testing.assert_close(fast.sampler_logprobs, plain.sampler_logprobs, rtol=0, atol=1e-5)


def test_fast_greedy_equals_plain_greedy(causal_lm: PreTrainedModel) -> None:
    params = SamplingParams(temperature=0.0, max_new_tokens=10)
    _assert_same(_generate(causal_lm, params, fast=True), _generate(causal_lm, params, fast=False))


def test_finished_rows_leave_the_batch_and_results_are_unchanged(
    eos_at_position: Callable[[int, int], PreTrainedModel],
) -> None:
    # EOS is predicted from absolute position 4: the length-4 prompt (positions 0-3) emits it as
    # completion token 1, the length-2 prompt as token 3, the length-7 prompt never. With G = 2 the
    # batch has 6 rows: after token 1 two of them (a third) are done and are dropped, after token 3
    # two of the remaining four are.
    model = eos_at_position(4, EOS_ID)
    rows = []
    model.register_forward_pre_hook(lambda m, a, k: rows.append(k["input_ids"].shape[0]), with_kwargs=True)
    for params in (SamplingParams(temperature=0.0, max_new_tokens=6), SamplingParams(max_new_tokens=6)):
        rows.clear()
        fast = _generate(model, params, fast=True)
        assert rows == [3, 6, 4, 4, 2, 2]  # prefill of B = 3, then 6 rows, 6 - 2, 4 - 2
        plain = _generate(model, SamplingParams(temperature=0.0, max_new_tokens=6), fast=False)
        if params.greedy:
            _assert_same(fast, plain)
        assert fast.completion_lengths.tolist() == [6, 6, 4, 4, 2, 2]
        assert fast.truncated.tolist() == [True, True, False, False, False, False]
        assert (fast.completion_ids[~fast.completion_mask] == PAD_ID).all()


def test_preallocated_layer_writes_in_place_and_repeats_rows() -> None:
    keys = torch.arange(2 * 1 * 3 * 2, dtype=torch.float32).view(2, 1, 3, 2)  # (n=2, heads=1, S=3, d=2)
    layer = PreallocatedLayer(keys, -keys, capacity=5, repeats=2)
    buffer = layer._key_buffer
    assert layer.get_seq_length() == 3 and layer.keys.shape == (4, 1, 3, 2)
    assert torch.equal(layer.keys, keys.repeat_interleave(2, 0))
    new = torch.full((4, 1, 1, 2), 9.0)
    out_keys, out_values = layer.update(new, -new)
    assert layer._key_buffer is buffer  # no reallocation on update
    assert out_keys.shape == (4, 1, 4, 2) and torch.equal(out_keys[:, :, 3], new[:, :, 0])
    assert torch.equal(out_values[:, :, :3], -keys.repeat_interleave(2, 0))
    layer.batch_select_indices(torch.tensor([3, 0]))
    assert torch.equal(layer.keys[:, :, :3], keys[[1, 0]])
    layer.update(new[:2], new[:2])
    try:
        layer.update(new[:2], new[:2])
    except RuntimeError as error:
        assert "capacity 5" in str(error)
    else:
        raise AssertionError("writing past the capacity must fail")


def test_only_plain_dynamic_caches_are_preallocated() -> None:
    cache = DynamicCache()
    cache.update(torch.zeros(1, 1, 2, 4), torch.zeros(1, 1, 2, 4), 0)
    assert preallocate(cache, capacity=4, repeats=3)
    assert isinstance(cache.layers[0], PreallocatedLayer) and cache.layers[0].keys.shape[0] == 3
    legacy = ((torch.zeros(1, 1, 2, 4), torch.zeros(1, 1, 2, 4)),)
    assert not preallocate(legacy, capacity=4, repeats=3)
