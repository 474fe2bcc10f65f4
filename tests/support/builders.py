"""Builders of valid inputs that tests then break one field at a time."""

from __future__ import annotations

VALID_MANIFEST = """\
apiVersion: delivery/v1
kind: Biomarker
name: alpha
description: A tiny test biomarker.
owners: ["@imaging/alpha"]
image: biomarkers/alpha
job_type: batch
build:
  dockerfile: Dockerfile
  context: .
test:
  command: ["sh", "-c", "test -x /bin/sh"]
variants:
  fast:
    command: ["sh", "-c", "echo ok > /data/output/report.json"]
    resources: {cpu_mhz: 500, memory_mb: 128}
    timeout: 5m
"""


def manifest_text(**replacements: str) -> str:
    """VALID_MANIFEST with whole lines swapped: `manifest_text(name="name: Bad")`."""
    lines = VALID_MANIFEST.splitlines()
    for key, line in replacements.items():
        index = next(i for i, text in enumerate(lines) if text.startswith(f"{key}:"))
        lines[index] = line
    return "\n".join(lines) + "\n"
