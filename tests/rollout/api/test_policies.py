"""`rollout policies render`: the cluster and the registry enforce the API's separation of duties."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rollout.cli import main
from rollout.policies import PRINCIPALS

NAMESPACE = 'clinic"x'
# Nomad's namespace capabilities and Variable capabilities (ACL policy reference); anything else Nomad refuses.
NOMAD_CAPABILITIES = {
    "deny", "list-jobs", "parse-job", "read-job", "submit-job", "dispatch-job", "read-logs", "read-fs",
    "alloc-exec", "alloc-node-exec", "alloc-lifecycle", "csi-register-plugin", "csi-write-volume", "csi-read-volume",
    "csi-list-volume", "csi-mount-volume", "list-scaling-policies", "read-scaling-policy", "read-job-scaling",
    "scale-job", "sentinel-override", "submit-recommendation", "host-volume-create", "host-volume-register",
    "host-volume-read", "host-volume-write", "host-volume-delete"}
VARIABLE_CAPABILITIES = {"list", "read", "write", "destroy", "deny"}


def rendered(tmp_path: Path, *args: str) -> tuple[dict[str, dict[str, Any]], dict[str, list[str]]]:
    assert main(["policies", "render", "--out", str(tmp_path), *args]) == 0
    rules = {p.name.removesuffix(".policy.json"): json.loads(p.read_text())
             for p in (tmp_path / "nomad").glob("*.policy.json")}
    robots = json.loads((tmp_path / "registry-robots.json").read_text())["robots"]
    return rules, {r["role"]: r["scopes"] for r in robots}


def grants(rule: dict[str, Any], namespace: str = NAMESPACE) -> tuple[set[str], dict[str, set[str]]]:
    block = rule["namespace"][namespace]
    paths = block.get("variables", {}).get("path", {})
    return set(block["capabilities"]), {path: set(v["capabilities"]) for path, v in paths.items()}


def test_every_policy_has_the_shape_nomad_accepts(tmp_path: Path) -> None:
    rules, _ = rendered(tmp_path, "--namespace", NAMESPACE)
    assert set(rules) == set(PRINCIPALS)
    for principal, rule in rules.items():
        assert set(rule) <= {"namespace", "node", "agent", "operator", "quota", "host_volume", "plugin"}, principal
        assert list(rule["namespace"]) == [NAMESPACE]  # rights in the biomarker namespace, none anywhere else
        assert set(rule["namespace"][NAMESPACE]) <= {"policy", "capabilities", "variables"}
        capabilities, variables = grants(rule)
        assert capabilities and capabilities <= NOMAD_CAPABILITIES, principal
        assert all(caps <= VARIABLE_CAPABILITIES for caps in variables.values()), principal
        assert rule["node"]["policy"] in {"deny", "read", "write"}


def test_execution_clients_get_no_nomad_token_and_are_told_why(tmp_path: Path) -> None:
    rules, scopes = rendered(tmp_path)
    assert "execution-client" not in rules and "execution-client" not in scopes
    assert not list(tmp_path.glob("**/execution-client*"))
    readme = (tmp_path / "README.md").read_text()
    assert "Execution clients get **no Nomad token**" in readme and "through the API" in readme


def test_the_api_may_only_read_and_dispatch_jobs_in_the_biomarker_namespace(tmp_path: Path) -> None:
    rules, _ = rendered(tmp_path)
    assert list(rules["api-service"]["namespace"]) == ["biomarkers"]  # the default: a namespace of their own
    capabilities, variables = grants(rules["api-service"], "biomarkers")
    assert capabilities == {"read-job", "dispatch-job"}
    assert set(variables) == {"delivery/release/*"}  # release state only: no credentials, no leader lock
    assert rules["api-service"]["node"] == {"policy": "deny"}


def test_only_the_controller_and_release_managers_register_jobs_or_write_release_state(tmp_path: Path) -> None:
    rules, _ = rendered(tmp_path, "--namespace", NAMESPACE)
    for principal, rule in rules.items():
        capabilities, variables = grants(rule)
        writes_release = "write" in variables.get("delivery/release/*", set())
        assert ("submit-job" in capabilities) == (principal in {"controller", "release-manager"}), principal
        assert writes_release == (principal in {"api-service", "controller", "release-manager"}), principal
        assert ("write" in variables.get("nomad/jobs/*", set())) == (principal == "release-manager"), principal
    assert {"submit-job", "dispatch-job", "read-job", "list-jobs", "read-logs"} <= grants(rules["release-manager"])[0]
    assert "read-logs" not in grants(rules["auditor"])[0]
    assert not {"submit-job", "dispatch-job"} & (grants(rules["developer"])[0] | grants(rules["auditor"])[0])


def test_the_readme_says_jobs_need_no_policy_and_how_to_apply(tmp_path: Path) -> None:
    rendered(tmp_path)
    readme = (tmp_path / "README.md").read_text()
    assert "nomad/jobs/<job id>" in readme and "implicit policy" in readme
    for principal in PRINCIPALS:
        assert f"biomarker-delivery-{principal} nomad/{principal}.policy.json" in readme
    assert json.loads((tmp_path / "nomad" / "namespace.json").read_text())["Name"] == "biomarkers"


def test_api_bodies_embed_the_rules_and_a_quote_stays_data(tmp_path: Path) -> None:
    rendered(tmp_path, "--namespace", NAMESPACE)
    body = json.loads((tmp_path / "nomad" / "api-service.json").read_text())
    assert body["Name"] == "biomarker-delivery-api-service"
    assert json.loads(body["Rules"]) == json.loads((tmp_path / "nomad" / "api-service.policy.json").read_text())
    assert json.loads((tmp_path / "nomad" / "namespace.json").read_text())["Name"] == NAMESPACE


def test_only_release_managers_push_or_delete_images(tmp_path: Path) -> None:
    _, scopes = rendered(tmp_path)
    assert set(scopes) == {"nomad-pull", "api-service", "release-manager", "developer", "auditor"}
    for role, granted in scopes.items():
        pushes = any("push" in s or "delete" in s for s in granted)
        assert pushes == (role == "release-manager"), role
        assert "repository:biomarkers/*:pull" in granted[0]
    assert scopes["nomad-pull"] == ["repository:biomarkers/*:pull"]
