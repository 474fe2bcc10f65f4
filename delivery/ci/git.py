"""The few read-only git queries the CI context needs (adapter: the only subprocess user in `delivery.ci`)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from delivery.errors import ConfigError


def git(repo: Path, *args: str, required: bool = True) -> str:
    """Output of `git -C repo ARGS`, stripped; "" when it fails and is not required.

    Raises:
        ConfigError: a required query failed (not a git checkout, no commits).
    """
    done = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        if required:
            raise ConfigError(f"{repo} is not a git checkout with a commit (git {args[0]}: {done.stderr.strip()})",
                              hint="Run the CI stages in a clone of the biomarker repository.")
        return ""
    return done.stdout.strip()
