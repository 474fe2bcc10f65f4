"""The files around an execution: input identity, output hashes, provenance.json, comparison.json."""

from __future__ import annotations

import hashlib
import json
import os
import stat
import tempfile
from pathlib import Path
from typing import Any

from rollout.executions.model import ExecutionError, OutputFile

PROVENANCE = "provenance.json"
COMPARISON = "comparison.json"
EXECUTION_LOG = "execution.log"
OURS = frozenset({PROVENANCE, COMPARISON, EXECUTION_LOG})
CHUNK = 1 << 20


def file_sha256(path: Path) -> str:
    """Content hash of one file; an unreadable file is an ExecutionError naming it, never a bare OSError."""
    digest = hashlib.sha256()
    try:
        with path.open("rb") as f:
            while chunk := f.read(CHUNK):
                digest.update(chunk)
    except OSError as e:
        raise ExecutionError(f"cannot read {path}: {e.strerror or e}",
                             hint="Check that the study's files are readable by this user.") from e
    return digest.hexdigest()


def input_identity(path: Path, series_uid: str | None = None) -> str:
    """`dicom-series:<UID>` when the caller names the series, else `sha256:<hash of the input tree>`.

    Only content and UIDs identify a study; names and headers are never read, so no patient name can leak here.
    Either way every entry of the study is checked first (`study_files`): what is hashed is what gets mounted.
    """
    files = study_files(path)
    if series_uid:
        return f"dicom-series:{series_uid}"
    if not path.is_dir():
        return f"sha256:{file_sha256(path)}"
    base = path.resolve()
    tree = hashlib.sha256()
    for file in files:
        tree.update(f"{file.relative_to(base).as_posix()}\x00{file_sha256(file)}\n".encode())
    return f"sha256:{tree.hexdigest()}"


def study_files(path: Path) -> list[Path]:
    """Every regular file of a study (a file, or a folder walked without following links), sorted.

    The study is all the container sees (it is mounted alone), so a symbolic link anywhere in it must resolve to a
    file or folder inside the study; one that leads out (to /etc/hostname, another study, nowhere) and any special
    file (FIFO, socket, device: reading one hangs or reads the host) is refused, named relative to the study.
    """
    base = path.resolve()
    if not base.exists():
        raise ExecutionError(f"input {path} does not exist", hint="Point --input at a study file or folder.")
    if not base.is_dir():
        _kind(base, base)  # a FIFO or device given as the study is refused too
        return [path]
    files: list[Path] = []
    for folder, dirs, names in os.walk(base, onerror=_raise):
        for name in dirs + names:
            entry = Path(folder, name)
            if _kind(entry, base) == "file":
                files.append(entry)
    return sorted(files)


def _kind(entry: Path, base: Path) -> str:
    """`file` or `folder`; a link out of the study or a special file is an ExecutionError naming the entry."""
    where = entry.relative_to(base).as_posix() if entry != base else entry.name
    mode = entry.lstat().st_mode
    if stat.S_ISLNK(mode):
        target = entry.resolve()
        if not (target.is_relative_to(base) and target.exists()):
            raise ExecutionError(f"input entry {where!r} is a symbolic link that leads out of the study",
                                 hint="Copy the file into the study instead of linking to it; links must stay "
                                      "inside the study folder.")
        mode = target.stat().st_mode
    if stat.S_ISDIR(mode):
        return "folder"
    if stat.S_ISREG(mode):
        return "file"
    raise ExecutionError(f"input entry {where!r} is a special file (not a regular file or folder)",
                         hint="A study holds only regular files and folders; remove FIFOs, sockets and devices.")


def _raise(error: OSError) -> None:
    raise error


def hash_outputs(folder: Path) -> tuple[OutputFile, ...]:
    """Every file the biomarker wrote, hashed; our own provenance files excluded."""
    if not folder.is_dir():
        return ()
    files = sorted(p for p in folder.rglob("*") if p.is_file() and not (p.parent == folder and p.name in OURS))
    return tuple(OutputFile(p.relative_to(folder).as_posix(), file_sha256(p), p.stat().st_size) for p in files)


def write_json_atomic(path: Path, document: dict[str, Any]) -> None:
    """Write a JSON file so readers see the old file or the new one, never half of it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(document, f, indent=2, sort_keys=True, default=str)
        f.write("\n")
    Path(tmp).replace(path)


def read_report(folder: Path) -> dict[str, Any]:
    """The biomarker's `report.json` in an output folder."""
    path = folder / "report.json"
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        hint = "The biomarker must write /data/output/report.json."
        raise ExecutionError(f"cannot read {path}: {e}", hint=hint) from e
    if not isinstance(document, dict):
        raise ExecutionError(f"{path} is not a JSON object")
    return document

