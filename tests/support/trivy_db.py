"""Trivy's offline vulnerability DB archive, built in a test: `db.tar.gz` holding `metadata.json` and `trivy.db`."""

from __future__ import annotations

import io
import json
import tarfile
from datetime import datetime, timedelta
from pathlib import Path


def make_archive(path: Path, *, updated: datetime, members: tuple[str, ...] = ("trivy.db", "metadata.json"),
                 db: bytes = b"bolt db stand-in") -> Path:
    """A `db.tar.gz` in Trivy's documented offline layout (what `tar -czf db.tar.gz -C D/db …` makes)."""
    metadata = {"Version": 2, "NextUpdate": (updated + timedelta(hours=24)).isoformat().replace("+00:00", "Z"),
                "UpdatedAt": updated.isoformat().replace("+00:00", "Z"), "DownloadedAt": updated.isoformat()}
    content = {"trivy.db": db, "metadata.json": json.dumps(metadata).encode(), "../escape": b"x"}
    with tarfile.open(path, "w:gz") as tar:
        for name in members:
            info = tarfile.TarInfo(name)
            info.size = len(content[name])
            tar.addfile(info, io.BytesIO(content[name]))
    return path
