"""LoRA through peft (adapter-only training, base as reference, merged export), checkpointing, autocast."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from grpo.config.schema import LoraSettings
from grpo.errors import UserError
from grpo.models.load import add_lora, autocast_dtype, exportable, has_adapter, load_policy
from grpo.models.logprobs import completion_logprobs

pytestmark = pytest.mark.usefixtures("one_thread")


def logprobs(model, ids):
    mask = torch.ones_like(ids, dtype=torch.bool)
    return completion_logprobs(model, ids, mask, ids.shape[1] - 1, 1.0)[0]


def nudge_adapter(model) -> None:
    """Give the adapter a non-zero update (peft initialises B = 0, so a fresh adapter changes nothing)."""
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.5)


@pytest.fixture
def ids():
    return torch.randint(5, 300, (3, 12), generator=torch.Generator().manual_seed(0))


def test_lora_trains_only_the_adapter_and_the_base_is_the_reference(tiny_qwen2_dir: Path, ids):
    base = load_policy(tiny_qwen2_dir, "float32", torch.device("cpu"))
    base_logprobs = logprobs(base, ids).detach()
    policy = add_lora(load_policy(tiny_qwen2_dir, "float32", torch.device("cpu")), LoraSettings(r=4))
    trainable = [name for name, p in policy.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in name for name in trainable)
    torch.testing.assert_close(logprobs(policy, ids), base_logprobs)  # B = 0: policy == base at step 0
    nudge_adapter(policy)
    assert not torch.allclose(logprobs(policy, ids), base_logprobs, atol=1e-3)
    with policy.disable_adapter():  # the reference policy: no second copy of the weights
        torch.testing.assert_close(logprobs(policy, ids), base_logprobs)
    assert has_adapter(policy) and not has_adapter(base)


def test_merged_export_is_a_plain_model_with_the_same_outputs(tiny_qwen2_dir: Path, ids):
    policy = add_lora(load_policy(tiny_qwen2_dir, "float32", torch.device("cpu")), LoraSettings(r=4))
    nudge_adapter(policy)
    merged = exportable(policy)
    assert type(merged).__name__ == "Qwen2ForCausalLM" and not has_adapter(merged)
    torch.testing.assert_close(logprobs(merged, ids), logprobs(policy, ids), atol=1e-4, rtol=1e-4)
    assert has_adapter(policy), "merging works on a copy; the policy keeps its adapter"


def test_gradient_checkpointing_gives_the_same_gradients(tiny_llama_bpe_dir: Path, ids):
    grads = []
    for checkpointing in (False, True):
        model = load_policy(tiny_llama_bpe_dir, "float32", torch.device("cpu"), gradient_checkpointing=checkpointing)
        logprobs(model, ids).sum().backward()
        grads.append(model.model.layers[0].mlp.up_proj.weight.grad.clone())
    torch.testing.assert_close(grads[0], grads[1])


def test_lora_with_gradient_checkpointing_still_gets_adapter_gradients(tiny_qwen2_dir: Path, ids):
    base = load_policy(tiny_qwen2_dir, "float32", torch.device("cpu"), gradient_checkpointing=True)
    policy = add_lora(base, LoraSettings(r=4), gradient_checkpointing=True)
    nudge_adapter(policy)
    logprobs(policy, ids).sum().backward()
    grads = [p.grad for name, p in policy.named_parameters() if "lora_A" in name]
    assert grads and all(g is not None and g.abs().sum() > 0 for g in grads)


def test_autocast_choice():
    cpu = torch.device("cpu")
    assert autocast_dtype("auto", cpu) is None  # CPUs stay in float32
    assert autocast_dtype("off", cpu) is None
    with pytest.raises(UserError, match="model.autocast: bfloat16 autocast needs a CUDA device"):
        autocast_dtype("bfloat16", cpu)


def test_unknown_lora_target_is_a_user_error(tiny_qwen2_dir: Path):
    model = load_policy(tiny_qwen2_dir, "float32", torch.device("cpu"))
    with pytest.raises(UserError, match="model.lora.target_modules"):
        add_lora(model, LoraSettings(r=4, target_modules=("no_such_proj",)))


@pytest.mark.gpu
def test_bf16_autocast_on_cuda(tiny_qwen2_dir: Path, ids):
    device = torch.device("cuda")
    model = load_policy(tiny_qwen2_dir, "float32", device)
    assert autocast_dtype("auto", device) == torch.bfloat16
    with torch.autocast("cuda", dtype=torch.bfloat16):
        low = logprobs(model, ids.to(device))
    torch.testing.assert_close(low, logprobs(model, ids.to(device)), atol=0.1, rtol=0.05)
