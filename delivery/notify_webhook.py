"""Adapter for webhook receivers: the `webhook` notifier POSTs signed JSON (HMAC-SHA256, like GitHub's)."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import time
import uuid
from collections.abc import Callable, Sequence
from urllib.parse import urlsplit

import requests

from delivery.errors import ExternalServiceError
from delivery.notify import Notification
from delivery.secrets import Secret, from_env, scrub

SIGNATURE_HEADER = "X-Delivery-Signature-256"
URLS_VAR = "DELIVERY_NOTIFY_URLS"
SECRET_ENV_VAR = "DELIVERY_NOTIFY_SECRET_ENV"  # noqa: S105 - names the variable that holds the secret
DEFAULT_SECRET_VAR = "DELIVERY_NOTIFY_SECRET"  # noqa: S105 - a variable name, not a secret


class NotifyError(ExternalServiceError):
    """A webhook receiver refused the notification or could not be reached."""

    service = "webhook receiver"


def signature(secret: Secret, body: bytes) -> str:
    """The `X-Delivery-Signature-256` value: `sha256=` and the hex HMAC-SHA256 of the body."""
    return "sha256=" + hmac.new(secret.reveal().encode(), body, hashlib.sha256).hexdigest()


class WebhookNotifier:
    """POSTs each notification to every URL; retries 5xx and unreachable receivers a bounded number of times."""

    def __init__(self, urls: Sequence[str], secret: Secret | None, *, timeout: float = 5.0, attempts: int = 3,
                 backoff: float = 0.5, sleep: Callable[[float], None] | None = None) -> None:
        self.urls, self.secret = tuple(urls), secret
        self.timeout, self.attempts, self.backoff, self.sleep = timeout, attempts, backoff, sleep

    @classmethod
    def from_env(cls) -> WebhookNotifier:
        """URLs from `DELIVERY_NOTIFY_URLS`; the secret from the variable `DELIVERY_NOTIFY_SECRET_ENV` names.

        Raises:
            ConfigError: URLs are set but the secret variable is not.
        """
        urls = [u.strip() for u in os.environ.get(URLS_VAR, "").split(",") if u.strip()]
        secret = from_env(os.environ.get(SECRET_ENV_VAR, DEFAULT_SECRET_VAR), required=bool(urls))
        return cls(urls, secret)

    def notify(self, event: Notification) -> None:
        """Deliver to every URL, then report the ones that failed.

        Raises:
            NotifyError: a receiver answered 4xx, kept answering 5xx, or could not be reached.
        """
        if not self.urls or self.secret is None:
            return
        body = scrub(json.dumps(event.to_json(), sort_keys=True, separators=(",", ":"))).encode()
        headers = {"Content-Type": "application/json", "X-Delivery-Event": event.event,
                   "X-Delivery-Delivery": uuid.uuid4().hex, SIGNATURE_HEADER: signature(self.secret, body)}
        failures = []
        for url in self.urls:
            try:
                self._post(url, body, headers)
            except NotifyError as e:
                failures.append(e.message)
        if failures:
            raise NotifyError("; ".join(failures), hint=f"Check the receivers in {URLS_VAR}.")

    def _post(self, url: str, body: bytes, headers: dict[str, str]) -> None:
        problem = ""
        for attempt in range(self.attempts):
            try:
                response = requests.post(url, data=body, headers=headers, timeout=self.timeout)
            except requests.RequestException as e:
                problem = f"{_shown(url)}: {type(e).__name__} (unreachable or too slow)"
            else:
                if response.status_code < 300:
                    return
                problem = f"{_shown(url)} answered {response.status_code}"
                if response.status_code < 500:
                    raise NotifyError(problem, status=response.status_code)
            if attempt + 1 < self.attempts:
                (self.sleep or time.sleep)(self.backoff * 2**attempt)
        raise NotifyError(f"{problem} after {self.attempts} attempt(s)")


def _shown(url: str) -> str:
    """The URL without user info or query, which may carry a receiver's token."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}{':' + str(parts.port) if parts.port else ''}{parts.path}"
