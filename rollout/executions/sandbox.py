"""The files around an execution: input identity, output hashes, provenance.json, comparison.json."""

from __future__ import annotations

import hashlib
import json
import os
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
    """
    if series_uid:
        return f"dicom-series:{series_uid}"
    if path.is_file():
        return f"sha256:{file_sha256(path)}"
    if not path.is_dir():
        raise ExecutionError(f"input {path} does not exist", hint="Point --input at a study file or folder.")
    tree = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        tree.update(f"{file.relative_to(path).as_posix()}\x00{file_sha256(file)}\n".encode())
    return f"sha256:{tree.hexdigest()}"


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

