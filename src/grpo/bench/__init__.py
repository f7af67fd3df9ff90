"""Speed and memory benchmarks (`grpo bench generate|logprob|step`), each printing one JSON line.

Every benchmark runs this project's path and its peer (transformers `generate`, the full-logits
log-prob path, TRL's `GRPOTrainer`) in the same process, alternating A B A B, and reports medians,
their ratio and how idle the machine was. Never asserted in tests: figures go to docs/performance.md.
"""
