"""Rollout: release state, Nomad, the progressive rollout controller and pinned executions."""

from __future__ import annotations
