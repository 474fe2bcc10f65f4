"""Rollouts driven by the real controller on the embedded default, for recall tests."""

from __future__ import annotations

from pathlib import Path

from delivery.release.state import SqliteReleaseStore
from rollout.controller import operations
from rollout.controller.gates import InMemoryExecutionStats
from rollout.controller.loop import Controller, load_status
from rollout.scheduler import LocalScheduler
from tests.support.nomad_world import BATCH, Clock, Verifier, manifest, release


class Rollouts:
    """Rollouts on the embedded default: release state in SQLite, job versions in a local record per
    environment (as each would have its own cluster); environments not named share `scheduler`."""

    def __init__(self, scheduler: Path, store: Path, others: dict[str, Path] | None = None) -> None:
        self.store = SqliteReleaseStore(store)
        self.default = LocalScheduler(scheduler)
        self.schedulers = {env: LocalScheduler(path) for env, path in (others or {}).items()}
        self.clock = Clock()

    def scheduler(self, environment: str) -> LocalScheduler:
        return self.schedulers.get(environment, self.default)

    def controller(self, environment: str, biomarker: str = "alpha") -> Controller:
        return Controller(environment=environment, biomarker=biomarker, scheduler=self.scheduler(environment),
                          store=self.store,
                          verifier=Verifier(), stats=InMemoryExecutionStats(), clock=self.clock)

    def deploy(self, environment: str, version: str, *, promote: bool = False) -> str:
        m = manifest(BATCH)
        operations.start_rollout(store=self.store, scheduler=self.scheduler(environment), manifest=m, variant="fast",
                                 release=release("alpha", version), environment=environment, now=self.clock())
        if promote:
            operations.request(self.store, environment, "alpha", "promote", now=self.clock())
        status = self.controller(environment).run()
        assert status is not None
        return status.phase

    def phase(self, environment: str) -> tuple[str, str | None]:
        status = load_status(self.store.read(environment, "alpha").state)
        assert status is not None
        return status.phase, status.stable.version if status.stable else None
