"""Loading the policy, its tokenizer and the frozen reference policy from a model directory.

Any `AutoModelForCausalLM` directory works (Llama, Qwen2, SmolLM, Mistral, ...). Options: mixed
precision (autocast), gradient checkpointing, and LoRA adapters through peft. With LoRA only the
adapter trains, and the reference policy is the same model with the adapter switched off, so no
second copy of the weights is held.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable
from importlib import resources
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from grpo.config.schema import LoraSettings
from grpo.errors import UserError

BUILTIN_PREFIX = "builtin:"
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def resolve_model_path(path: str) -> Path:
    """A directory on disk for `path`; `builtin:NAME` names a model shipped with the package."""
    if path.startswith(BUILTIN_PREFIX):
        name = path.removeprefix(BUILTIN_PREFIX)
        resolved = Path(str(resources.files("grpo.models").joinpath("assets", name)))
        if not (resolved / "config.json").is_file():
            raise UserError(f"model.path: no built-in model named {name!r} (built-in: builtin:arith-warmstart, "
                            "builtin:code-warmstart)")
        return resolved
    resolved = Path(path).expanduser()
    if not (resolved / "config.json").is_file():
        raise UserError(f"model.path: {resolved} is not a model directory (no config.json there)")
    return resolved


def resolve_device(device: str) -> torch.device:
    """`auto` picks CUDA when present, else the CPU."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"model.device: {device!r} asked for but no CUDA device is available (use cpu)")
    return torch.device(device)


def load_tokenizer(path: Path) -> PreTrainedTokenizerBase:
    """The tokenizer saved beside the model, with a pad token and left padding for generation."""
    tokenizer = AutoTokenizer.from_pretrained(path)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"
    if tokenizer.eos_token_id is None:
        raise UserError(f"model.path: the tokenizer in {path} has no EOS token, so completions cannot end")
    return tokenizer


def load_policy(
    path: Path, dtype: str, device: torch.device, gradient_checkpointing: bool = False
) -> PreTrainedModel:
    """The trainable policy, in training mode, on `device`.

    With `gradient_checkpointing`, activations are recomputed in the backward pass (non-reentrant,
    which also works when only adapter weights need gradients). Generation is unaffected: the
    rollout engine runs the model in eval mode, where transformers keeps the KV cache.
    """
    model = AutoModelForCausalLM.from_pretrained(path, dtype=DTYPES[dtype])
    if gradient_checkpointing:
        # transformers 5.x renamed gradient_checkpointing_enable (deprecated, to go in v6); the old name
        # is the fallback for the 4.x releases pyproject still allows and can go when the floor is >= 5.
        if hasattr(model, "activation_checkpointing_enable"):
            model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
        else:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.config.use_cache = False
    return model.to(device).train()


def add_lora(model: PreTrainedModel, settings: LoraSettings, gradient_checkpointing: bool = False) -> torch.nn.Module:
    """Wrap `model` with fresh LoRA adapters (peft); only adapter weights require gradients.

    The adapter starts as a zero update (B = 0), so the wrapped policy equals the base at step 0.
    """
    from peft import LoraConfig, get_peft_model  # imported here: only LoRA runs need peft

    targets = settings.target_modules if isinstance(settings.target_modules, str) else list(settings.target_modules)
    config = LoraConfig(r=settings.r, lora_alpha=settings.alpha, lora_dropout=settings.dropout,
                        target_modules=targets, task_type="CAUSAL_LM")
    try:
        peft_model = get_peft_model(model, config)
    except ValueError as error:
        raise UserError(f"model.lora.target_modules: {str(error).splitlines()[0]}") from None
    if gradient_checkpointing:
        peft_model.enable_input_require_grads()  # checkpointed blocks need an input that requires grad
    return peft_model.train()


def has_adapter(model: torch.nn.Module) -> bool:
    """Whether `model` carries peft adapters (and so can act as its own reference policy)."""
    return callable(getattr(model, "disable_adapter", None)) and hasattr(model, "peft_config")


def exportable(model: torch.nn.Module) -> PreTrainedModel:
    """A plain transformers model to save: the policy itself, or a merged copy of a LoRA policy.

    Merging works on a copy so that training could continue with the adapter afterwards.
    """
    if not has_adapter(model):
        return model
    return copy.deepcopy(model).merge_and_unload()


def autocast_dtype(setting: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for a `model.autocast` setting on `device`, or None for full precision.

    `auto` means bf16 on CUDA devices that support it and nothing elsewhere: on CPUs bf16 matmuls are
    slower than fp32, and fp16 without loss scaling is not a safe automatic choice.
    """
    if setting == "off":
        return None
    if setting == "auto":
        supported = device.type == "cuda" and torch.cuda.is_bf16_supported()
        return torch.bfloat16 if supported else None
    if device.type != "cuda":
        raise UserError(f"model.autocast: {setting} autocast needs a CUDA device (this run is on {device})")
    return DTYPES[setting]


def autocast_context(
    dtype: torch.dtype | None, device: torch.device
) -> Callable[[], contextlib.AbstractContextManager]:
    """A factory of contexts running forward passes in `dtype` (no-op contexts when None)."""
    if dtype is None:
        return contextlib.nullcontext
    return lambda: torch.autocast(device_type=device.type, dtype=dtype)


def frozen_copy(model: PreTrainedModel) -> PreTrainedModel:
    """A frozen copy of `model` for the reference policy: eval mode, no gradients."""
    reference = copy.deepcopy(model).eval()
    reference.requires_grad_(False)
    return reference
