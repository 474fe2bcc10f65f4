"""`rollout deploy` refuses an image whose vulnerabilities were not (freshly) scanned unless overridden, audited."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from delivery.audit import AuditLog
from delivery.localenv import RegistryHandle
from delivery.paths import default_database_url
from delivery.registry import RegistryClient
from rollout.cli import main as rollout
from tests.support.nomad_world import BATCH
from tests.support.oci import attest, make_keys, push_image

ENV = "prod"
CONFIG_KEYS = ("NOMAD_ADDR", "NOMAD_TOKEN", "DELIVERY_DATABASE_URL", "DELIVERY_CONFIG", "DELIVERY_RELEASE_STORE",
               "DELIVERY_BACKEND", "DELIVERY_PUBLIC_KEY")


@pytest.fixture
def world(registry: RegistryHandle, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, str, str]:
    """An embedded-default home, an environment in the real registry, an unscanned attested image 1.0.0."""
    for key in CONFIG_KEYS:
        monkeypatch.setenv(key, "")
        monkeypatch.delenv(key)
    home, prefix = tmp_path / "home", f"t{uuid.uuid4().hex[:10]}"
    keys = make_keys(home / "keys")
    (tmp_path / "envs").mkdir()
    (tmp_path / "envs" / f"{ENV}.yaml").write_text(json.dumps({
        "apiVersion": "delivery/v1", "kind": "Environment", "name": ENV, "registry": registry.host,
        "repository_prefix": prefix, "nomad": {"address": "http://127.0.0.1:4646"}}), encoding="utf-8")
    for key, value in (("DELIVERY_HOME", str(home)), ("DELIVERY_ENVIRONMENTS", str(tmp_path / "envs")),
                       ("DELIVERY_REGISTRY", registry.host), ("DELIVERY_REGISTRY_USER", registry.username),
                       ("DELIVERY_REGISTRY_PASSWORD", registry.password.reveal()), ("DELIVERY_ACTOR", "rm"),
                       ("DELIVERY_ENV", ENV)):
        monkeypatch.setenv(key, value)
    client = RegistryClient(registry.url, registry.username, registry.password)
    digest = push_image(client, f"{prefix}/alpha", "1.0.0", seed="unscanned").digest
    attest(client, f"{prefix}/alpha", digest, keys, vulnerabilities="unscanned")
    manifest = tmp_path / "biomarker.yaml"
    manifest.write_text(BATCH, encoding="utf-8")
    return manifest, f"{registry.host}/{prefix}/alpha", digest


def test_deploy_refuses_an_unscanned_image_until_allowed_with_a_reason_which_is_audited(
        world: tuple[Path, str, str], capsys: pytest.CaptureFixture[str]) -> None:
    manifest, image, digest = world
    argv = ["deploy", "alpha", "--manifest", str(manifest), "--image", f"{image}:1.0.0", "--digest", digest]
    assert rollout(argv) == 1
    err = capsys.readouterr().err
    assert "vulnerabilities not scanned" in err and "--allow-unscanned" in err
    assert AuditLog(default_database_url()).events() == []  # refused before anything was written
    assert rollout([*argv, "--allow-unscanned"]) == 2
    assert rollout([*argv, "--allow-unscanned", "--reason", "INC-7: DB import pending"]) in (0, 3)
    (event,) = AuditLog(default_database_url()).events(action="allow-unscanned")
    assert (event.actor, event.reason, event.details["digest"]) == ("rm", "INC-7: DB import pending", digest)
    assert event.subject == f"{ENV}/alpha:1.0.0"
    capsys.readouterr()
    rollout(["status", "alpha", "--json"])
    assert json.loads(capsys.readouterr().out)["candidate"]["digest"] == digest
