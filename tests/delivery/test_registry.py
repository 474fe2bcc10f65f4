"""The registry client against the real docker-registry: digests, retagging, auth and error bodies."""

from __future__ import annotations

import json
import uuid

import pytest

from delivery.docker import DockerClient, RegistryAuth
from delivery.localenv import RegistryHandle
from delivery.registry import (
    DOCKER_MANIFEST,
    Manifest,
    NotFound,
    RegistryClient,
    RegistryError,
    Unauthorized,
    sha256_digest,
)
from delivery.release.copy import Location, copy_image
from delivery.secrets import Secret
from tests.support.fake_token_server import FakeRegistry, fake_registry
from tests.support.oci import push_image, push_index


@pytest.fixture
def client(registry: RegistryHandle) -> RegistryClient:
    return RegistryClient(registry.url, registry.username, registry.password)


def _artifact(client: RegistryClient, name: str) -> Manifest:
    """A minimal OCI image manifest with one config blob and one layer, uploaded through the client."""
    config = client.upload_blob(name, b"{}")
    layer_bytes = uuid.uuid4().bytes * 64
    layer = client.upload_blob(name, layer_bytes)
    doc = {
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config, "size": 2},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer, "size": len(layer_bytes)}],
    }
    raw = json.dumps(doc).encode()
    return Manifest(raw, doc["mediaType"], sha256_digest(raw))


def test_retag_by_digest_keeps_the_bytes_and_sends_no_blob(client: RegistryClient) -> None:
    name = f"reg/{uuid.uuid4().hex[:8]}"
    manifest = _artifact(client, name)
    assert client.put_manifest(name, "1.0.0", manifest) == manifest.digest
    before = client.stats
    fetched = client.get_manifest(name, "1.0.0")
    client.put_manifest(name, "stable", fetched)
    sent = client.stats.bytes_sent - before.bytes_sent
    assert sent == len(manifest.raw)
    assert client.head_manifest(name, "stable") == manifest.digest
    assert client.list_tags(name) == ["1.0.0", "stable"]


def test_cross_repository_mount_moves_no_bytes(client: RegistryClient) -> None:
    source, target = f"reg/{uuid.uuid4().hex[:8]}", f"rel/{uuid.uuid4().hex[:8]}"
    manifest = _artifact(client, source)
    client.put_manifest(source, "1.0.0", manifest)
    before = client.stats.bytes_sent
    assert all(client.mount_blob(target, d, source) for d in manifest.blob_digests())
    client.put_manifest(target, "1.0.0", manifest)
    assert client.stats.bytes_sent - before == len(manifest.raw)


def test_docker_pushed_manifest_round_trips(
    docker_client: DockerClient, busybox_image: str, registry: RegistryHandle, registry_auth: RegistryAuth,
    client: RegistryClient,
) -> None:
    repository = f"{registry.host}/reg/pushed"
    docker_client.sdk.images.get(busybox_image).tag(repository, "0.1.0")
    pushed = docker_client.push(repository, "0.1.0", registry_auth)
    manifest = client.get_manifest("reg/pushed", "0.1.0")
    assert manifest.digest == pushed.digest
    assert manifest.media_type == DOCKER_MANIFEST


def test_unknown_tag_and_wrong_password_are_typed_errors(registry: RegistryHandle, client: RegistryClient) -> None:
    with pytest.raises(NotFound) as missing:
        client.get_manifest("reg/none", "9.9.9")
    assert missing.value.code in ("MANIFEST_UNKNOWN", "NAME_UNKNOWN")
    wrong = RegistryClient(registry.url, registry.username, Secret("wrong-" + uuid.uuid4().hex))
    with pytest.raises(Unauthorized) as denied:
        wrong.ping()
    assert denied.value.status == 401
    assert "wrong-" not in denied.value.render()


def test_delete_by_digest_removes_every_tag(client: RegistryClient) -> None:
    name = f"reg/{uuid.uuid4().hex[:8]}"
    manifest = _artifact(client, name)
    client.put_manifest(name, "a", manifest)
    client.put_manifest(name, "b", manifest)
    client.delete_manifest(name, manifest.digest)
    assert client.head_manifest(name, "a") is None
    assert client.list_tags(name) == []


def test_bearer_challenge_gets_one_token_per_repository_and_reuses_it() -> None:
    with fake_registry(FakeRegistry(tags={"bio/alpha": ["1.0.0"], "bio/beta": ["2.0.0"]})) as fake:
        client = RegistryClient(fake.url, fake.username, Secret(fake.password))
        assert client.list_tags("bio/alpha") == ["1.0.0"]
        assert client.list_tags("bio/alpha") == ["1.0.0"]
        assert client.list_tags("bio/beta") == ["2.0.0"]
        scopes = [line.split("scope=")[1] for line in fake.token_requests()]
        assert scopes == ["repository%3Abio%2Falpha%3Apull%2Cpush", "repository%3Abio%2Fbeta%3Apull%2Cpush"]


def test_a_refused_token_is_unauthorized_without_the_password_in_the_message() -> None:
    with fake_registry() as fake:
        client = RegistryClient(fake.url, fake.username, Secret("not-the-" + uuid.uuid4().hex))
        with pytest.raises(Unauthorized) as denied:
            client.list_tags("bio/alpha")
        assert denied.value.status == 401 and "not-the-" not in denied.value.render()


def test_tags_follow_link_pagination_when_a_registry_sends_it() -> None:
    every = [f"1.0.{i}" for i in range(250)]
    with fake_registry(FakeRegistry(tags={"bio/many": every}, page_size=100)) as fake:
        client = RegistryClient(fake.url, fake.username, Secret(fake.password))
        assert client.list_tags("bio/many") == sorted(every)
        pages = [line for line in fake.log if "/tags/list" in line and "Bearer" not in line]
        assert len([p for p in pages if "last=" in p]) == 2


@pytest.mark.parametrize(("status", "code", "error"), [
    (404, "MANIFEST_UNKNOWN", NotFound), (403, "DENIED", Unauthorized), (429, "TOOMANYREQUESTS", RegistryError),
])
def test_error_bodies_become_our_exceptions_with_the_code(status: int, code: str, error: type[RegistryError]) -> None:
    fake = FakeRegistry(tags={"bio/alpha": []}, errors={"/v2/bio/alpha/tags/list": (status, code)})
    with fake_registry(fake):
        client = RegistryClient(fake.url, fake.username, Secret(fake.password))
        with pytest.raises(error) as caught:
            client.list_tags("bio/alpha")
        assert caught.value.code == code and caught.value.status == status


def test_an_index_is_copied_with_its_platform_manifests(client: RegistryClient) -> None:
    source, target = f"reg/{uuid.uuid4().hex[:8]}", f"rel/{uuid.uuid4().hex[:8]}"
    children = [push_image(client, source, f"p{i}", seed=f"platform-{i}") for i in range(2)]
    index = push_index(client, source, "1.0.0", children)
    report = copy_image(Location(client, source), index.digest, Location(client, target), "1.0.0")
    assert report.method == "mount" and report.blobs_mounted == 4
    fetched = client.get_manifest(target, "1.0.0")
    assert fetched.digest == index.digest and fetched.is_index
    assert all(client.head_manifest(target, c.digest) == c.digest for c in children)


@pytest.mark.parametrize("path", ["/v2/bio/alpha/tags/list", "/v2/_catalog"])
def test_a_200_that_is_not_json_is_a_registry_error(path: str) -> None:
    """A proxy or a wrong address answering 200 with a web page must not crash the tag or catalog listing."""
    fake = FakeRegistry(tags={"bio/alpha": ["1.0.0"]}, raw={path: b"<html>please log in</html>"})
    with fake_registry(fake):
        client = RegistryClient(fake.url, fake.username, Secret(fake.password))
        with pytest.raises(RegistryError, match="not JSON"):
            client.list_tags("bio/alpha") if "tags" in path else client.catalog()


def test_a_token_service_that_answers_a_web_page_is_unauthorized() -> None:
    fake = FakeRegistry(tags={"bio/alpha": ["1.0.0"]}, raw={"/token": b"<html>sso</html>"})
    with fake_registry(fake):
        client = RegistryClient(fake.url, fake.username, Secret(fake.password))
        with pytest.raises(Unauthorized, match="not a JSON token"):
            client.list_tags("bio/alpha")
