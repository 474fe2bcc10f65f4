"""Pull credentials published where each job's workload identity reads them, idempotently, never printed."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from delivery.errors import UsageError
from delivery.secrets import Secret
from rollout.jobspec import build_job
from rollout.nomad import NomadClient, NomadSettings
from rollout.registry_auth import publish
from tests.support.fake_nomad import FakeNomad
from tests.support.nomad_world import BATCH, manifest, release

PASSWORD = "pull-Pa55w0rd-robot!"


@pytest.fixture
def fake() -> Iterator[FakeNomad]:
    with FakeNomad() as nomad:
        yield nomad


@pytest.fixture
def client(fake: FakeNomad) -> NomadClient:
    return NomadClient(NomadSettings(address=fake.address))


def writes(fake: FakeNomad) -> int:
    return sum(1 for method, path in fake.request_log if method != "GET" and path.startswith("/v1/var/nomad/jobs/"))


def test_each_job_gets_its_credentials_at_the_path_its_template_reads(client: NomadClient,
                                                                       capsys: pytest.CaptureFixture[str]) -> None:
    jobs = [build_job(manifest(BATCH), "fast", release("alpha", "1.0.0"), track=t) for t in ("stable", "canary")]
    published = publish(client, [j["ID"] for j in jobs], "robot-nomad-pull", Secret(PASSWORD))
    assert [p.changed for p in published] == [True, True]
    for job in jobs:
        template = job["TaskGroups"][0]["Tasks"][0]["Templates"][0]["EmbeddedTmpl"]
        [path] = [p.path for p in published if p.job_id == job["ID"]]
        assert f'nomadVar "{path}"' in template
        var = client.variable(path).value
        assert var is not None and (var.get("username"), var.get("password")) == ("robot-nomad-pull", PASSWORD)
    assert PASSWORD not in repr(published) and PASSWORD not in capsys.readouterr().out


def test_publishing_again_writes_nothing_and_a_new_password_is_written_once(fake: FakeNomad,
                                                                            client: NomadClient) -> None:
    publish(client, ["alpha-fast"], "robot", Secret(PASSWORD))
    before = writes(fake)
    assert [p.changed for p in publish(client, ["alpha-fast", "alpha-fast"], "robot", Secret(PASSWORD))] == [False]
    assert writes(fake) == before
    assert [p.changed for p in publish(client, ["alpha-fast"], "robot", Secret(PASSWORD + "2"))] == [True]
    assert writes(fake) == before + 1
    var = client.variable("nomad/jobs/alpha-fast").value
    assert var is not None and var.get("password") == PASSWORD + "2"


def test_other_items_of_the_jobs_variable_are_kept(client: NomadClient) -> None:
    client.put_variable("nomad/jobs/alpha-fast", {"licence": "site-17"}, cas=0)
    publish(client, ["alpha-fast"], "robot", Secret(PASSWORD))
    var = client.variable("nomad/jobs/alpha-fast").value
    assert var is not None and var.get("licence") == "site-17" and var.get("username") == "robot"


@pytest.mark.parametrize("job", ["../../delivery/release/prod", "alpha/fast", ""])
def test_a_job_id_that_would_leave_nomad_jobs_is_refused_before_anything_is_written(fake: FakeNomad,
                                                                                   client: NomadClient,
                                                                                   job: str) -> None:
    with pytest.raises(UsageError, match="plain Nomad job id"):
        publish(client, ["alpha-fast", job], "robot", Secret(PASSWORD))
    assert writes(fake) == 0
