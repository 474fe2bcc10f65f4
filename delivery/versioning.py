"""Semantic versions of biomarker images, their registry tags, and version ranges.

Range semantics (npm-style, documented in docs/releases.md):

- `1.4.2` / `=1.4.2`: exactly that version (build metadata, if given, must match too).
- `1.4`, `1`, `1.x`, `1.4.*`: any version with that prefix (`>=1.4.0 <1.5.0`).
- `~1.4.2` `>=1.4.2 <1.5.0`; `~1.4` `>=1.4.0 <1.5.0`; `~1` `>=1.0.0 <2.0.0`.
- `^1.4.2` `>=1.4.2 <2.0.0`; `^0.4.2` `>=0.4.2 <0.5.0`; `^0.0.3` `=0.0.3`; `^0` `<1.0.0`; `^1` `>=1.0.0 <2.0.0`.
- `>=1.2 <2` comparators separated by spaces all apply; `A || B` matches either side; `*` matches everything.
- Pre-releases match only when asked for: a pre-release version is considered only if a comparator of the same
  alternative names a pre-release of the same MAJOR.MINOR.PATCH (`>=2.0.0-rc.1` can give `2.0.0-rc.3`,
  never `2.1.0-beta`). `*` and `^1` never give a pre-release.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import semver

from delivery.errors import UsageError

Version = semver.Version

# [0-9], never \d: Arabic-Indic or other non-ASCII digits would otherwise read as 1.0.0 and name a tag nobody
# pushed.
_PARTIAL = re.compile(r"^v?(?P<major>[0-9]+|[xX*])(?:\.(?P<minor>[0-9]+|[xX*]))?(?:\.(?P<patch>[0-9]+|[xX*]))?$")
RESERVED_SUFFIXES = (".yank", ".att", ".sig", ".sbom")
_COMPARATOR = re.compile(r"^(?P<op>>=|<=|>|<|=|~|\^)?\s*(?P<version>\S+)$")
_OPS: dict[str, Callable[[Version, Version], bool]] = {
    ">=": operator.ge, "<=": operator.le, ">": operator.gt, "<": operator.lt, "=": operator.eq,
}


def parse_version(text: str) -> Version | None:
    """A full semantic version (`1.4.2`, `1.4.2-rc.1+build.7`, optional leading `v`), or None."""
    if not text.isascii():  # semver's grammar is ASCII; never let a locale's digits through
        return None
    try:
        return Version.parse(text.removeprefix("v"))
    except (ValueError, TypeError):
        return None


def require_version(text: str) -> Version:
    """Like parse_version, but a usage error when `text` is not a full semantic version."""
    version = parse_version(text)
    if version is None:
        raise UsageError(f"{text!r} is not a semantic version", hint="Use MAJOR.MINOR.PATCH, e.g. 1.4.2 or 2.0.0-rc.1.")
    return version


def tag_of(version: Version) -> str:
    """The registry tag of a version: `+` is not allowed in tags, so build metadata follows `_` (as Helm does)."""
    return str(version).replace("+", "_")


def version_of_tag(tag: str) -> Version | None:
    """The version a registry tag names, or None for other tags (`latest`, `sha256-….att`, `1.0.0.yank`).

    `1.0.0-rc.1.yank` would be valid semver: the `.yank`/`.att`/`.sig` suffixes are reserved for records.
    """
    if tag.count("_") > 1 or tag.startswith("v") or tag.endswith(RESERVED_SUFFIXES):
        return None
    return parse_version(tag.replace("_", "+"))


def sort_key(version: Version) -> tuple[Version, str]:
    """Total order: semver precedence, then build metadata text (precedence ignores it)."""
    return (version, version.build or "")


def newest(versions: Iterable[Version]) -> Version | None:
    """The highest version, or None."""
    return max(versions, key=sort_key, default=None)


@dataclass(frozen=True)
class Comparator:
    """One `OP VERSION` test."""

    op: str
    version: Version

    def test(self, candidate: Version) -> bool:
        if self.op == "=" and self.version.build:
            return candidate == self.version and candidate.build == self.version.build
        return _OPS[self.op](candidate, self.version)


@dataclass(frozen=True)
class Range:
    """A parsed version range: alternatives (`||`) of comparator sets that must all hold."""

    text: str
    alternatives: tuple[tuple[Comparator, ...], ...]

    def matches(self, version: Version) -> bool:
        """Whether `version` satisfies the range (pre-releases only when asked for)."""
        return any(_set_matches(comparators, version) for comparators in self.alternatives)

    def best(self, versions: Iterable[Version]) -> Version | None:
        """The highest version that satisfies the range."""
        return newest(v for v in versions if self.matches(v))

    @property
    def exact(self) -> Version | None:
        """The one version an `=V` range names, else None."""
        if len(self.alternatives) == 1 and len(self.alternatives[0]) == 1 and self.alternatives[0][0].op == "=":
            return self.alternatives[0][0].version
        return None


def _set_matches(comparators: tuple[Comparator, ...], version: Version) -> bool:
    if not all(c.test(version) for c in comparators):
        return False
    if not version.prerelease:
        return True
    core = (version.major, version.minor, version.patch)
    return any(c.version.prerelease and (c.version.major, c.version.minor, c.version.patch) == core
               for c in comparators)


def parse_range(text: str) -> Range:
    """Parse a range such as `^1`, `~1.4`, `>=1.2 <2`, `1.4.2`, `*` (see the module docstring).

    Raises:
        UsageError: not a range this grammar knows.
    """
    alternatives = tuple(_parse_set(part.strip(), text) for part in text.split("||"))
    return Range(text.strip(), alternatives)


def _parse_set(text: str, whole: str) -> tuple[Comparator, ...]:
    tokens = re.sub(r"(>=|<=|>|<|=|~|\^)\s+", r"\1", text).split()
    comparators: list[Comparator] = []
    for token in tokens or ["*"]:
        comparators += _parse_comparator(token, whole)
    return tuple(comparators)


def _parse_comparator(token: str, whole: str) -> list[Comparator]:
    match = _COMPARATOR.match(token)
    if not match:
        raise _bad_range(whole)
    op, body = match["op"] or "", match["version"]
    full = parse_version(body)
    if full is not None:
        return _full(op, full)
    partial = _PARTIAL.match(body)
    if not partial:
        raise _bad_range(whole)
    parts = [None if p is None or p in "xX*" else int(p) for p in partial.group("major", "minor", "patch")]
    return _partial(op, parts)


def _full(op: str, version: Version) -> list[Comparator]:
    if op in ("", "="):
        return [Comparator("=", version)]
    if op == "~":
        return [Comparator(">=", version), Comparator("<", version.bump_minor())]
    if op == "^":
        return [Comparator(">=", version), Comparator("<", _caret_ceiling(version))]
    return [Comparator(op, version)]


def _caret_ceiling(version: Version) -> Version:
    if version.major:
        return version.bump_major()
    if version.minor:
        return version.bump_minor()
    return version.bump_patch()


def _partial(op: str, parts: list[int | None]) -> list[Comparator]:
    """Comparators for a version with missing or wildcard parts (`1`, `1.4`, `1.x`, `*`)."""
    major, minor = parts[0], parts[1] if parts[0] is not None else None
    if major is None:
        return [] if op in ("", "=", "~", "^", ">=", "<=") else [Comparator("<", Version(0, 0, 0))]
    low = Version(major, minor or 0, 0)
    next_up = Version(major + 1, 0, 0) if minor is None else Version(major, minor + 1, 0)
    if op == "^" and minor is not None and major == 0:
        next_up = Version(0, minor + 1, 0)
    if op == "^" and major > 0:
        next_up = Version(major + 1, 0, 0)
    return {
        "": [Comparator(">=", low), Comparator("<", next_up)],
        "=": [Comparator(">=", low), Comparator("<", next_up)],
        "~": [Comparator(">=", low), Comparator("<", next_up)],
        "^": [Comparator(">=", low), Comparator("<", next_up)],
        ">=": [Comparator(">=", low)],
        ">": [Comparator(">=", next_up)],
        "<": [Comparator("<", low)],
        "<=": [Comparator("<", next_up)],
    }[op]


def _bad_range(text: str) -> UsageError:
    return UsageError(f"{text!r} is not a version range",
                      hint="Use a version (1.4.2), a range (~1.4, ^1, >=1.2 <2, *), a channel (@stable) or a digest.")
