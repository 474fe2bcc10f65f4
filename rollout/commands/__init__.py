"""Subcommands of the `rollout` CLI, one module each."""
