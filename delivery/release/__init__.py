"""Releases: release state per environment (channels, freezes, rollout status) and its stores."""
