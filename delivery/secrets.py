"""Credentials as values that never print themselves, and a scrubber for anything that might."""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

from delivery.errors import ConfigError

_known: set[str] = set()
_lock = threading.Lock()
_MIN_SCRUB_LEN = 4


@dataclass(frozen=True)
class Secret:
    """A credential; `str()` and `repr()` never reveal it, `reveal()` does on purpose."""

    _value: str = field(repr=False)

    def __post_init__(self) -> None:
        remember(self._value)

    def reveal(self) -> str:
        """The raw value, for the one adapter call that must send it."""
        return self._value

    def __str__(self) -> str:
        return "***"

    def __repr__(self) -> str:
        return "Secret('***')"


def remember(value: str) -> None:
    """Register a value so that `scrub` removes it from any later output."""
    if len(value) >= _MIN_SCRUB_LEN:
        with _lock:
            _known.add(value)


def scrub(text: str) -> str:
    """Replace every remembered secret in `text` with `***`."""
    with _lock:
        values = sorted(_known, key=len, reverse=True)
    for value in values:
        text = text.replace(value, "***")
    return text


def from_env(name: str, *, required: bool = True) -> Secret | None:
    """A secret from environment variable `name` (or from the file named by `name`_FILE)."""
    file_var = os.environ.get(f"{name}_FILE")
    if file_var:
        try:
            return Secret(Path(file_var).read_text(encoding="utf-8").strip())
        except OSError as e:
            raise ConfigError(f"cannot read {name}_FILE ({file_var}): {e.strerror}") from e
    value = os.environ.get(name)
    if value:
        return Secret(value)
    if required:
        raise ConfigError(
            f"environment variable {name} is not set",
            hint=f"Export {name} (or {name}_FILE pointing at a file holding it) and run again.",
        )
    return None
