"""The API refuses a study holding a link out of it (422 naming the link), before anything is recorded or run."""

from __future__ import annotations

from tests.rollout.api.conftest import NAME, Api


def test_a_study_linking_out_of_the_input_root_is_refused_not_accepted(api: Api) -> None:
    reference = api.study("leaky", 1, 2)
    (api.inputs / reference / "leak").symlink_to("/etc/hostname")
    with api.client("execution-client") as client:
        answer = client.post("/v1/executions", json={"biomarker": NAME, "pin": "1.0.0", "input": reference})
        listed = client.get("/v1/executions")
    assert answer.status_code == 422, answer.text
    assert "'leak'" in answer.json()["error"] and "leads out of the study" in answer.json()["error"]
    assert "/etc/hostname" not in answer.text and "input_identity" not in answer.text
    assert listed.status_code in (200, 403) and reference not in listed.text
