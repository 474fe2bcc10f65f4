"""Bearer tokens mapped to roles: stored as sha256 hashes in a YAML file, compared in constant time."""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from delivery.errors import ConfigError, UsageError
from delivery.paths import state_home

Role = Literal["execution-client", "release-manager", "developer", "auditor"]
ROLES: tuple[Role, ...] = get_args(Role)
TOKEN_PREFIX = "bdt_"  # noqa: S105 (a marker that makes leaked tokens greppable, not a secret)
NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")


class TokenEntry(BaseModel):
    """One token as stored: who, which role, and the sha256 of the token (never the token itself)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=NAME.pattern)
    role: Role
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


class TokenFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    tokens: tuple[TokenEntry, ...] = ()


@dataclass(frozen=True)
class Principal:
    """Who is calling: the token's name and role."""

    name: str
    role: Role


def default_tokens_path() -> Path:
    """`$DELIVERY_API_TOKENS`, else `$DELIVERY_HOME/api-tokens.yaml`."""
    explicit = os.environ.get("DELIVERY_API_TOKENS")
    return Path(explicit) if explicit else state_home() / "api-tokens.yaml"


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def read_tokens(path: Path) -> TokenFile:
    """The token file (an empty one when it does not exist yet)."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        return TokenFile()
    except (OSError, yaml.YAMLError) as e:
        raise ConfigError(f"cannot read the API token file {path}: {e}") from e
    try:
        return TokenFile.model_validate(data)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ConfigError(f"{path}: {where}: {first['msg']}", hint="Fix the file or re-create it with "
                          "`rollout tokens add`.") from e


def add_token(path: Path, name: str, role: str) -> str:
    """Create a token for `name` with `role`, store only its hash, and return it (the only time it is seen)."""
    if not NAME.match(name):
        raise UsageError(f"token name {name!r} must match {NAME.pattern}")
    if role not in ROLES:
        raise UsageError(f"unknown role {role!r}", hint=f"Choose one of: {', '.join(ROLES)}.")
    current = read_tokens(path)
    if any(t.name == name for t in current.tokens):
        raise UsageError(f"a token named {name} already exists in {path}",
                         hint=f"Remove it first with `rollout tokens remove {name}`.")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    entry = TokenEntry(name=name, role=role, sha256=token_hash(token))
    _write(path, TokenFile(tokens=(*current.tokens, entry)))
    return token


def remove_token(path: Path, name: str) -> None:
    """Revoke one token by name."""
    current = read_tokens(path)
    kept = tuple(t for t in current.tokens if t.name != name)
    if len(kept) == len(current.tokens):
        raise UsageError(f"no token named {name} in {path}")
    _write(path, TokenFile(tokens=kept))


def _write(path: Path, data: TokenFile) -> None:
    """Atomic, owner-only write (hashes are not secrets, but nobody else needs to see who holds a token)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        yaml.safe_dump(data.model_dump(mode="json"), out, sort_keys=False)
    tmp.replace(path)


class TokenStore:
    """The token file, re-read when it changes, so `rollout tokens add` takes effect without a restart."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._stamp: tuple[int, int] | None = None
        self._entries: tuple[TokenEntry, ...] = ()
        self._refresh()

    def authenticate(self, token: str) -> Principal | None:
        """The principal holding `token`, or None; every entry is compared, each in constant time."""
        return self.principal_for_hash(token_hash(token))

    def principal_for_hash(self, sha256: str) -> Principal | None:
        """The principal whose token hashes to `sha256` (a status-page session's), or None once it is revoked."""
        found: TokenEntry | None = None
        for entry in self._current():
            if hmac.compare_digest(entry.sha256, sha256):
                found = entry
        return Principal(found.name, found.role) if found else None

    def ready(self) -> bool:
        """At least one token is configured."""
        return bool(self._current())

    def _current(self) -> tuple[TokenEntry, ...]:
        self._refresh()
        return self._entries

    def _refresh(self) -> None:
        try:
            info = self.path.stat()
            stamp = (info.st_mtime_ns, info.st_size)
        except FileNotFoundError:
            stamp = (0, 0)
        with self._lock:
            if stamp != self._stamp:
                self._entries = read_tokens(self.path).tokens
                self._stamp = stamp
