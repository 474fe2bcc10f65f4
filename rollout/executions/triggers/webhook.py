"""`on: webhook`: a signed JSON body announces a study; checked here before anything is recorded.

Signature: header `X-Delivery-Signature: sha256=<hex HMAC-SHA256(key, TIMESTAMP + "." + BODY)>` with
`X-Delivery-Timestamp: <unix seconds>`. The timestamp must be within the rule's `max_age_seconds` of now, and each
body `id` is accepted once per rule (a replay inside the window is answered 409), so a captured request cannot be
replayed. Comparison is constant-time. Body: `{"id": "...", "input": "relative/path", "series_uid": "1.2.…"}`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, StringConstraints, ValidationError

from delivery.errors import DeliveryError
from delivery.secrets import Secret
from rollout.executions.triggers.rules import WebhookRule

SIGNATURE = "X-Delivery-Signature"
TIMESTAMP = "X-Delivery-Timestamp"


class WebhookRejected(DeliveryError):
    """A webhook request is refused; `status` is the HTTP answer."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class WebhookBody(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")]
    input: Annotated[str, StringConstraints(min_length=1, max_length=1024)]
    series_uid: Annotated[str, StringConstraints(pattern=r"^[0-9]+(\.[0-9]+)*$", max_length=64)] | None = None


@dataclass(frozen=True)
class Announcement:
    """A verified webhook: which study, under which delivery id."""

    id: str
    input_path: Path
    series_uid: str | None


def sign(key: Secret, timestamp: str, body: bytes) -> str:
    """The signature header value a sender computes."""
    mac = hmac.new(key.reveal().encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return f"sha256={mac.hexdigest()}"


def verify(rule: WebhookRule, key: Secret, headers: dict[str, str], body: bytes, now: float) -> Announcement:
    """The announcement in a signed body; raises WebhookRejected (401 signature/age, 400 body)."""
    timestamp = headers.get(TIMESTAMP.lower(), "")
    if not (timestamp.isascii() and timestamp.isdigit()) or len(timestamp) > 18:  # int() must be able to read it
        raise WebhookRejected(401, f"missing or malformed {TIMESTAMP}")
    if abs(now - int(timestamp)) > rule.max_age_seconds:
        raise WebhookRejected(401, f"{TIMESTAMP} is more than {rule.max_age_seconds}s away from now")
    if not hmac.compare_digest(sign(key, timestamp, body).encode(), headers.get(SIGNATURE.lower(), "").encode()):
        raise WebhookRejected(401, "bad signature")
    return _announcement(rule, body)


def _announcement(rule: WebhookRule, body: bytes) -> Announcement:
    try:
        parsed = WebhookBody.model_validate(json.loads(body))
    except (ValueError, ValidationError) as e:
        raise WebhookRejected(400, f"body is not a valid announcement: {_first_error(e)}") from None
    root = rule.inputs.resolve()
    study = (root / parsed.input).resolve()
    if not study.is_relative_to(root) or study == root:
        raise WebhookRejected(400, f"input must name one study inside the rule's inputs folder ({rule.inputs})")
    if not study.exists():
        raise WebhookRejected(400, f"input {parsed.input} does not exist under {rule.inputs}")
    return Announcement(parsed.id, study, parsed.series_uid)


def _first_error(e: Exception) -> str:
    if isinstance(e, ValidationError):
        item = e.errors(include_url=False)[0]
        return f"{'.'.join(str(p) for p in item['loc']) or 'body'}: {item['msg']}"
    return "not JSON"
