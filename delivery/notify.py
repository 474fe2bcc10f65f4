"""The `delivery.notifier` plugin interface: tell other systems that a release or rollout changed.

A notification is best effort: `send` warns when a notifier fails and never fails the release itself.
Which notifiers run: `DELIVERY_NOTIFIERS` (comma-separated `delivery.notifier` entry points, default
`webhook`, which does nothing until `DELIVERY_NOTIFY_URLS` is set).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol, cast

from delivery import plugins
from delivery.audit import AuditEvent
from delivery.errors import DeliveryError
from delivery.secrets import scrub

GROUP = "delivery.notifier"
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Notification:
    """What happened (`promote`, `yank`, `recall`, `rollout-succeeded`, …), to what, by whom, and why."""

    event: str
    subject: str
    actor: str
    reason: str = ""
    at: datetime = field(default_factory=lambda: datetime.now(UTC))
    details: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, audited: AuditEvent) -> Notification:
        """The notification for an audited action (same event name, subject, actor, reason, details)."""
        return cls(audited.action, audited.subject, audited.actor, audited.reason, audited.at, dict(audited.details))

    def to_json(self) -> dict[str, Any]:
        """The JSON body receivers get."""
        return {"event": self.event, "subject": self.subject, "actor": self.actor, "reason": self.reason,
                "at": self.at.isoformat(), "details": dict(self.details)}


class Notifier(Protocol):
    """One way of telling the outside world; `delivery.notify_webhook.WebhookNotifier` is the built-in."""

    def notify(self, event: Notification) -> None: ...


def configured() -> list[Notifier]:
    """The notifiers `DELIVERY_NOTIFIERS` names (default: webhook), each built by its entry point."""
    wanted = [n.strip() for n in os.environ.get("DELIVERY_NOTIFIERS", "webhook").split(",") if n.strip()]
    return [cast(Notifier, plugins.factory(GROUP, name)()) for name in wanted]


def send(event: Notification) -> None:
    """Tell every configured notifier; a failure is a warning, never an error for the caller."""
    try:
        notifiers = configured()
    except DeliveryError as e:
        log.warning("notification %s about %s not sent: %s", event.event, event.subject, scrub(e.render()))
        return
    for notifier in notifiers:
        try:
            notifier.notify(event)
        except Exception as e:  # a plugin may fail in any way; the release it reports on already happened
            text = e.render() if isinstance(e, DeliveryError) else f"{type(e).__name__}: {e}"
            log.warning("notification %s about %s failed (%s): %s", event.event, event.subject,
                        type(notifier).__name__, scrub(text))
