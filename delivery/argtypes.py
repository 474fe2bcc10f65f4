"""Argparse types for numbers: a negative, absurd or non-finite value is a usage error (exit 2) naming the flag.

argparse prefixes the message with the flag (`argument --keep: …`), so each type only says what is allowed.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable


def bounded_int(lo: int, hi: int) -> Callable[[str], int]:
    """A whole number in [lo, hi]."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if not lo <= value <= hi:
            raise argparse.ArgumentTypeError(f"{value} is out of range: allowed {lo} to {hi}")
        return value

    parse.__name__ = "whole number"  # argparse names the type in its "invalid … value" message
    return parse


def bounded_float(lo: float, hi: float, *, above_lo: bool = False) -> Callable[[str], float]:
    """A finite number in [lo, hi] (or (lo, hi] with `above_lo`): nan and inf never pass."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        low_ok = value > lo if above_lo else value >= lo
        if not (math.isfinite(value) and low_ok and value <= hi):
            allowed = f"more than {lo:g}" if above_lo else f"at least {lo:g}"
            raise argparse.ArgumentTypeError(f"{text} is out of range: allowed {allowed} and at most {hi:g}")
        return value

    parse.__name__ = "number"
    return parse
