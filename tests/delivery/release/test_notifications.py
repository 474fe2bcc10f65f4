"""Promote and yank announce themselves to webhook receivers; a receiver that is down changes nothing."""

from __future__ import annotations

import logging

import pytest

from delivery.cli import main
from tests.delivery.release.conftest import Release
from tests.support.notify_receiver import notify_receiver
from tests.support.oci import attest, push_image

SECRET = "release-hook-secret"


def _notify_to(monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    monkeypatch.setenv("DELIVERY_NOTIFY_URLS", url)
    monkeypatch.setenv("DELIVERY_NOTIFY_SECRET", SECRET)
    monkeypatch.delenv("DELIVERY_NOTIFY_SECRET_ENV", raising=False)
    monkeypatch.delenv("DELIVERY_NOTIFIERS", raising=False)


def test_promote_and_yank_are_announced_signed(release: Release, monkeypatch: pytest.MonkeyPatch) -> None:
    env = release.write_environment()
    manifest = push_image(release.client, env.repository("alpha"), "1.0.0")
    attest(release.client, env.repository("alpha"), manifest.digest, release.keys)
    with notify_receiver(SECRET) as receiver:
        _notify_to(monkeypatch, receiver.url)
        assert main(["promote", "alpha", "1.0.0", "--to", "local"]) == 0
        assert main(["yank", "alpha", "1.0.0", "--reason", "wrong calibration"]) == 0
        assert main(["yank", "alpha", "1.0.0", "--reason", "wrong calibration"]) == 0  # already yanked: no event
    assert receiver.events() == ["promote", "yank"]
    promoted, yanked = (r.body for r in receiver.received)
    assert promoted["subject"] == "local/alpha:candidate" and promoted["details"]["digest"] == manifest.digest
    assert yanked["reason"] == "wrong calibration" and yanked["details"]["channels"] == ["candidate"]


def test_a_down_receiver_does_not_fail_a_promote(release: Release, monkeypatch: pytest.MonkeyPatch,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    env = release.write_environment()
    manifest = push_image(release.client, env.repository("alpha"), "1.1.0")
    attest(release.client, env.repository("alpha"), manifest.digest, release.keys)
    _notify_to(monkeypatch, "http://127.0.0.1:9/down")
    monkeypatch.setattr("time.sleep", lambda _: None)
    with caplog.at_level(logging.WARNING, logger="delivery.notify"):
        assert main(["promote", "alpha", "1.1.0", "--to", "local"]) == 0
    assert release.store.read("local", "alpha").state.channels["candidate"].digest == manifest.digest
    assert "notification promote about local/alpha:candidate failed" in caplog.text
