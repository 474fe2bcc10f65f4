"""Before `rollout deploy` writes anything in cluster mode: Nomad plans the jobs the rollout will register.

A job Nomad refuses (invalid: 500 with its validation text; ACL: 403; malformed: 400) stops the deploy with
Nomad's own words, before the pull credentials, the release state or any job is written. A job Nomad accepts
but cannot place now (`FailedTGAllocs`, e.g. no node with the GPUs it asks for) is only a warning: elastic
clusters grow, and the controller waits for the placement (reference/nomad-api.md §1.1, §1.6).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from delivery.errors import DeliveryError
from rollout.nomad import NomadBadRequest, NomadClient, NomadError, NomadUnauthorized

Warn = Callable[[str], None]


class JobRefused(DeliveryError):
    """Nomad refuses a job the deploy would register; nothing was written."""


def check_jobs(client: NomadClient, specs: Sequence[dict[str, Any]], warn: Warn) -> None:
    """Plan each distinct spec (a dry run: Nomad writes nothing); raise on a refusal, warn on no placement.

    Raises:
        JobRefused: Nomad refused one of the jobs (its status and text quoted).
    """
    seen: list[dict[str, Any]] = []
    for spec in specs:
        if spec in seen:
            continue
        seen.append(spec)
        try:
            plan = client.plan(spec)
        except NomadError as e:
            raise JobRefused(f"Nomad refuses job {spec['ID']}, so nothing was deployed or written: {e.message}",
                             hint=_hint(e, client.settings.namespace)) from e
        if plan.failed_groups:
            warn(f"warning: Nomad accepts job {spec['ID']} but cannot place group(s) {', '.join(plan.failed_groups)}"
                 " on any node now (no node has the resources or class it asks for); the rollout waits until "
                 "one joins.")


def _hint(error: NomadError, namespace: str) -> str:
    if isinstance(error, NomadUnauthorized):
        return (f"The NOMAD_TOKEN needs submit-job in namespace {namespace} (the release-manager policy, "
                "`rollout policies`); fix the token, then deploy again.")
    if isinstance(error, NomadBadRequest):
        return "The job JSON this version of rollout renders is malformed: report it with the manifest."
    return ("If Nomad's text names a job rule (resources, ports, constraints), fix the manifest and deploy again; "
            "if Nomad is failing, retry later.")
