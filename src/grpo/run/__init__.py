"""Run services: directory, metrics, progress and checkpoints (main rank writes, all ranks compute)."""
