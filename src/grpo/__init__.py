"""grpo: Group Relative Policy Optimization for language models with verifiable rewards."""

__version__ = "0.1.0"
