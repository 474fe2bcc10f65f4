"""Executions on the fake Nomad: idempotent dispatch, the right parent per route, node loss retried once."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from delivery.release.state import ChannelPin, SqliteReleaseStore, Versioned
from rollout.cli import main
from rollout.executions.ledger import Ledger
from rollout.executions.manifests import FixedManifests
from rollout.executions.model import ExecutionError, ExecutionRequest
from rollout.executions.nomad import NomadBackend
from rollout.executions.submit import Submitter
from rollout.nomad import NomadClient, NomadSettings
from tests.support.executions_builders import MANIFEST, manifest, study
from tests.support.executions_nomad import DIGESTS, IMAGE, FixedPins, register_tracks
from tests.support.fake_nomad import FakeNomad

ENV = "cluster"


@pytest.fixture
def fake() -> Iterator[FakeNomad]:
    with FakeNomad() as nomad:
        yield nomad


@pytest.fixture
def client(fake: FakeNomad) -> NomadClient:
    return NomadClient(NomadSettings(address=fake.address))


def _submitter(tmp: Path, client: NomadClient, store: SqliteReleaseStore) -> Submitter:
    return Submitter(ledger=Ledger(f"sqlite:///{tmp / 'ledger.sqlite'}"), store=store, resolver=FixedPins(),
                     manifests=FixedManifests(manifest("alpha")),
                     backend=NomadBackend(client, poll_s=0.01), shadow_root=tmp / "shadow")


def _channels(store: SqliteReleaseStore, weight: int = 0) -> None:
    now = datetime.now(UTC)
    pins = {name: ChannelPin(version=v, digest=DIGESTS[v], image=IMAGE, moved_at=now, moved_by="t")
            for name, v in (("stable", "1.0.0"), ("candidate", "2.0.0"))}
    current = store.read(ENV, "alpha")
    store.write(current.state.model_copy(update={"channels": pins, "rollout": {"id": "r7", "weight": weight}}),
                current.index)


def _request(tmp: Path, spec: str, request_id: str | None = None, n: int = 1) -> ExecutionRequest:
    return ExecutionRequest(biomarker="alpha", spec=spec, input_path=study(tmp / "in" / str(n), n),
                            output_path=tmp / "out" / str(n), environment=ENV, request_id=request_id)


def test_a_retried_submit_dispatches_once(tmp_path: Path, fake: FakeNomad, client: NomadClient) -> None:
    register_tracks(client, "1.0.0")
    fake.batch_outcome[f"{IMAGE}@{DIGESTS['1.0.0']}"] = "complete"
    submitter = _submitter(tmp_path, client, SqliteReleaseStore(tmp_path / "rs.sqlite"))
    first = submitter.submit(_request(tmp_path, "1.0.0", request_id="accession-17"), wait=False)
    again = submitter.submit(_request(tmp_path, "1.0.0", request_id="accession-17"))
    children = [j for j in fake.state.jobs.values() if j.get("ParentID") == "alpha-fast"]
    assert len(children) == 1 and first.id == again.id
    assert again.status == "succeeded" and again.latest("backend_job_id") == children[0]["ID"]
    assert children[0]["Meta"]["execution_id"] == first.id
    assert children[0]["Meta"]["study"] == str((tmp_path / "in" / "1").resolve())


def test_each_route_dispatches_its_parent(tmp_path: Path, fake: FakeNomad, client: NomadClient) -> None:
    register_tracks(client, "1.0.0", "2.0.0")
    for version in DIGESTS:
        fake.batch_outcome[f"{IMAGE}@{DIGESTS[version]}"] = "complete"
    store = SqliteReleaseStore(tmp_path / "rs.sqlite")
    _channels(store, weight=100)
    submission = _submitter(tmp_path, client, store).run(_request(tmp_path, "stable"))
    assert submission.shadow is not None
    parents = {submission.execution.latest("backend_job_id").split("/")[0],
               submission.shadow.latest("backend_job_id").split("/")[0]}
    assert parents == {"alpha-fast", "alpha-fast-canary"}
    assert submission.shadow.latest("backend_job_id").startswith("alpha-fast-canary/dispatch-")


class _PromotedAfterEachRead(SqliteReleaseStore):
    """A release store where the rollout finishes right after the submission first reads it (stable moves to the
    candidate, the rollout's weight drops to 0): the race a busy controller can produce."""

    def read(self, environment: str, biomarker: str) -> Versioned:
        current = super().read(environment, biomarker)
        stable = current.state.channels.get("candidate") or current.state.channels["stable"]
        super().write(current.state.model_copy(update={"channels": {"stable": stable}, "rollout": None}),
                      current.index)
        return current


def test_a_submission_routes_and_pins_from_one_read_of_the_release_state(tmp_path: Path, fake: FakeNomad,
                                                                          client: NomadClient) -> None:
    register_tracks(client, "1.0.0", "2.0.0")
    store = _PromotedAfterEachRead(tmp_path / "rs.sqlite")
    _channels(SqliteReleaseStore(tmp_path / "rs.sqlite"), weight=100)
    submission = _submitter(tmp_path, client, store).run(_request(tmp_path, "stable"), wait=False)
    record = submission.execution.record
    # Routed, pinned and paired by the state before the promotion, not a mix of the states before and after.
    assert (record.route, record.version, record.rollout_id) == ("stable", "1.0.0", "r7")
    assert record.paired_execution_id is not None
    assert _submitter(tmp_path, client, store).ledger.get(record.paired_execution_id).record.version == "2.0.0"


def test_a_pin_the_cluster_does_not_run_is_refused(tmp_path: Path, client: NomadClient) -> None:
    register_tracks(client, "1.0.0")
    submitter = _submitter(tmp_path, client, SqliteReleaseStore(tmp_path / "rs.sqlite"))
    with pytest.raises(ExecutionError, match="not the pinned"):
        submitter.submit(_request(tmp_path, "2.0.0"))


def test_node_loss_is_reported_and_retried_once(tmp_path: Path, fake: FakeNomad, client: NomadClient) -> None:
    register_tracks(client, "1.0.0")
    submitter = _submitter(tmp_path, client, SqliteReleaseStore(tmp_path / "rs.sqlite"))
    result: list[object] = []
    worker = threading.Thread(target=lambda: result.append(submitter.submit(_request(tmp_path, "1.0.0"))))
    worker.start()
    alloc = _first_alloc(fake, "alpha-fast/")
    fake.batch_outcome[f"{IMAGE}@{DIGESTS['1.0.0']}"] = "complete"  # the replacement finishes
    fake.lose_node(alloc["NodeID"])
    worker.join(timeout=30)
    execution = result[0]
    assert execution.status == "succeeded"  # type: ignore[attr-defined]
    kinds = [e.kind for e in execution.events]  # type: ignore[attr-defined]
    assert kinds.count("lost") == 1 and kinds[-1] == "succeeded"
    assert execution.latest("node") != alloc["NodeID"]  # type: ignore[attr-defined]


def test_a_second_node_loss_fails_the_execution(tmp_path: Path, fake: FakeNomad, client: NomadClient) -> None:
    register_tracks(client, "1.0.0")
    submitter = _submitter(tmp_path, client, SqliteReleaseStore(tmp_path / "rs.sqlite"))
    result: list[object] = []
    worker = threading.Thread(target=lambda: result.append(submitter.submit(_request(tmp_path, "1.0.0"))))
    worker.start()
    first = _first_alloc(fake, "alpha-fast/")
    fake.lose_node(first["NodeID"])
    second = _first_alloc(fake, "alpha-fast/", other_than=first["ID"])
    fake.lose_node(second["NodeID"])
    worker.join(timeout=30)
    assert result[0].status == "failed"  # type: ignore[attr-defined]
    assert result[0].latest("reason") == "node lost twice"  # type: ignore[attr-defined]


def _first_alloc(fake: FakeNomad, prefix: str, other_than: str = "") -> dict[str, object]:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with fake.cond:
            live = [a for a in fake.state.allocs.values() if str(a["JobID"]).startswith(prefix)
                    and a["ClientStatus"] not in ("lost", "complete", "failed") and a["ID"] != other_than]
        if live:
            return dict(live[0])
        time.sleep(0.01)
    raise AssertionError("no allocation was placed")


def test_two_executions_dispatch_their_own_study_and_output_folders(tmp_path: Path, fake: FakeNomad,
                                                                     client: NomadClient) -> None:
    register_tracks(client, "1.0.0")
    submitter = _submitter(tmp_path, client, SqliteReleaseStore(tmp_path / "rs.sqlite"))
    first = submitter.submit(_request(tmp_path, "1.0.0", n=1), wait=False)
    second = submitter.submit(_request(tmp_path, "1.0.0", n=2), wait=False)
    children = {j["Meta"]["execution_id"]: j["Meta"] for j in fake.state.jobs.values()
                if j.get("ParentID") == "alpha-fast"}
    # The parent binds exactly these into /data/input and /data/output, per dispatched child.
    assert {k: children[first.id][k] for k in ("study", "output")} == {
        "study": str((tmp_path / "in" / "1").resolve()), "output": str((tmp_path / "out" / "1").resolve())}
    assert {k: children[second.id][k] for k in ("study", "output")} == {
        "study": str((tmp_path / "in" / "2").resolve()), "output": str((tmp_path / "out" / "2").resolve())}


def test_a_parent_that_would_not_bind_the_executions_folders_is_refused(tmp_path: Path, fake: FakeNomad,
                                                                          client: NomadClient) -> None:
    register_tracks(client, "1.0.0", legacy=True)
    submitter = _submitter(tmp_path, client, SqliteReleaseStore(tmp_path / "rs.sqlite"))
    with pytest.raises(ExecutionError, match="does not require the dispatch meta output, execution_id") as caught:
        submitter.submit(_request(tmp_path, "1.0.0"), wait=False)
    assert "rollout deploy" in (caught.value.hint or "")
    assert not [j for j in fake.state.jobs.values() if j.get("ParentID") == "alpha-fast"]


def test_executions_wait_collects_a_submission_made_without_waiting(tmp_path: Path, fake: FakeNomad,
                                                                    client: NomadClient,
                                                                    monkeypatch: pytest.MonkeyPatch,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    register_tracks(client, "1.0.0")
    fake.batch_outcome[f"{IMAGE}@{DIGESTS['1.0.0']}"] = "complete"
    submitter = _submitter(tmp_path, client, SqliteReleaseStore(tmp_path / "rs.sqlite"))
    dispatched = submitter.submit(_request(tmp_path, "1.0.0"), wait=False)
    assert dispatched.status == "dispatched" and not (tmp_path / "out" / "1" / "provenance.json").exists()
    assert (tmp_path / "out" / "1").is_dir()  # created before dispatching: Docker refuses a missing bind source
    (tmp_path / "out" / "1" / "report.json").write_text('{"volume_ml": 3}\n')  # what the allocation wrote
    (tmp_path / "org" / "alpha").mkdir(parents=True)
    (tmp_path / "org" / "alpha" / "biomarker.yaml").write_text(MANIFEST.format(name="alpha"))
    monkeypatch.setenv("NOMAD_ADDR", fake.address)
    monkeypatch.setenv("DELIVERY_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("DELIVERY_DATABASE_URL", f"sqlite:///{tmp_path / 'ledger.sqlite'}")
    assert main(["executions", "wait", dispatched.id, "--org", str(tmp_path / "org"), "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)["execution"]
    assert shown["status"] == "succeeded" and [o["path"] for o in shown["outputs"]] == ["report.json"]
    provenance = json.loads((tmp_path / "out" / "1" / "provenance.json").read_text())
    assert provenance["digest"] == DIGESTS["1.0.0"] and provenance["status"] == "succeeded"
    assert provenance["backend_job_id"] == dispatched.latest("backend_job_id")
    again = submitter.wait(dispatched.id)  # already finished: shown as recorded, nothing appended
    assert [e.kind for e in again.execution.events] == ["submitted", "dispatched", "succeeded"]


def test_a_long_run_is_polled_with_backoff_not_every_50_ms(tmp_path: Path, fake: FakeNomad,
                                                            client: NomadClient) -> None:
    register_tracks(client, "1.0.0")  # no outcome set: the allocation never ends, the run times out (1 minute)
    now = [0.0]
    backend = NomadBackend(client, poll_s=0.05, sleep=lambda s: now.__setitem__(0, now[0] + s), clock=lambda: now[0])
    submitter = Submitter(ledger=Ledger(f"sqlite:///{tmp_path / 'ledger.sqlite'}"),
                          store=SqliteReleaseStore(tmp_path / "rs.sqlite"),
                          resolver=FixedPins(),
                          manifests=FixedManifests(manifest("alpha")), backend=backend, shadow_root=tmp_path / "s")
    before = fake.count("GET")
    execution = submitter.submit(_request(tmp_path, "1.0.0"))
    assert execution.status == "timed_out"
    assert fake.count("GET") - before < 100  # polling every 50 ms for a minute made 1200 requests
