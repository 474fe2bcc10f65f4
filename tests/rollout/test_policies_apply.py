"""`rollout policies apply`: the rendered policies and namespace onto Nomad, idempotent, never half-applied."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from rollout.cli import main
from rollout.policies import PRINCIPALS, Scope, nomad_policy
from tests.support import fake_nomad_acl
from tests.support.fake_nomad import FakeNomad

MANAGEMENT, DEVELOPER = "management-secret", "developer-secret"
NAMES = [f"biomarker-delivery-{p}" for p in PRINCIPALS]
OLD_RULES = json.dumps({"namespace": {"biomarkers": {"policy": "read"}}})


@pytest.fixture
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeNomad]:
    for var in ("NOMAD_ADDR", "NOMAD_NAMESPACE", "NOMAD_REGION", "DELIVERY_CONFIG", "DELIVERY_DATABASE_URL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("DELIVERY_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("NOMAD_TOKEN", MANAGEMENT)
    with FakeNomad(tokens={MANAGEMENT: None, DEVELOPER: frozenset({"list-jobs", "read-job"})}) as f:
        yield f


def apply(fake: FakeNomad, *args: str) -> int:
    return main(["policies", "apply", "--nomad-addr", fake.address, *args])


def acl_writes(fake: FakeNomad) -> int:
    return sum(fake.count(m, p) for m in ("POST", "PUT", "DELETE") for p in ("/v1/acl/", "/v1/namespace/"))


def namespace_exists(fake: FakeNomad, name: str) -> bool:
    with fake.cond:
        return name in fake_nomad_acl.state(fake).namespaces


def test_apply_creates_every_policy_and_the_namespace_and_a_rerun_writes_nothing(
        fake: FakeNomad, capsys: pytest.CaptureFixture[str]) -> None:
    assert apply(fake) == 0
    stored = fake_nomad_acl.policies(fake)
    assert sorted(stored) == sorted(NAMES)
    for principal in PRINCIPALS:
        want = nomad_policy(principal, Scope())
        assert stored[want["Name"]]["Rules"] == want["Rules"]
        assert stored[want["Name"]]["Description"] == want["Description"]
    assert namespace_exists(fake, "biomarkers")
    assert "policy biomarker-delivery-controller: created" in capsys.readouterr().out

    writes = acl_writes(fake)
    assert apply(fake) == 0
    assert acl_writes(fake) == writes  # idempotent: nothing written when Nomad already holds it
    out = capsys.readouterr().out
    assert "namespace biomarkers: unchanged" in out and "0 written" in out


def test_a_changed_policy_is_updated_and_only_it(fake: FakeNomad, capsys: pytest.CaptureFixture[str]) -> None:
    assert apply(fake) == 0
    fake_nomad_acl.seed_policy(fake, NAMES[1], OLD_RULES, "hand-edited")
    writes = acl_writes(fake)
    capsys.readouterr()
    assert apply(fake) == 0
    assert acl_writes(fake) == writes + 1
    assert f"policy {NAMES[1]}: updated" in capsys.readouterr().out
    assert fake_nomad_acl.policies(fake)[NAMES[1]]["Rules"] == nomad_policy(PRINCIPALS[1], Scope())["Rules"]


def test_json_lists_every_change(fake: FakeNomad, capsys: pytest.CaptureFixture[str]) -> None:
    fake_nomad_acl.seed_policy(fake, NAMES[0], OLD_RULES)
    assert apply(fake, "--json") == 0
    report = json.loads(capsys.readouterr().out)
    actions = {c["name"]: c["action"] for c in report["changes"]}
    assert actions[NAMES[0]] == "update" and actions[NAMES[1]] == "create" and actions["biomarkers"] == "create"
    assert report["dry_run"] is False and report["namespace"] == "biomarkers"


def test_a_refused_third_policy_restores_the_first_two_and_quotes_nomad(
        fake: FakeNomad, capsys: pytest.CaptureFixture[str]) -> None:
    fake_nomad_acl.seed_policy(fake, NAMES[0], OLD_RULES, "before")  # the first is an update, the second a create
    refusal = "policy 0 invalid: 1 error occurred:\n\t* failed to parse rules: Invalid namespace capability 'x'\n\n"
    fake.inject("POST", f"^/v1/acl/policy/{NAMES[2]}$", status=400, text=refusal)

    assert apply(fake) == 1
    err = capsys.readouterr().err
    assert f"Nomad refused ACL policy {NAMES[2]}" in err
    assert "Invalid namespace capability 'x'" in err  # Nomad's own text
    assert f"Restored what this run had changed: {NAMES[1]}, {NAMES[0]}" in err
    stored = fake_nomad_acl.policies(fake)
    assert sorted(stored) == [NAMES[0]]  # the created one is gone, nothing after the refusal was written
    assert (stored[NAMES[0]]["Rules"], stored[NAMES[0]]["Description"]) == (OLD_RULES, "before")
    assert not namespace_exists(fake, "biomarkers")


def test_rules_nomad_cannot_parse_are_refused_with_its_text_and_nothing_stays(
        fake: FakeNomad, capsys: pytest.CaptureFixture[str]) -> None:
    assert apply(fake, "--namespace", "clinic.x") == 1  # a name Nomad's ACL parser refuses
    err = capsys.readouterr().err
    assert f"Nomad refused ACL policy {NAMES[0]}" in err and "Nomad answered 400" in err
    assert "failed to parse rules: Invalid namespace name" in err and "Nothing had been written." in err
    assert fake_nomad_acl.policies(fake) == {}


def test_a_token_that_is_not_management_gets_the_hint(
        fake: FakeNomad, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOMAD_TOKEN", DEVELOPER)
    assert apply(fake) == 1
    err = capsys.readouterr().err
    assert "Permission denied" in err and "management token" in err
    assert DEVELOPER not in err
    assert acl_writes(fake) == 0


def test_a_permission_refusal_mid_way_rolls_back_and_gives_the_hint(
        fake: FakeNomad, capsys: pytest.CaptureFixture[str]) -> None:
    fake.inject("POST", f"^/v1/acl/policy/{NAMES[3]}$", status=403, text="Permission denied")
    assert apply(fake) == 1
    err = capsys.readouterr().err
    assert f"Nomad refused ACL policy {NAMES[3]}" in err and "management token" in err
    assert fake_nomad_acl.policies(fake) == {}


def test_a_refused_namespace_rolls_back_every_policy(fake: FakeNomad, capsys: pytest.CaptureFixture[str]) -> None:
    fake.inject("POST", "^/v1/namespace/biomarkers$", status=500, text="rpc error: raft apply failed", times=10)
    assert apply(fake) == 1
    err = capsys.readouterr().err
    assert "Nomad refused namespace biomarkers" in err and "raft apply failed" in err
    assert fake_nomad_acl.policies(fake) == {}


def test_dry_run_writes_nothing_and_says_what_would_change(
        fake: FakeNomad, capsys: pytest.CaptureFixture[str]) -> None:
    fake_nomad_acl.seed_policy(fake, NAMES[0], OLD_RULES)
    assert apply(fake, "--dry-run") == 0
    out = capsys.readouterr().out
    assert f"policy {NAMES[0]}: would update" in out and f"policy {NAMES[1]}: would create" in out
    assert "namespace biomarkers: would create" in out and "nothing written" in out
    assert acl_writes(fake) == 0
    assert fake_nomad_acl.policies(fake)[NAMES[0]]["Rules"] == OLD_RULES


def test_without_a_nomad_address_it_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    for var in ("NOMAD_ADDR", "DELIVERY_CONFIG"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("DELIVERY_HOME", str(tmp_path / "home"))
    assert main(["policies", "apply"]) == 1
    assert "needs a Nomad cluster" in capsys.readouterr().err


def test_the_rendered_readme_applies_with_this_command(tmp_path: Path) -> None:
    assert main(["policies", "render", "--out", str(tmp_path), "--namespace", "clinic"]) == 0
    readme = (tmp_path / "README.md").read_text()
    assert "rollout policies apply --namespace clinic" in readme and "puts back what it had changed" in readme


def test_a_rollback_nomad_also_refuses_is_named_not_hidden(
        fake: FakeNomad, capsys: pytest.CaptureFixture[str]) -> None:
    fake.inject("POST", f"^/v1/acl/policy/{NAMES[1]}$", status=400, text="policy 0 invalid: refused")
    fake.inject("DELETE", f"^/v1/acl/policy/{NAMES[0]}$", status=500, text="rpc error: no leader", times=10)
    assert apply(fake) == 1
    err = capsys.readouterr().err
    assert f"Could NOT restore: {NAMES[0]}" in err and "no leader" in err and "apply` again" in err
