"""Resolution of every kind of SPEC and yank semantics, against the real registry through the CLI."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from delivery.cli import main
from delivery.release.resolve import resolve
from delivery.release.state import Freeze
from tests.delivery.release.conftest import Release
from tests.support.oci import push_image

VERSIONS = ("0.9.0", "1.0.0", "1.1.0", "1.2.0-rc.1", "2.0.0-beta.1")


def _resolve(capsys: pytest.CaptureFixture[str], pin: str, *extra: str) -> dict[str, object]:
    code = main(["resolve", pin, "--json", *extra])
    out = capsys.readouterr()
    assert code == 0, out.err
    answer: dict[str, object] = json.loads(out.out)
    return answer


@pytest.fixture
def alpha(release: Release) -> dict[str, str]:
    """Five versions of `alpha` pushed (gates are test_promote's subject, so none here); version -> digest."""
    env = release.write_environment(required_gates=[], clinical_channels=[])
    digests = {}
    for version in VERSIONS:
        digests[version] = push_image(release.client, env.repository("alpha"), version).digest
    return digests


def test_every_kind_of_spec_resolves_to_a_full_reference_and_names_its_rule(
        release: Release, alpha: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    image = f"{release.registry.host}/{release.prefix}/alpha"
    cases = {
        "alpha@1.0.0": ("1.0.0", "exact version"),
        "alpha@^1": ("1.1.0", "highest non-yanked version satisfying ^1"),
        "alpha@~1.0": ("1.0.0", "highest non-yanked"),
        "alpha@>=0.9 <1.1": ("1.0.0", "highest non-yanked"),
        "alpha@*": ("1.1.0", "highest non-yanked"),
        "alpha@>=1.2.0-rc.1": ("1.2.0-rc.1", "highest non-yanked"),
        f"alpha@{alpha['0.9.0']}": ("0.9.0", "digest"),
    }
    for pin, (version, rule) in cases.items():
        answer = _resolve(capsys, pin)
        assert answer["version"] == version, pin
        assert str(answer["rule"]).startswith(rule), pin
        assert answer["reference"] == f"{image}:{version}@{alpha[version]}"
    assert main(["promote", "alpha", "0.9.0", "--to", "local", "--channel", "stable"]) == 0
    capsys.readouterr()
    channel = _resolve(capsys, "alpha@stable", "--env", "local")
    assert channel["version"] == "0.9.0" and "channel stable of local" in str(channel["rule"])


def test_a_missing_version_or_empty_channel_is_a_clear_failure(
        release: Release, alpha: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["resolve", "alpha@3.0.0"]) == 1
    assert "no version 3.0.0" in capsys.readouterr().err
    assert main(["resolve", "alpha@candidate"]) == 1
    assert "points at nothing" in capsys.readouterr().err
    assert main(["resolve", "alpha"]) == 2


def test_a_yanked_version_leaves_ranges_but_still_resolves_when_pinned(
        release: Release, alpha: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["yank", "alpha", "1.1.0", "--reason", "wrong HU threshold"]) == 0
    assert "yanked alpha 1.1.0" in capsys.readouterr().out
    assert _resolve(capsys, "alpha@^1")["version"] == "1.0.0"
    pinned = _resolve(capsys, "alpha@1.1.0")
    assert pinned["digest"] == alpha["1.1.0"]
    assert "yanked" in str(pinned["warnings"]) and "wrong HU threshold" in str(pinned["warnings"])
    assert main(["yank", "alpha", "1.1.0", "--reason", "again"]) == 0
    assert "already yanked" in capsys.readouterr().out
    events = release.audit.events(action="yank")
    assert len(events) == 1 and events[0].reason == "wrong HU threshold" and events[0].actor == "release-tester"
    assert main(["promote", "alpha", "1.1.0", "--to", "local"]) == 1
    assert "is yanked" in capsys.readouterr().err


def test_a_version_freeze_makes_resolution_stick_through_the_contract_function(
        release: Release, alpha: dict[str, str]) -> None:
    store = release.store
    now = datetime.now(UTC)
    state = store.read("local", "alpha")
    freeze = Freeze(id="audit-7", reason="study in progress", owner="qa", created_at=now - timedelta(minutes=1),
                    expires_at=now + timedelta(hours=1), version="1.0.0")
    store.write(state.state.model_copy(update={"freezes": (freeze,)}), state.index)
    answer = resolve("alpha", "^1", environment="local", registry=release.client, store=store,
                     image_repository=f"{release.prefix}/alpha")
    assert answer.version == "1.0.0" and answer.rule.startswith("freeze audit-7")
    unfrozen = resolve("alpha", "^1", environment=None, registry=release.client, store=store,
                       image_repository=f"{release.prefix}/alpha")
    assert unfrozen.version == "1.1.0"
