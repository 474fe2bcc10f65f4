"""Inputs are confined: a link anywhere in a study that leads out of it, or a special file, is refused by name,
for hashing, for a named DICOM series (whose folder is still mounted) and through `rollout submit`."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from rollout.cli import main
from rollout.executions.model import ExecutionError
from rollout.executions.sandbox import input_identity
from tests.rollout.executions.conftest import NAME
from tests.support.executions_builders import study

OUTSIDE = Path("/etc/hostname")


def _leaky(folder: Path) -> Path:
    """A study whose nested folder links to a file outside it (the attacker's `leak -> /etc/hostname`)."""
    study(folder, 1, 2)
    (folder / "series").mkdir()
    (folder / "series" / "leak").symlink_to(OUTSIDE)
    return folder


@pytest.mark.parametrize("series_uid", [None, "1.2.840.7"])
def test_a_link_out_of_the_study_is_refused_by_name_and_never_read(tmp_path: Path, series_uid: str | None) -> None:
    with pytest.raises(ExecutionError) as caught:
        input_identity(_leaky(tmp_path / "s"), series_uid)
    assert "series/leak" in caught.value.message and "leads out of the study" in caught.value.message
    assert str(OUTSIDE) not in caught.value.render()


def test_links_that_stay_inside_the_study_are_hashed_by_content(tmp_path: Path) -> None:
    plain, linked = study(tmp_path / "plain", 1, 2), study(tmp_path / "linked", 1, 2)
    (linked / "again.txt").symlink_to("study.txt")
    (plain / "again.txt").write_text((plain / "study.txt").read_text())
    assert input_identity(linked) == input_identity(plain)


def test_a_link_to_another_study_beside_it_is_refused_too(tmp_path: Path) -> None:
    other = study(tmp_path / "other", 7)
    mine = study(tmp_path / "mine", 1)
    (mine / "borrowed.txt").symlink_to(other / "study.txt")  # inside the input root, but the container sees only mine
    with pytest.raises(ExecutionError, match=r"borrowed\.txt"):
        input_identity(mine)


def test_a_fifo_in_a_study_is_refused_instead_of_hanging_the_hash(tmp_path: Path) -> None:
    folder = study(tmp_path / "s", 1)
    os.mkfifo(folder / "pipe")
    with pytest.raises(ExecutionError, match="'pipe' is a special file"):
        input_identity(folder)


def test_rollout_submit_refuses_a_leaky_study_naming_the_link(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["submit", f"{NAME}@1.0.0", "--input", str(_leaky(home / "in")), "--out", str(home / "out"),
                 "--org", str(home / "org")])
    assert code == 1
    assert "series/leak" in capsys.readouterr().err
    assert not (home / "out").exists() or not any((home / "out").iterdir())
