"""`LocalScheduler`: the embedded default's record of job versions, with Nomad's versioning semantics."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from rollout.nomad import NomadConflict
from rollout.scheduler import LocalScheduler


def spec(image: str) -> dict[str, Any]:
    return {"ID": "alpha-fast", "Type": "batch", "Meta": {"version": image}}


def test_versions_only_on_change_with_enforce_index(tmp_path: Path) -> None:
    s = LocalScheduler(tmp_path / "sched.json")
    assert s.job("alpha-fast").value is None and s.versions("alpha-fast") == ()
    first = s.register(spec("1.0"), enforce_index=0)
    again = s.register(spec("1.0"), enforce_index=first.job_modify_index)
    assert again.job_modify_index == first.job_modify_index and len(s.versions("alpha-fast")) == 1
    with pytest.raises(NomadConflict):
        s.register(spec("2.0"), enforce_index=0)  # someone else registered first
    s.register(spec("2.0"), enforce_index=first.job_modify_index)
    assert [v.version for v in s.versions("alpha-fast")] == [1, 0]  # newest first


def test_revert_stable_and_stop_survive_a_restart(tmp_path: Path) -> None:
    s = LocalScheduler(tmp_path / "sched.json")
    s.register(spec("1.0"), enforce_index=0)
    s.mark_stable("alpha-fast", 0)
    s.register(spec("2.0"), enforce_index=1)
    with pytest.raises(NomadConflict):
        s.revert("alpha-fast", 0, enforce_prior_version=0)  # the job moved on to version 1
    s.revert("alpha-fast", 0, enforce_prior_version=1)
    s.deregister("alpha-fast")
    s.deregister("alpha-fast")  # idempotent
    again = LocalScheduler(tmp_path / "sched.json")  # a new process reads the same record
    versions = again.versions("alpha-fast")
    assert [(v.version, v.meta_value("version"), v.stable, v.stop) for v in versions] == [
        (3, "1.0", False, True), (2, "1.0", False, False), (1, "2.0", False, False), (0, "1.0", True, False)]
    assert again.deployments("alpha-fast") == () and again.latest_deployment("alpha-fast").value is None
