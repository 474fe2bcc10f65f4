"""Deployment environments (`manifests/environments/<env>.yaml`): registry, Nomad target, channels, freezes, gates."""

from __future__ import annotations

import json
import os
from datetime import datetime, time
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from delivery.errors import ConfigError, ManifestError
from delivery.manifest.located_model import validate_model
from delivery.manifest.model import API_VERSION, IMAGE_PATH, Name
from delivery.manifest.source import Located, load_file

DEFAULT_DIR = Path(__file__).resolve().parents[1] / "manifests" / "environments"
SCHEMA_ID = "https://biomarker-delivery.invalid/schemas/environment.schema.json"
REGISTRY = r"^(local|[A-Za-z0-9.-]+(:[0-9]{1,5})?)$"
CLOCK = r"^([01][0-9]|2[0-3]):[0-5][0-9]$|^24:00$"
ENV_VAR = r"^[A-Z][A-Z0-9_]*$"
Day = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
DAYS: tuple[Day, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
Gate = Literal["attestation", "tests", "scan"]
GATES: tuple[Gate, ...] = ("attestation", "tests", "scan")


def _zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as e:
        raise ValueError(f"unknown time zone {value!r} (use an IANA name such as Europe/Amsterdam)") from e
    return value


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RegistryTarget(_Strict):
    """A registry and the repository prefix biomarker images live under (`PREFIX/NAME`)."""

    registry: str = Field(pattern=REGISTRY, description="HOST:PORT, or `local` for the embedded default's registry")
    repository_prefix: str = Field("biomarkers", pattern=IMAGE_PATH, max_length=200)
    credentials_env: str = Field("DELIVERY_REGISTRY", pattern=ENV_VAR,
                                 description="registry user from <this>_USER, password from <this>_PASSWORD")


class NomadTarget(_Strict):
    """Where this environment's jobs run."""

    address: str = Field(pattern=r"^https?://[^\s/]+(/.*)?$", description="Nomad HTTP API address")
    namespace: str = Field("default", pattern=r"^[A-Za-z0-9_-]{1,128}$")


class FreezeWindow(_Strict):
    """A recurring window in which promotions into the environment are refused (unless forced, audited)."""

    name: Name
    days: list[Day] = Field(default_factory=lambda: list(DAYS), min_length=1)
    start: str = Field(pattern=CLOCK, description="HH:MM local time, inclusive")
    end: str = Field(pattern=CLOCK, description="HH:MM local time, exclusive; 24:00 is the end of the day")
    timezone: Annotated[str, AfterValidator(_zone)] = "UTC"

    def active(self, now: datetime) -> bool:
        """Whether `now` (timezone-aware) falls inside the window."""
        local = now.astimezone(ZoneInfo(self.timezone))
        if DAYS[local.weekday()] not in self.days:
            return False
        return _clock(self.start) <= local.time() < _clock(self.end)


def _clock(value: str) -> time:
    return time.max if value == "24:00" else time.fromisoformat(value)


class Environment(_Strict):
    """One deployment environment; a release moves between environments by digest."""

    api_version: Literal["delivery/v1"] = Field(alias="apiVersion")
    kind: Literal["Environment"]
    name: Name
    description: str = ""
    registry: str = Field(pattern=REGISTRY, description="HOST:PORT, or `local` for the embedded default's registry")
    repository_prefix: str = Field("biomarkers", pattern=IMAGE_PATH, max_length=200)
    credentials_env: str = Field("DELIVERY_REGISTRY", pattern=ENV_VAR,
                                 description="registry user from <this>_USER, password from <this>_PASSWORD")
    promote_from: RegistryTarget | None = Field(None, description="where promotions copy from; default: this registry")
    nomad: NomadTarget
    channels: list[Name] = Field(default_factory=lambda: ["candidate", "stable"], min_length=1)
    freeze_windows: list[FreezeWindow] = Field(default_factory=list)
    required_gates: list[Gate] = Field(default_factory=lambda: list(GATES))
    clinical_channels: list[Name] = Field(
        default_factory=lambda: ["stable"],
        description="channels that serve clinical work: promoting an image whose vulnerabilities were not "
                    "(freshly) scanned into one needs --allow-unscanned --reason (audited)")

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    def repository(self, name: str) -> str:
        """The image repository of biomarker `name` in this environment."""
        return f"{self.repository_prefix}/{name}"

    def source(self) -> RegistryTarget:
        """Where promotions into this environment copy from."""
        return self.promote_from or RegistryTarget(registry=self.registry, repository_prefix=self.repository_prefix)

    def is_clinical(self, channel: str) -> bool:
        """Whether `channel` serves clinical work (only scanned images, unless an audited override)."""
        return channel in self.clinical_channels

    def active_window(self, now: datetime) -> FreezeWindow | None:
        """The freeze window `now` falls in, if any."""
        return next((w for w in self.freeze_windows if w.active(now)), None)


def environments_dir() -> Path:
    """`DELIVERY_ENVIRONMENTS`, else the repository's `manifests/environments`."""
    explicit = os.environ.get("DELIVERY_ENVIRONMENTS")
    return Path(explicit) if explicit else DEFAULT_DIR


def load_environment(name: str, directory: Path | None = None) -> Environment:
    """Load and validate `<directory>/<name>.yaml`.

    Raises:
        ConfigError: no such environment.
        ManifestError: the file is invalid (every problem located FILE:LINE:COLUMN).
    """
    folder = directory or environments_dir()
    path = folder / f"{name}.yaml"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in folder.glob("*.yaml"))) or "none"
        raise ConfigError(f"no environment {name!r} in {folder} (known: {known})",
                          hint="Create manifests/environments/NAME.yaml or set DELIVERY_ENVIRONMENTS.")
    environment = parse_environment(load_file(path))
    if environment.name != name:
        located = load_file(path)
        raise ManifestError([located.problem(("name",), f"must equal the file name `{name}`")])
    return environment


def parse_environment(located: Located) -> Environment:
    """Validate located YAML into an Environment, reporting every problem with its position."""
    return validate_model(located, Environment)


def environment_schema() -> dict[str, Any]:
    """JSON Schema (draft 2020-12) of environment files."""
    schema = Environment.model_json_schema(by_alias=True)
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": SCHEMA_ID, **schema}


def render_schema() -> str:
    """The exact text of `manifests/environment.schema.json`."""
    return json.dumps(environment_schema(), indent=2, sort_keys=True) + "\n"


__all__ = ["API_VERSION", "Environment", "FreezeWindow", "load_environment", "render_schema"]
