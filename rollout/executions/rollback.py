"""The recall's rollback through the rollout controller: the version stops running wherever a rollout put it."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from delivery.errors import DeliveryError
from delivery.release.state import ReleaseStore
from rollout.controller import operations
from rollout.controller.loop import Controller, load_status
from rollout.controller.model import RolloutStatus

ControllerFor = Callable[[str, str], Controller]  # (environment, biomarker) -> the controller that acts there


class RollbackIncomplete(DeliveryError):
    """Some environments could not be rolled back; `done` lists what was done in the others."""

    def __init__(self, message: str, done: list[str]) -> None:
        super().__init__(message, hint="Deploy a fixed version there (`rollout deploy`) or stop the track by hand.")
        self.done = done


class ControllerRollback:
    """Where `version` is the candidate of a rollout in progress, or the stable a finished rollout promoted, ask
    the controller for `rollback` (recorded on the rollout, audited in its history) and let it carry it out."""

    def __init__(self, store: ReleaseStore, environments: Sequence[str], controller_for: ControllerFor,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self._store, self._environments, self._controller_for = store, environments, controller_for
        self._clock = clock

    def rollback(self, biomarker: str, version: str, reason: str) -> list[str]:
        """One line per environment; raises RollbackIncomplete naming those where it runs on regardless."""
        done: list[str] = []
        problems: list[str] = []
        for environment in self._environments:
            try:
                done.append(self._one(environment, biomarker, version, reason))
            except DeliveryError as e:
                problems.append(f"{environment}: {e.message}")
        if problems:
            raise RollbackIncomplete("; ".join(problems), done)
        return done

    def _one(self, environment: str, biomarker: str, version: str, reason: str) -> str:
        status = load_status(self._store.read(environment, biomarker).state)
        if status is None or version not in _running(status):
            return f"{version} is not rolled out in {environment}; nothing to roll back"
        if status.candidate.version != version:  # the stable under another rollout: nothing older is recorded
            raise DeliveryError(f"{version} is the stable of {biomarker} (last rollout: {status.candidate.version}, "
                                f"{status.phase}); no older version is recorded to return to")
        before = status.phase
        operations.request(self._store, environment, biomarker, "rollback", now=self._clock(),
                           reason=f"recall: {reason}")
        after = self._controller_for(environment, biomarker).run()
        stable = after.stable.version if after is not None and after.stable else "none"
        phase = after.phase if after is not None else "unknown"
        return f"rolled back {biomarker} {version} in {environment} (was {before}; now {phase}, stable {stable})"


def _running(status: RolloutStatus) -> set[str]:
    """Versions a rollout runs: its candidate until it ends (or once promoted), and its stable."""
    running = {status.stable.version} if status.stable else set()
    if not status.terminal or status.phase == "Succeeded":
        running.add(status.candidate.version)
    return running
