"""`delivery manifest validate|schema`."""

from __future__ import annotations

import argparse
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

from delivery import clikit
from delivery.errors import DeliveryError, ManifestError
from delivery.manifest import load_manifest
from delivery.manifest.schema import render_schema
from delivery.pipelines.render import write_text_file

SCHEMA_PATH = Path("manifests/biomarker.schema.json")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `manifest validate` and `manifest schema`."""
    group = sub.add_parser("manifest", help="validate biomarker.yaml files, print their JSON Schema")
    inner = group.add_subparsers(title="commands", metavar="COMMAND")
    validate = clikit.add_command(
        inner,
        "validate",
        _validate,
        help="check biomarker.yaml files; print every problem as FILE:LINE:COLUMN: field: message",
        epilog="exit status: 0 all valid, 1 a file has problems, 2 usage error",
    )
    validate.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="biomarker.yaml files")
    clikit.add_json_flag(validate)
    schema = clikit.add_command(inner, "schema", _schema, help="print the JSON Schema of biomarker.yaml")
    mode = schema.add_mutually_exclusive_group()
    mode.add_argument("--write", type=Path, metavar="FILE", help="write it to FILE instead of stdout")
    mode.add_argument("--check", type=Path, nargs="?", const=SCHEMA_PATH, metavar="FILE",
                      help=f"exit 1 if FILE (default {SCHEMA_PATH}) is not current")


def _validate(args: argparse.Namespace) -> int:
    results = []
    for path in args.paths:
        try:
            manifest = load_manifest(path)
            results.append({"file": str(path), "valid": True, "name": manifest.name, "problems": []})
        except ManifestError as e:
            problems = [asdict(p) | {"text": str(p)} for p in e.problems]
            results.append({"file": str(path), "valid": False, "problems": problems})
    if args.json:
        clikit.print_json(results)
    else:
        _print_results(results)
    return 0 if all(r["valid"] for r in results) else 1


def _print_results(results: list[dict[str, Any]]) -> None:
    for result in results:
        if result["valid"]:
            print(f"{result['file']}: ok ({result['name']})")
        for problem in result["problems"]:
            print(problem["text"], file=sys.stderr)
    bad = sum(1 for r in results if not r["valid"])
    if bad:
        print(f"{bad} of {len(results)} file(s) invalid; fix the lines shown and run again.", file=sys.stderr)


def _schema(args: argparse.Namespace) -> int:
    text = render_schema()
    if args.write:
        write_text_file(args.write, text)
        print(f"wrote {args.write}")
    elif args.check:
        current = args.check.read_text(encoding="utf-8") if args.check.exists() else ""
        if current != text:
            raise DeliveryError(
                f"{args.check} is out of date with the manifest model",
                hint=f"Run `delivery manifest schema --write {args.check}` and commit the result.",
            )
        print(f"{args.check} is current")
    else:
        sys.stdout.write(text)
    return 0
