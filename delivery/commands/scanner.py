"""`delivery scanner db import|mirror|pull|status`: Trivy's vulnerability DB on machines without internet."""

from __future__ import annotations

import argparse
import os
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from delivery import clikit
from delivery.config import add_registry_flag, registry_settings
from delivery.scannerdb import (
    DB_TAG,
    DEFAULT_REPOSITORY,
    REPOSITORY_ENV,
    ScannerDbError,
    import_archive,
    installed_metadata,
    pack_installed,
    pull_archive,
    push_archive,
    trivy_cache_dir,
)
from delivery.scanrecord import DbMetadata

EPILOG = """\
examples:
  delivery scanner db import db.tar.gz                        # Trivy's offline archive: trivy.db + metadata.json
  delivery scanner db mirror db.tar.gz --registry reg:5000     # push it as reg:5000/trivy/db:2 (Trivy's OCI artifact)
  delivery scanner db mirror                                   # push the DB imported here
  delivery scanner db pull --registry reg:5000                 # build agents: fetch it into the trivy cache
  delivery scanner db status --json

Make the archive where the internet is reachable:
  trivy image --download-db-only --cache-dir D && tar -czf db.tar.gz -C D/db metadata.json trivy.db
`delivery ci scan` pulls from the mirror by itself when DELIVERY_TRIVY_DB_REPOSITORY names it (e.g. trivy/db)
and its DB is missing or stale; `trivy --db-repository HOST/trivy/db` reads the same artifact.
exit status: 0 done, 1 a problem the message explains, 2 usage error
"""


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `scanner db import|mirror|pull|status`."""
    scanner = sub.add_parser("scanner", help="the vulnerability scanner's DB: import, mirror, pull, status")
    db = scanner.add_subparsers(title="commands", metavar="COMMAND").add_parser(
        "db", help="Trivy's vulnerability DB without internet")
    inner = db.add_subparsers(title="commands", metavar="COMMAND")
    helps = {"import": "unpack Trivy's offline DB archive (db.tar.gz) into the trivy cache",
             "mirror": "push a DB archive (default: the imported DB) to the registry as Trivy's OCI DB artifact",
             "pull": "fetch the DB artifact from the registry into the trivy cache",
             "status": "the installed DB's date and age"}
    handlers = {"import": _import, "mirror": _mirror, "pull": _pull, "status": _status}
    for name, text in helps.items():
        parser = clikit.add_command(inner, name, handlers[name], help=text, epilog=EPILOG)
        if name in ("import", "mirror"):
            parser.add_argument("archive", type=Path, nargs="?" if name == "mirror" else None, metavar="FILE",
                                help="db.tar.gz holding trivy.db and metadata.json")
        parser.add_argument("--cache-dir", type=Path, help="trivy's cache (default: $TRIVY_CACHE_DIR, else "
                                                           "$DELIVERY_CACHE/trivy); the DB goes to its db/")
        if name in ("mirror", "pull"):
            add_registry_flag(parser)
            parser.add_argument("--repository", default=os.environ.get(REPOSITORY_ENV) or DEFAULT_REPOSITORY,
                                help=f"repository of the DB artifact (default: ${REPOSITORY_ENV}, else "
                                     f"{DEFAULT_REPOSITORY}); tag {DB_TAG}")
        clikit.add_json_flag(parser)


def _cache(args: argparse.Namespace) -> Path:
    return Path(args.cache_dir) if args.cache_dir else trivy_cache_dir()


def _show(verb: str, where: str, metadata: DbMetadata, as_json: bool) -> int:
    now = datetime.now(UTC)
    if as_json:
        clikit.print_json({"action": verb, "where": where, "updated_at": metadata.updated_at.isoformat(),
                           "next_update": metadata.next_update.isoformat() if metadata.next_update else None,
                           "age_days": round(metadata.age(now).total_seconds() / 86400, 2)})
    else:
        print(f"{verb} {where}: {metadata.describe(now)}")
    return 0


def _import(args: argparse.Namespace) -> int:
    cache = _cache(args)
    return _show("imported into", str(cache / "db"), import_archive(args.archive, cache), args.json)


def _mirror(args: argparse.Namespace) -> int:
    settings = registry_settings(args)
    with tempfile.TemporaryDirectory() as scratch:
        archive = args.archive
        if archive is None:
            archive = Path(scratch) / "db.tar.gz"
            pack_installed(_cache(args), archive)
        digest, metadata = push_archive(settings.client(), args.repository, archive)
    return _show("mirrored to", f"{settings.host}/{args.repository}:{DB_TAG} ({digest})", metadata, args.json)


def _pull(args: argparse.Namespace) -> int:
    settings, cache = registry_settings(args), _cache(args)
    metadata = pull_archive(settings.client(), args.repository, cache)
    return _show(f"pulled {settings.host}/{args.repository}:{DB_TAG} into", str(cache / "db"), metadata, args.json)


def _status(args: argparse.Namespace) -> int:
    cache = _cache(args)
    metadata = installed_metadata(cache)
    if metadata is None:
        raise ScannerDbError(f"no vulnerability DB in {cache}/db: vulnerability scans fail closed",
                             hint="Import one: `delivery scanner db import db.tar.gz`, or "
                                  "`delivery scanner db pull --registry HOST:PORT`.")
    return _show("installed in", str(cache / "db"), metadata, args.json)
