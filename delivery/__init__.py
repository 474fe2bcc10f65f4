"""Biomarker delivery: from a GitHub organisation's repositories to signed images, releases and rollouts."""

from __future__ import annotations

__version__ = "0.1.0"
