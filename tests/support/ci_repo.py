"""A tiny biomarker repository in git (busybox image, no network) for the CI-stage tests."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.support.builders import manifest_text
from tests.support.images import write_busybox_context

GIT_ENV = {"GIT_AUTHOR_NAME": "ci", "GIT_AUTHOR_EMAIL": "ci@example.org", "GIT_COMMITTER_NAME": "ci",
           "GIT_COMMITTER_EMAIL": "ci@example.org", "PATH": "/usr/bin:/bin"}


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True, env=GIT_ENV)
    return done.stdout.strip()


def make_repo(directory: Path, busybox: Path, *, image: str, test_command: str = '["sh", "-c", "test -x /bin/sh"]',
              extra_dockerfile: str = "", files: dict[str, str] | None = None, tag: str | None = None,
              gpu_command: str | None = None) -> Path:
    """A committed repo with biomarker.yaml, a busybox Dockerfile and (optionally) a release tag on HEAD."""
    write_busybox_context(directory, busybox, extra_dockerfile=extra_dockerfile, files=files)
    text = manifest_text(image=f"image: {image}").replace(
        '  command: ["sh", "-c", "test -x /bin/sh"]', f"  command: {test_command}", 1)
    if gpu_command:
        text = text.replace(f"  command: {test_command}", f"  command: {test_command}\n  gpu_command: {gpu_command}", 1)
    (directory / "biomarker.yaml").write_text(text, encoding="utf-8")
    git(directory, "init", "-q", "-b", "main")
    commit(directory, "first")
    if tag:
        git(directory, "tag", tag)
    return directory


def commit(repo: Path, message: str) -> str:
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)
    return git(repo, "rev-parse", "HEAD")
