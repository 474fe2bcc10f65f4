"""`ReleaseStore` on Nomad Variables: one Variable per (environment, biomarker), written with `cas`."""

from __future__ import annotations

import json

from delivery.release.state import ConflictError, ReleaseState, Versioned
from rollout.nomad import NomadClient, NomadConflict

PREFIX = "delivery/release"


class NomadReleaseStore:
    """Release state at `delivery/release/<env>/<biomarker>` (item `state` holds the JSON document)."""

    def __init__(self, client: NomadClient, prefix: str = PREFIX) -> None:
        self.client, self.prefix = client, prefix

    def _path(self, environment: str, biomarker: str) -> str:
        return f"{self.prefix}/{environment}/{biomarker}"

    def read(self, environment: str, biomarker: str) -> Versioned:
        """The current state and its ModifyIndex (0 and an empty state when never written)."""
        var = self.client.variable(self._path(environment, biomarker)).value
        if var is None:
            return Versioned(ReleaseState(environment=environment, biomarker=biomarker), 0)
        return Versioned(ReleaseState.model_validate_json(var.get("state") or "{}"), var.modify_index)

    def write(self, state: ReleaseState, expected_index: int) -> int:
        """Store `state` if the Variable's ModifyIndex is still `expected_index`; returns the new index."""
        doc = json.dumps(state.model_dump(mode="json"), sort_keys=True)
        try:
            var = self.client.put_variable(self._path(state.environment, state.biomarker), {"state": doc},
                                           cas=expected_index)
        except NomadConflict as e:
            raise ConflictError(f"release state of {state.biomarker} in {state.environment} changed since index "
                                f"{expected_index}", hint="Another controller or user acted; run again.") from e
        return var.modify_index

    def biomarkers(self, environment: str) -> list[str]:
        """Biomarkers with release state in `environment`."""
        prefix = f"{self.prefix}/{environment}/"
        return sorted(p[len(prefix):] for p in self.client.variable_paths(prefix))
