"""Release state: compare-and-set means two writers can never silently overwrite each other."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest

from delivery.release.state import ChannelPin, ConflictError, SqliteReleaseStore

DIGEST = "sha256:" + "ab" * 32


def _pin(version: str) -> ChannelPin:
    return ChannelPin(version=version, digest=DIGEST, image="127.0.0.1:5000/bio/x",
                      moved_at=datetime.now(UTC), moved_by="tester")


def test_empty_state_then_write_then_read(tmp_path: Path) -> None:
    store = SqliteReleaseStore(tmp_path / "state.sqlite")
    first = store.read("prod", "emphysema")
    assert first.index == 0 and first.state.channels == {}
    changed = first.state.model_copy(update={"channels": {"stable": _pin("1.0.0")}})
    assert store.write(changed, first.index) == 1
    again = SqliteReleaseStore(tmp_path / "state.sqlite").read("prod", "emphysema")
    assert again.state.channels["stable"].reference == f"127.0.0.1:5000/bio/x:1.0.0@{DIGEST}"
    assert store.biomarkers("prod") == ["emphysema"]


def test_stale_write_is_refused(tmp_path: Path) -> None:
    store = SqliteReleaseStore(tmp_path / "state.sqlite")
    seen = store.read("prod", "emphysema")
    store.write(seen.state.model_copy(update={"channels": {"stable": _pin("1.0.0")}}), seen.index)
    with pytest.raises(ConflictError):
        store.write(seen.state.model_copy(update={"channels": {"stable": _pin("2.0.0")}}), seen.index)
    assert store.read("prod", "emphysema").state.channels["stable"].version == "1.0.0"


def test_racing_writers_lose_no_update(tmp_path: Path) -> None:
    store = SqliteReleaseStore(tmp_path / "state.sqlite")

    def add_freeze_channel(name: str) -> None:
        for _ in range(50):
            seen = store.read("prod", "emphysema")
            channels = dict(seen.state.channels) | {name: _pin("1.0.0")}
            try:
                store.write(seen.state.model_copy(update={"channels": channels}), seen.index)
                return
            except ConflictError:
                continue

    threads = [threading.Thread(target=add_freeze_channel, args=(f"c{i}",)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(store.read("prod", "emphysema").state.channels) == [f"c{i}" for i in range(8)]
