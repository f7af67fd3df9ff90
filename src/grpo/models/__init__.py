"""Models: loading, the log-prob forward pass, and the locally built tiny model."""
