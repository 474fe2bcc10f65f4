"""Registry pull credentials for the cluster: one Nomad Variable per job, where that job's workload identity reads them.

Nomad's implicit workload-identity policy lets a job read `nomad/jobs/<its job id>` (a dispatched child reads its
parent's), and nothing else without an extra policy. So the credentials the jobs' templates read
(`rollout.jobspec`) are written there, per job, as items `username` and `password`. Writes use compare-and-set and
happen only when the stored credentials differ, so publishing on every deploy is cheap and never races silently.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from delivery.errors import DeliveryError, UsageError
from delivery.secrets import Secret
from rollout.jobspec import registry_auth_path
from rollout.nomad import NomadClient, NomadConflict

JOB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")  # one path segment: never `..` or a slash
ATTEMPTS = 3


class RegistryAuthError(DeliveryError):
    """Pull credentials could not be published to Nomad."""


@dataclass(frozen=True)
class Published:
    """One job's credentials Variable after `publish`: its path and whether this call changed it."""

    job_id: str
    path: str
    changed: bool


def publish(client: NomadClient, job_ids: Iterable[str], username: str, password: Secret) -> tuple[Published, ...]:
    """Write `username`/`password` to `nomad/jobs/<job id>` for each job, with CAS; no write where they already are.

    Other items of those Variables are kept. The password is sent to Nomad and nowhere else.

    Raises:
        UsageError: a job id that is not one plain path segment.
        RegistryAuthError: the Variable kept changing under us.
        NomadError: Nomad refused or failed (e.g. 403: the token may not write `nomad/jobs/*`).
    """
    return tuple(_publish_one(client, job, username, password) for job in _checked(job_ids))


def _checked(job_ids: Iterable[str]) -> list[str]:
    jobs = list(dict.fromkeys(job_ids))
    for job in jobs:
        if not JOB_ID.match(job):
            raise UsageError(f"job id {job!r} is not a plain Nomad job id ({JOB_ID.pattern})",
                             hint="Pass job ids such as `emphysema-fast` or `emphysema-fast-canary`.")
    return jobs


def _publish_one(client: NomadClient, job: str, username: str, password: Secret) -> Published:
    path = registry_auth_path(job)
    for _ in range(ATTEMPTS):
        current = client.variable(path).value
        items = dict(current.items) if current is not None else {}
        wanted = {**items, "username": username, "password": password.reveal()}
        if items == wanted:
            return Published(job, path, changed=False)
        try:
            client.put_variable(path, wanted, cas=current.modify_index if current is not None else 0)
        except NomadConflict:
            continue  # written in between: read again and decide again
        return Published(job, path, changed=True)
    raise RegistryAuthError(f"the Nomad Variable {path} changed {ATTEMPTS} times while publishing pull credentials",
                            hint="Something else keeps writing it; find it (`nomad var get`) and run again.")
