"""A third-party plugin package without installing one: a `*.dist-info` and a module on `sys.path`."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Mapping
from pathlib import Path

import pytest


def add_fake_plugin(
    root: Path, monkeypatch: pytest.MonkeyPatch, *, module: str, source: str,
    entry_points: Mapping[str, Mapping[str, str]], distribution: str = "fakeplugin",
) -> None:
    """Write `module.py` and `DISTRIBUTION-0.1.dist-info` declaring `entry_points` under `root`; put it on sys.path."""
    root.mkdir(parents=True, exist_ok=True)
    (root / f"{module}.py").write_text(textwrap.dedent(source))
    info = root / f"{distribution}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {distribution}\nVersion: 0.1\n")
    sections = [f"[{group}]\n" + "".join(f"{name} = {target}\n" for name, target in entries.items())
                for group, entries in entry_points.items()]
    (info / "entry_points.txt").write_text("\n".join(sections))
    monkeypatch.syspath_prepend(str(root))
    monkeypatch.delitem(sys.modules, module, raising=False)
