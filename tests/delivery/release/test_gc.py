"""Retention against the real registry: dry run first; never a release, a pin, a freeze or a running digest."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from delivery.cli import main
from delivery.release.gc import apply, plan, protected_digests, read_tags
from delivery.release.state import Freeze
from tests.delivery.release.conftest import Release
from tests.support.oci import attest, push_image


class Running:
    """Executions that used exactly these digests (the ledger's answer, faked)."""

    def __init__(self, *digests: str) -> None:
        self.digests = set(digests)

    def digests_used_since(self, since: datetime) -> set[str]:
        return set(self.digests)


def test_gc_dry_run_shows_and_apply_deletes_only_the_unneeded_pre_release(
        release: Release, capsys: pytest.CaptureFixture[str]) -> None:
    env = release.write_environment(required_gates=[], clinical_channels=[])
    repo = env.repository("alpha")
    d = {v: push_image(release.client, repo, v).digest
         for v in ("1.0.0", "1.1.0-rc.1", "1.1.0-rc.2", "1.1.0-rc.3", "1.1.0-rc.4", "1.1.0-rc.5")}
    release.client.put_manifest(repo, "1.0.0-rc.9", release.client.get_manifest(repo, "1.0.0"))  # shares a release
    attest(release.client, repo, d["1.1.0-rc.3"], release.keys)
    assert main(["promote", "alpha", "1.1.0-rc.1", "--to", "local"]) == 0  # pinned by local:candidate
    now = datetime.now(UTC)
    state = release.store.read("local", "alpha")
    freeze = Freeze(id="f", reason="study", owner="qa", created_at=now - timedelta(minutes=1), version="1.1.0-rc.4")
    release.store.write(state.state.model_copy(update={"freezes": (freeze,)}), state.index)
    capsys.readouterr()

    assert main(["gc", "alpha", "--keep", "1"]) == 0
    dry = capsys.readouterr().out
    # the CLI has no execution ledger yet, so rc.2 (running, below) is still a candidate in this dry run
    assert "would delete 3 digest(s)" in dry and "1.1.0-rc.3" in dry and "nothing was deleted" in dry
    assert release.client.head_manifest(repo, "1.1.0-rc.3") == d["1.1.0-rc.3"]

    tags = read_tags(release.client, repo)
    guarded = protected_digests("alpha", tags, release.store, ["local"], Running(d["1.1.0-rc.2"]),
                                now - timedelta(days=1), now)
    gc_plan = plan(repo, tags, keep=1, protected=guarded)
    deleted = {t for deletion in apply(release.client, gc_plan) for t in deletion.tags}
    assert deleted == {"1.1.0-rc.3", "sha256-" + d["1.1.0-rc.3"].removeprefix("sha256:") + ".att"}
    left = read_tags(release.client, repo)
    assert {"1.0.0", "1.0.0-rc.9", "1.1.0-rc.1", "1.1.0-rc.2", "1.1.0-rc.4", "1.1.0-rc.5"} <= set(left)
    assert "1.1.0-rc.3" not in left
    why = {k.tag: k.why for k in gc_plan.kept}
    assert why["1.1.0-rc.1"] == "pinned by local:candidate"
    assert why["1.1.0-rc.2"].startswith("used by an execution")
    assert why["1.1.0-rc.4"] == "pinned by freeze f in local"
    assert why["1.0.0-rc.9"] == "another kept tag points at its digest"
    assert why["1.1.0-rc.5"].startswith("among the 1 newest")


def test_gc_apply_is_audited_and_a_second_run_finds_nothing(release: Release,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    env = release.write_environment(required_gates=[], clinical_channels=[])
    for version in ("2.0.0-rc.1", "2.0.0-rc.2"):
        push_image(release.client, env.repository("beta"), version)
    assert main(["gc", "beta", "--keep", "1", "--apply", "--json"]) == 0
    capsys.readouterr()
    assert read_tags(release.client, env.repository("beta")).keys() == {"2.0.0-rc.2"}
    events = release.audit.events(action="gc")
    assert len(events) == 1 and events[0].subject == "local/beta"
    assert main(["gc", "beta", "--keep", "1", "--apply"]) == 0
    assert "deleted 0 digest(s)" in capsys.readouterr().out
