"""The run record: one small JSON file per run through which stages pass their results (and Jenkins stashes)."""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from delivery.errors import ConfigError

RECORD_NAME = "run.json"
Status = Literal["passed", "failed", "skipped"]


@dataclass(frozen=True)
class StageResult:
    """How one stage ended, with the figures the next stages and the attestation need."""

    name: str
    status: Status
    summary: str
    started: str
    duration_s: float
    details: dict[str, Any] = field(default_factory=dict)


class RunRecord:
    """`<work-dir>/run.json`: the context and every stage's result, rewritten atomically after each stage."""

    def __init__(self, work_dir: Path, data: dict[str, Any]) -> None:
        self.work_dir = work_dir
        self._data = data

    @classmethod
    def open(cls, work_dir: Path) -> RunRecord:
        """The record in `work_dir`, or an empty one."""
        path = work_dir / RECORD_NAME
        if not path.exists():
            return cls(work_dir, {"stages": {}})
        hint = "Delete it and run the stages again."
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise ConfigError(f"{path} is not a run record ({e})", hint=hint) from e
        stages = data.get("stages") if isinstance(data, dict) else None
        if not isinstance(stages, dict) or not all(isinstance(v, dict) for v in stages.values()):
            raise ConfigError(f"{path} is not a run record (no `stages` object)", hint=hint)
        return cls(work_dir, data)

    @property
    def path(self) -> Path:
        return self.work_dir / RECORD_NAME

    def get(self, key: str) -> Any:
        """A top-level section (`context`, `image`, `push`, …) or None."""
        return self._data.get(key)

    def put(self, key: str, value: Any) -> None:
        self._data[key] = value
        self.save()

    def stage(self, name: str) -> StageResult | None:
        raw = self._data["stages"].get(name)
        return StageResult(**raw) if raw else None

    def stages(self) -> list[StageResult]:
        return [StageResult(**raw) for raw in self._data["stages"].values()]

    def set_stage(self, result: StageResult) -> None:
        self._data["stages"][result.name] = asdict(result)
        self.save()

    def reset(self, context: dict[str, Any]) -> None:
        """Start a new run: forget earlier stages, keep nothing from another commit."""
        self._data = {"stages": {}, "context": context}
        self.save()

    def save(self) -> None:
        self.work_dir.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.work_dir, prefix=".run-", suffix=".json")
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(self._data, out, indent=2, sort_keys=True)
        Path(tmp).replace(self.path)
