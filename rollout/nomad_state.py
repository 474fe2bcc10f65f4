"""`ReleaseStore` on Nomad Variables: one Variable per (environment, biomarker), written with `cas`."""

from __future__ import annotations

import json
import re

from pydantic import ValidationError

from delivery.errors import DeliveryError, UsageError
from delivery.release.state import ConflictError, ReleaseState, Versioned
from rollout.nomad import NomadClient, NomadConflict

PREFIX = "delivery/release"
# One path segment: Nomad (through urllib3) resolves `..` in a Variable path, so `../../nomad/jobs/x` would leave
# the release prefix and read or overwrite any Variable the token may touch.
SEGMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


class NomadReleaseStore:
    """Release state at `delivery/release/<env>/<biomarker>` (item `state` holds the JSON document)."""

    def __init__(self, client: NomadClient, prefix: str = PREFIX) -> None:
        self.client, self.prefix = client, prefix

    def _path(self, environment: str, biomarker: str) -> str:
        for what, name in (("environment", environment), ("biomarker", biomarker)):
            if not SEGMENT.match(name):
                raise UsageError(f"{what} name {name!r} is not a plain name ({SEGMENT.pattern})",
                                 hint=f"Pass the {what}'s name, e.g. `emphysema` or `prod`, without slashes.")
        return f"{self.prefix}/{environment}/{biomarker}"

    def read(self, environment: str, biomarker: str) -> Versioned:
        """The current state and its ModifyIndex (0 and an empty state when never written)."""
        path = self._path(environment, biomarker)
        var = self.client.variable(path).value
        if var is None:
            return Versioned(ReleaseState(environment=environment, biomarker=biomarker), 0)
        try:
            return Versioned(ReleaseState.model_validate_json(var.get("state") or "{}"), var.modify_index)
        except ValidationError as e:
            first = e.errors(include_url=False)[0]
            where = ".".join(str(p) for p in first["loc"]) or "state"
            raise DeliveryError(f"Nomad Variable {path} does not hold release state ({where}: {first['msg']})",
                                hint="Inspect it with `nomad var get`; only rollout and delivery should write "
                                     "under delivery/release/.") from None


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

    def pairs(self) -> list[tuple[str, str]]:
        """Every (environment, biomarker) with release state, from one listing of the prefix."""
        prefix = f"{self.prefix}/"
        split = (p[len(prefix):].split("/") for p in self.client.variable_paths(prefix))
        return sorted((parts[0], parts[1]) for parts in split if len(parts) == 2)
