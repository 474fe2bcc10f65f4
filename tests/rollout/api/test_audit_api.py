"""Auditors read the one audit trail over the API, filtered; nobody else may."""

from __future__ import annotations

from tests.rollout.api.conftest import ENV, NAME, Api


def test_auditors_read_the_trail_filtered_and_other_roles_may_not(api: Api) -> None:
    with api.client("release-manager") as manager:
        frozen = manager.post(f"/v1/biomarkers/{NAME}/freezes",
                              json={"reason": "inspection week", "hours": 1, "environment": ENV})
        assert frozen.status_code == 201, frozen.text
        assert manager.delete(f"/v1/biomarkers/{NAME}/freezes/{frozen.json()['id']}",
                              params={"environment": ENV}).status_code == 204
    with api.client("auditor") as auditor:
        trail = auditor.get("/v1/audit", params={"biomarker": NAME, "environment": ENV,
                                                 "actor": "api:release-manager"})
        elsewhere = auditor.get("/v1/audit", params={"biomarker": NAME, "environment": "nowhere"})
        later = auditor.get("/v1/audit", params={"since": "2999-01-01T00:00:00Z"})
    assert trail.status_code == 200, trail.text
    events = trail.json()["events"]
    assert [e["action"] for e in events][-2:] == ["freeze", "unfreeze"]
    assert events[-2]["reason"] == "inspection week" and events[-2]["environment"] == ENV
    assert {e["actor"] for e in events} == {"api:release-manager"}
    assert [e for e in elsewhere.json()["events"] if e["action"] != "recall"] == []  # recalls hold everywhere
    assert later.json()["events"] == []
    for role in ("execution-client", "developer"):
        with api.client(role) as client:
            assert client.get("/v1/audit").status_code == 403
