"""grpo.tasks"""
