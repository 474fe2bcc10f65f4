"""What a security review found at the front door: headers, readiness, versions, the status page's session."""

from __future__ import annotations

from pathlib import Path

import httpx

from delivery.docker import DockerClient, RegistryAuth
from delivery.localenv import RegistryHandle
from delivery.registry import RegistryClient
from delivery.secrets import Secret
from rollout.api.app import create_app
from rollout.api.auth import add_token
from tests.rollout.api.conftest import NAME, Api, make_services
from tests.support.api_server import serve


def test_a_freeze_pinned_to_non_ascii_digits_is_refused(api: Api) -> None:
    with api.client("release-manager") as manager:
        refused = manager.post(f"/v1/biomarkers/{NAME}/freezes",
                               json={"reason": "trial", "version": "\u0661.\u0660.\u0660"})
    assert refused.status_code == 422 and refused.json()["field"] == "body.version"


def test_every_response_says_nosniff_and_no_referrer(api: Api) -> None:
    with api.client(None) as anonymous, api.client("developer") as developer:
        responses = [anonymous.get("/"), anonymous.get("/healthz"), anonymous.get("/v1/biomarkers"),
                     anonymous.get("/static/status.css"), anonymous.get("/nowhere"),
                     developer.get(f"/v1/biomarkers/{NAME}/versions"),
                     developer.post("/v1/executions", content=b"x" * (64 * 1024))]
    assert [r.status_code for r in responses] == [200, 200, 401, 200, 404, 200, 413]
    for response in responses:
        assert response.headers["x-content-type-options"] == "nosniff", response.url
        assert response.headers["referrer-policy"] == "no-referrer", response.url


def test_readiness_fails_while_the_registry_refuses_the_servers_credentials(
        tmp_path: Path, docker_client: DockerClient, registry: RegistryHandle, registry_auth: RegistryAuth) -> None:
    services = make_services(tmp_path, docker_client, registry, registry_auth)
    add_token(services.tokens.path, "rm", "release-manager")
    services.registry = RegistryClient(registry.url, registry.username, Secret("rotated-away-password"))
    with serve(create_app(services)) as url, httpx.Client(base_url=url) as client:
        ready = client.get("/readyz")
    assert ready.status_code == 503 and ready.json()["status"] == "not ready"
    checks = ready.json()["checks"]
    assert "refused the server's credentials" in checks["registry"] and checks["ledger"] == "ok"
    assert "rotated-away-password" not in ready.text
