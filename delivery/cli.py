"""The `delivery` command: manifests, discovery, pipelines, CI stages and releases."""

from __future__ import annotations

from collections.abc import Sequence

from delivery import clikit
from delivery.commands import (
    audit,
    base_image,
    ci,
    env,
    gc,
    keys,
    local,
    manifest,
    pipelines,
    promote,
    resolve,
    scan,
    scanner,
    verify,
    webhook,
    yank,
)

DESCRIPTION = """\
Deliver containerised imaging biomarkers from their repositories to a registry.

Every biomarker repository carries a biomarker.yaml; `delivery` validates it,
and later stages build, test, scan, push and release its image.
"""

EPILOG = """\
examples:
  delivery manifest validate biomarkers/*/biomarker.yaml
  delivery manifest schema --check
  delivery scan --org local:biomarkers
  delivery pipelines render --org local:biomarkers --out out/pipelines
  delivery pipelines apply --org acme --jenkins-url https://ci.example.com

Run `delivery COMMAND --help` for the options of each command.
"""

COMMANDS = (manifest, scan, pipelines, webhook, promote, resolve, local, base_image, ci, verify, keys, yank, gc, env,
            audit, scanner)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `delivery` console script."""
    return clikit.dispatch("delivery", DESCRIPTION, EPILOG, COMMANDS, argv)


if __name__ == "__main__":
    raise SystemExit(main())
