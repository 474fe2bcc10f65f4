"""`rollout policies render`: the cluster and the registry enforce the API's separation of duties."""

from __future__ import annotations

import json
from pathlib import Path

from rollout.api.auth import ROLES
from rollout.cli import main


def rendered(tmp_path: Path) -> tuple[dict[str, dict[str, object]], dict[str, list[str]]]:
    assert main(["policies", "render", "--out", str(tmp_path), "--namespace", 'clinic"x']) == 0
    rules = {role: json.loads((tmp_path / "nomad" / f"{role}.policy.json").read_text()) for role in ROLES}
    robots = json.loads((tmp_path / "registry-robots.json").read_text())["robots"]
    return rules, {r["role"]: r["scopes"] for r in robots}


def test_only_release_managers_register_jobs_and_write_release_state(tmp_path: Path) -> None:
    rules, _ = rendered(tmp_path)
    for role, rule in rules.items():
        namespace = rule["namespace"]['clinic"x']  # type: ignore[index]
        variables = namespace.get("variables", {}).get("path", {}).get("delivery/release/*", {})
        writes = "submit-job" in namespace["capabilities"] or "write" in variables.get("capabilities", [])
        assert writes == (role == "release-manager"), role
    assert "dispatch-job" in rules["execution-client"]["namespace"]['clinic"x']["capabilities"]  # type: ignore[index]
    assert "read-logs" not in rules["auditor"]["namespace"]['clinic"x']["capabilities"]  # type: ignore[index]


def test_api_bodies_embed_the_rules_and_a_quote_stays_data(tmp_path: Path) -> None:
    rendered(tmp_path)
    body = json.loads((tmp_path / "nomad" / "execution-client.json").read_text())
    assert body["Name"] == "biomarker-delivery-execution-client"
    assert json.loads(body["Rules"]) == json.loads((tmp_path / "nomad" / "execution-client.policy.json").read_text())


def test_only_release_managers_push_or_delete_images(tmp_path: Path) -> None:
    _, scopes = rendered(tmp_path)
    assert set(scopes) == set(ROLES)
    for role, granted in scopes.items():
        pushes = any("push" in s or "delete" in s for s in granted)
        assert pushes == (role == "release-manager"), role
        assert "repository:biomarkers/*:pull" in granted[0]
