"""Which track a study goes to during a rollout: deterministic per study, so a re-submit goes the same way."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Literal

from delivery.release.state import ChannelPin, ReleaseState, ReleaseStore


@dataclass(frozen=True)
class Routing:
    """The tracks of one biomarker in one environment and the share of new executions sent to the candidate."""

    stable: ChannelPin | None
    candidate: ChannelPin | None
    weight: int
    rollout_id: str | None

    @property
    def active(self) -> bool:
        """A candidate is rolling out and receives a share of executions."""
        return self.candidate is not None and self.weight > 0 and self.rollout_id is not None


def routing_of(state: ReleaseState) -> Routing:
    """Routing in a release state the rollout controller wrote (a submission passes the state it read once).

    The one place that knows the controller's `rollout` keys: `weight` (0-100) and `id`.
    """
    rollout = state.rollout or {}
    weight = rollout.get("weight", 0)
    rollout_id = rollout.get("id")
    return Routing(
        stable=state.channels.get("stable"),
        candidate=state.channels.get("candidate"),
        weight=max(0, min(100, int(weight))) if isinstance(weight, int | float) else 0,
        rollout_id=str(rollout_id) if rollout_id else None,
    )


class ReleaseStoreRouting:
    """The current routing of one biomarker, read from the store (for callers outside a submission)."""

    def __init__(self, store: ReleaseStore) -> None:
        self._store = store

    def routing(self, environment: str, biomarker: str) -> Routing:
        return routing_of(self._store.read(environment, biomarker).state)


def choose_track(routing: Routing, study_identity: str) -> Literal["stable", "candidate"]:
    """`candidate` for `weight` % of studies, chosen by a hash of (study, rollout) so the choice is stable."""
    if not routing.active:
        return "stable"
    key = f"{routing.rollout_id}\x00{study_identity}".encode()
    bucket = int.from_bytes(hashlib.sha256(key).digest()[:8], "big") % 100
    return "candidate" if bucket < routing.weight else "stable"
