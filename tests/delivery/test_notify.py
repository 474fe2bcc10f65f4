"""Notifications: signed webhook POSTs, bounded retries, and failures that only warn."""

from __future__ import annotations

import logging
import socket
from datetime import UTC, datetime

import pytest

from delivery.notify import Notification, send
from delivery.notify_webhook import NotifyError, WebhookNotifier
from delivery.secrets import Secret
from tests.support.notify_receiver import notify_receiver

SECRET = "s3cret-for-hmac"
EVENT = Notification("promote", "local/alpha:candidate", "alice", "ship it",
                     datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC), {"version": "1.0.0", "digest": "sha256:" + "a" * 64})


def _configure(monkeypatch: pytest.MonkeyPatch, *urls: str) -> None:
    monkeypatch.setenv("DELIVERY_NOTIFY_URLS", ",".join(urls))
    monkeypatch.setenv("DELIVERY_NOTIFY_SECRET_ENV", "HOOK_SECRET")
    monkeypatch.setenv("HOOK_SECRET", SECRET)
    monkeypatch.delenv("DELIVERY_NOTIFIERS", raising=False)


def _free_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}/down"


def test_every_configured_receiver_gets_the_event_signed_with_the_named_secret(
    monkeypatch: pytest.MonkeyPatch
) -> None:
    with notify_receiver(SECRET) as one, notify_receiver(SECRET) as two:
        _configure(monkeypatch, one.url, two.url)
        send(EVENT)
    for receiver in (one, two):
        [got] = receiver.received
        assert got.signature_ok
        assert got.body == {"event": "promote", "subject": "local/alpha:candidate", "actor": "alice",
                            "reason": "ship it", "at": "2025-01-02T03:04:05+00:00",
                            "details": {"version": "1.0.0", "digest": "sha256:" + "a" * 64}}
        assert got.headers["X-Delivery-Event"] == "promote"


def test_a_receiver_with_another_secret_rejects_the_signature(monkeypatch: pytest.MonkeyPatch) -> None:
    with notify_receiver("other-secret") as receiver:
        notifier = WebhookNotifier([receiver.url], Secret(SECRET), sleep=lambda _: None)
        with pytest.raises(NotifyError, match="answered 401"):
            notifier.notify(EVENT)
    assert receiver.attempts == 1  # a 4xx is not retried
    assert not receiver.received[0].signature_ok


def test_5xx_is_retried_a_bounded_number_of_times() -> None:
    with notify_receiver(SECRET) as receiver:
        receiver.fail_next = 2
        WebhookNotifier([receiver.url], Secret(SECRET), attempts=3, sleep=lambda _: None).notify(EVENT)
        assert receiver.events() == ["promote"] and receiver.attempts == 3
        receiver.fail_next = 5
        with pytest.raises(NotifyError, match="answered 503 after 3 attempt"):
            WebhookNotifier([receiver.url], Secret(SECRET), attempts=3, sleep=lambda _: None).notify(EVENT)
        assert receiver.attempts == 6


def test_a_down_receiver_warns_without_the_secret_and_does_not_raise(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr("time.sleep", lambda _: None)
    down = _free_port_url()
    with notify_receiver(SECRET) as up:
        _configure(monkeypatch, down + "?token=" + SECRET, up.url)
        with caplog.at_level(logging.WARNING, logger="delivery.notify"):
            send(EVENT)
    assert up.events() == ["promote"]  # one receiver down does not stop the others
    assert "notification promote about local/alpha:candidate failed" in caplog.text
    assert "/down: ConnectionError" in caplog.text and SECRET not in caplog.text


def test_urls_without_the_secret_variable_warn_and_send_nothing(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    with notify_receiver(SECRET) as receiver:
        _configure(monkeypatch, receiver.url)
        monkeypatch.delenv("HOOK_SECRET")
        with caplog.at_level(logging.WARNING, logger="delivery.notify"):
            send(EVENT)
    assert receiver.attempts == 0
    assert "environment variable HOOK_SECRET is not set" in caplog.text


def test_an_unknown_notifier_warns_with_the_installed_names(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("DELIVERY_NOTIFIERS", "slak")
    with caplog.at_level(logging.WARNING, logger="delivery.notify"):
        send(EVENT)
    assert "no delivery.notifier plugin named 'slak' (installed: webhook" in caplog.text


def test_nothing_configured_sends_nothing(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.delenv("DELIVERY_NOTIFY_URLS", raising=False)
    monkeypatch.delenv("DELIVERY_NOTIFIERS", raising=False)
    with caplog.at_level(logging.WARNING):
        send(EVENT)
    assert caplog.text == ""
