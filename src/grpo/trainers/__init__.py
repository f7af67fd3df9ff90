"""grpo.trainers"""
