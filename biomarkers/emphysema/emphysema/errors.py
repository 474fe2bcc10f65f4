"""The single error type shown to users."""
from __future__ import annotations


class EmphysemaError(Exception):
    """Input or environment problem explained in words a CT technician understands."""
