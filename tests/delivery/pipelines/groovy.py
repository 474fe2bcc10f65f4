"""Parse many Jenkinsfiles with Debian's real Groovy in one JVM start (startup is slow on 2 cores)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

from tests.support.real import need_binary

SCRIPT = Path(__file__).with_name("parse_jenkinsfiles.groovy")


def parse_all(files: list[Path]) -> list[dict[str, Any]]:
    """One result per file: `ok`, and `events` (method calls and constants in visit order) or `error`."""
    groovy = need_binary("groovy", "groovy")
    env = dict(os.environ)
    if "JAVA_HOME" not in env and (java := shutil.which("java")):
        env["JAVA_HOME"] = str(Path(java).resolve().parents[1])
    done = subprocess.run([groovy, str(SCRIPT), *map(str, files)], capture_output=True, text=True,
                          env=env, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    return list(json.loads(done.stdout.strip().splitlines()[-1]))


def shape(events: list[Any]) -> list[str]:
    """The program's structure: call names, with every string constant reduced to its kind."""
    return [e if isinstance(e, str) else f"const:{e['kind']}" for e in events]


def strings(events: list[Any]) -> list[str]:
    """Every string constant, in order."""
    return [e["value"] for e in events if isinstance(e, dict) and e["kind"] == "String"]
