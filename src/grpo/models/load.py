"""Loading the policy, its tokenizer and the frozen reference policy from a model directory."""

from __future__ import annotations

import copy
from importlib import resources
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from grpo.errors import UserError

BUILTIN_PREFIX = "builtin:"
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def resolve_model_path(path: str) -> Path:
    """A directory on disk for `path`; `builtin:NAME` names a model shipped with the package."""
    if path.startswith(BUILTIN_PREFIX):
        name = path.removeprefix(BUILTIN_PREFIX)
        resolved = Path(str(resources.files("grpo.models").joinpath("assets", name)))
        if not (resolved / "config.json").is_file():
            raise UserError(f"model.path: no built-in model named {name!r} (try builtin:arith-warmstart)")
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


def load_policy(path: Path, dtype: str, device: torch.device) -> PreTrainedModel:
    """The trainable policy, in training mode, on `device`."""
    model = AutoModelForCausalLM.from_pretrained(path, dtype=DTYPES[dtype])
    return model.to(device).train()


def frozen_copy(model: PreTrainedModel) -> PreTrainedModel:
    """A frozen copy of `model` for the reference policy: eval mode, no gradients."""
    reference = copy.deepcopy(model).eval()
    reference.requires_grad_(False)
    return reference
