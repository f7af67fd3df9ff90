"""The PPO critic: a scalar value per completion token, on the policy's backbone or on its own copy.

Two layouts (config `ppo.critic`):
- `head`: a linear head on the policy's own network. The value loss also trains the
  shared backbone; no second network is held, but each update runs the backbone twice (once for the
  policy's logits, once for the values).
- `separate`: a copy of the policy network with its own head, as in InstructGPT-style PPO
  (Ouyang et al. 2022), where the value model is initialised from a pretrained network. One more
  full network in memory and in the optimiser.
"""

from __future__ import annotations

import copy

import torch

from grpo.rollout import position_ids_from_mask


class ValueModel(torch.nn.Module):
    """V(s_t) for every completion token t: a linear head on the last hidden state of a causal LM.

    The value of token t is read from the hidden state at the position that *predicts* token t (the
    state before the token is chosen), the same position whose logits give the token's log-prob.
    The LM runs through its own forward (so peft adapters and FSDP2's gathering apply) and only the
    last position's logits are computed. The head starts at zero, so the first values are 0 and the
    first advantages are the returns.
    """

    def __init__(self, lm: torch.nn.Module, hidden_size: int) -> None:
        super().__init__()
        self.lm = lm
        self.head = torch.nn.Linear(hidden_size, 1)
        torch.nn.init.zeros_(self.head.weight)
        torch.nn.init.zeros_(self.head.bias)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, completion_length: int) -> torch.Tensor:
        """Values (N, T) float32 of the T completion tokens of (N, P + T) prompt-plus-completion rows."""
        T = completion_length
        hidden = self.lm(
            input_ids=input_ids,
            attention_mask=attention_mask.long(),
            position_ids=position_ids_from_mask(attention_mask),
            use_cache=False,
            output_hidden_states=True,
            logits_to_keep=1,
        ).hidden_states[-1]  # (N, P + T, H), after the final norm
        states = hidden[:, -T - 1 : -1]  # (N, T, H): position P + t - 1 predicts completion token t
        return self.head(states.to(self.head.weight.dtype)).squeeze(-1).float()


def build_value_model(policy: torch.nn.Module, layout: str) -> ValueModel:
    """The critic for `ppo.critic` = `head` (on the policy itself) or `separate` (its own copy).

    With LoRA the separate copy keeps the adapter layout: it trains its adapters and head. The copy's
    own output layer never reaches a value, so unless it is tied to the embeddings it is frozen (DDP
    requires every trained parameter to receive a gradient).
    """
    layouts = {"head": lambda: policy, "separate": lambda: copy.deepcopy(policy)}
    lm = layouts[layout]()
    if lm is not policy:
        output, embeddings = lm.get_output_embeddings(), lm.get_input_embeddings()
        if output is not None and output.weight is not embeddings.weight:
            output.weight.requires_grad_(False)
    critic = ValueModel(lm, policy.config.hidden_size)
    return critic.to(device=next(policy.parameters()).device)


def critic_owns_backbone(critic: ValueModel, policy: torch.nn.Module) -> bool:
    """True when the critic holds its own network (the `separate` layout)."""
    return critic.lm is not policy
