"""Paired shadow runs during a rollout are the team's evidence, never a result an execution client receives."""

from __future__ import annotations

from tests.rollout.api.conftest import ENV, NAME, Api
from tests.rollout.api.test_executions_api import finished, submit
from tests.rollout.executions.conftest import Builds
from tests.support.executions_builders import set_channels


def test_an_execution_client_never_reads_the_shadow_run_paired_with_its_submission(api: Api,
                                                                                   builds: Builds) -> None:
    set_channels(api.store, ENV, NAME, stable=builds.v1, candidate=builds.v1_1, weight=100)
    with api.client("execution-client") as client:
        accepted = submit(client, api, "stable", 3, 4)
        assert accepted.status_code == 202, accepted.text
        done = finished(client, accepted.headers["location"])
        shadow_id = api.services.ledger.get(done["id"]).record.paired_execution_id
        assert shadow_id is not None  # routed to the candidate: a paired run exists
        api.services.dispatcher.idle(60)
        shadow = client.get(f"/v1/executions/{shadow_id}")
        shadow_results = client.get(f"/v1/executions/{shadow_id}/results")
    with api.client("developer") as team:
        seen_by_team = team.get(f"/v1/executions/{shadow_id}")
    assert done["status"] == "succeeded" and done["version"] == builds.v1.version
    assert done["paired_execution_id"] is None
    assert shadow.status_code == shadow_results.status_code == 404
    assert builds.v1_1.digest not in shadow.text + shadow_results.text
    assert seen_by_team.status_code == 200 and seen_by_team.json()["route"] == "shadow"
