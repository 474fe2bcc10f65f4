"""The trigger rules file: validated once at the edge (pydantic), every problem located FILE:LINE:COLUMN."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    StringConstraints,
    Tag,
    model_validator,
)

from delivery.manifest.located_model import load_model
from delivery.manifest.model import Name
from rollout.environment import default_environment

PIN = re.compile(r"^[a-z][-a-z0-9]*@\S{1,200}$")


def _pin(value: str) -> str:
    if not PIN.match(value):
        raise ValueError(f"{value!r} is not NAME@SPEC (e.g. emphysema@stable, emphysema@1.4.2)")
    return value


Pin = Annotated[str, AfterValidator(_pin)]
EnvName = Annotated[str, StringConstraints(pattern=r"^[A-Z_][A-Z0-9_]*$", max_length=100)]
MIN_POLL_S, MAX_POLL_S = 0.1, 600.0


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Rule(_Strict):
    name: Name
    submit: Pin = Field(description="NAME@SPEC submitted for every event, e.g. emphysema@stable")
    output: Path = Field(description="outputs go to OUTPUT/<study name or webhook id>/")
    variant: str | None = None
    environment: str = Field(default_factory=default_environment)
    cohort: str | None = None

    @property
    def biomarker(self) -> str:
        return self.submit.partition("@")[0]

    @property
    def spec(self) -> str:
        return self.submit.partition("@")[2]


class FolderRule(_Rule):
    """`on: file_created`: each new entry (file or folder) of `folder` is one study, once it is stable."""

    on: Literal["file_created"]
    folder: Path
    poll_seconds: float = Field(5.0, ge=MIN_POLL_S, le=MAX_POLL_S)


class WebhookRule(_Rule):
    """`on: webhook`: POST /hooks/<name> with an HMAC-SHA256-signed JSON body naming a study under `inputs`."""

    on: Literal["webhook"]
    inputs: Path = Field(description="studies named by the body's `input` must lie under this folder")
    secret_env: EnvName = Field(description="environment variable holding the HMAC key (or NAME_FILE)")
    max_age_seconds: int = Field(300, ge=10, le=3600)
    max_body_bytes: int = Field(65536, ge=256, le=1 << 20)


def _kind(value: Any) -> str | None:
    """Which rule model applies; tags are class names so located errors skip them like other union labels."""
    kind = value.get("on") if isinstance(value, dict) else getattr(value, "on", None)
    return {"file_created": "FolderRule", "webhook": "WebhookRule"}.get(str(kind))


Rule = Annotated[Annotated[FolderRule, Tag("FolderRule")] | Annotated[WebhookRule, Tag("WebhookRule")],
                 Discriminator(_kind, custom_error_type="rule_kind",
                               custom_error_message="`on` must be file_created or webhook")]


class TriggerFile(_Strict):
    """`kind: Triggers`: rules, and where the webhook endpoint listens."""

    apiVersion: Literal["delivery/v1"]
    kind: Literal["Triggers"]
    listen: str = Field("127.0.0.1:8787", pattern=r"^[\w.-]+:\d{1,5}$")
    rules: tuple[Rule, ...]

    @model_validator(mode="after")
    def _unique_names(self) -> TriggerFile:
        if not self.rules:  # checked here: a length error would also fire beside every invalid rule
            raise ValueError("no rules: declare at least one under `rules:`")
        names = [r.name for r in self.rules]
        duplicate = next((n for n in names if names.count(n) > 1), None)
        if duplicate:
            raise ValueError(f"rule name {duplicate!r} is used twice; names identify events and webhook paths")
        return self

    def rule(self, name: str) -> FolderRule | WebhookRule | None:
        return next((r for r in self.rules if r.name == name), None)


def load_rules(path: Path) -> TriggerFile:
    """Load and validate a rules file; raises ManifestError with every located problem."""
    return load_model(path, TriggerFile)
