"""What a security review found at the front door: headers, readiness, versions, the status page's session."""

from __future__ import annotations

from tests.rollout.api.conftest import NAME, Api


def test_a_freeze_pinned_to_non_ascii_digits_is_refused(api: Api) -> None:
    with api.client("release-manager") as manager:
        refused = manager.post(f"/v1/biomarkers/{NAME}/freezes",
                               json={"reason": "trial", "version": "\u0661.\u0660.\u0660"})
    assert refused.status_code == 422 and refused.json()["field"] == "body.version"
