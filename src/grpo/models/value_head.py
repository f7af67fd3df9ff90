"""The PPO critic: a scalar value per completion token, on the policy's backbone or on its own copy.

Two layouts (config `ppo.critic`):
- `head`: a linear head on the policy's own transformer backbone. The value loss also trains the
  shared backbone; no second network is held, but each update runs the backbone twice (once for the
  policy's logits, once for the values).
- `separate`: a copy of the base model's backbone with its own head, as in InstructGPT-style PPO
  (Ouyang et al. 2022), where the value model is initialised from a pretrained network. One more
  full network in memory and in the optimiser.
"""

from __future__ import annotations

import copy

import torch
from transformers import PreTrainedModel

from grpo.rollout import position_ids_from_mask


class ValueModel(torch.nn.Module):
    """V(s_t) for every completion token t: a linear head on the last hidden state of a backbone.

    The value of token t is read from the hidden state at the position that *predicts* token t (the
    state before the token is chosen), the same position whose logits give the token's log-prob.
    The head starts at zero, so the first values are 0 and the first advantages are the returns.
    """

    def __init__(self, backbone: torch.nn.Module, hidden_size: int) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = torch.nn.Linear(hidden_size, 1)
        torch.nn.init.zeros_(self.head.weight)
        torch.nn.init.zeros_(self.head.bias)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, completion_length: int) -> torch.Tensor:
        """Values (N, T) float32 of the T completion tokens of (N, P + T) prompt-plus-completion rows."""
        T = completion_length
        hidden = self.backbone(
            input_ids=input_ids,
            attention_mask=attention_mask.long(),
            position_ids=position_ids_from_mask(attention_mask),
            use_cache=False,
        ).last_hidden_state  # (N, P + T, H)
        states = hidden[:, -T - 1 : -1]  # (N, T, H): position P + t - 1 predicts completion token t
        return self.head(states.to(self.head.weight.dtype)).squeeze(-1).float()


def build_value_model(policy: PreTrainedModel, layout: str) -> ValueModel:
    """The critic for `ppo.critic` = `head` (shares the policy's backbone) or `separate` (own copy)."""
    layouts = {"head": lambda: policy.base_model, "separate": lambda: copy.deepcopy(policy.base_model)}
    backbone = layouts[layout]()
    critic = ValueModel(backbone, policy.config.hidden_size)
    return critic.to(device=next(policy.parameters()).device)


def critic_owns_backbone(critic: ValueModel, policy: PreTrainedModel) -> bool:
    """True when the critic holds its own network (the `separate` layout)."""
    return critic.backbone is not policy.base_model
