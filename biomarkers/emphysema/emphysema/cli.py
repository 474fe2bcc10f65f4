"""Command line: `emphysema quantify INPUT --variant fast|accurate --out DIR`."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from . import __version__
from .errors import EmphysemaError


def build_parser() -> argparse.ArgumentParser:
    """Argument parser; argparse exits with status 2 on usage errors."""
    p = argparse.ArgumentParser(prog="emphysema", description="CT emphysema biomarker (LAA%-950, Perc15, lung volume).")
    p.add_argument("--version", action="version", version=f"emphysema {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    q = sub.add_parser("quantify", help="quantify one chest CT (DICOM series folder or NIfTI file)")
    q.add_argument("input", type=Path, help="DICOM series folder or .nii/.nii.gz file")
    q.add_argument("--variant", choices=["fast", "accurate"], default="accurate",
                   help="fast: segmentation on a 2x decimated grid; accurate: full resolution + cluster measures")
    q.add_argument("--out", type=Path, required=True, help="output folder (written atomically)")
    q.add_argument("--device", choices=["cpu", "gpu"], default="cpu", help="gpu needs CuPy; numbers are identical")
    q.add_argument("--series", metavar="UID", default=None, help="SeriesInstanceUID when the folder holds several series")
    q.add_argument("--json", action="store_true", help="also print report.json to stdout")
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns 0 on success, 1 on bad input (message on stderr), 2 on usage errors."""
    args = build_parser().parse_args(argv)
    from .pipeline import quantify  # noqa: PLC0415 - keep --help fast

    try:
        report = quantify(args.input, args.variant, args.out, args.device, args.series)
    except EmphysemaError as exc:
        print(f"emphysema: error: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(f"LAA%-950 {report['laa950_percent']} %, Perc15 {report['perc15_hu']} HU, "
              f"lung volume {report['lung_volume_ml']} mL -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
