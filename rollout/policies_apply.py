"""`rollout policies apply`: the rendered Nomad ACL policies and namespace onto a cluster, all or nothing.

Everything is read before anything is written, a write happens only where Nomad holds something else (a re-run
writes nothing), and the namespace comes last (one write, after every policy). When Nomad refuses a write, the
policies this run had already written are put back as they were (the ones it created are deleted), so a refusal
never leaves a half-applied set. Nomad's ACL API has no compare-and-set: an operator editing the same policies at
the same moment can still race this command.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

from delivery.errors import DeliveryError
from rollout.nomad import AclPolicy, NamespaceView, NomadError, NomadUnauthorized
from rollout.policies import PRINCIPALS, Scope, namespace_spec, nomad_policy

Action = Literal["create", "update", "unchanged"]
MANAGEMENT_HINT = ("Nomad lets only a management token write ACL policies and namespaces: set NOMAD_TOKEN to one "
                   "(`nomad acl bootstrap` gives the first; `nomad acl token create -type management` more).")


class PolicyApplyError(DeliveryError):
    """Nomad refused a policy or the namespace; what this run wrote was rolled back (or the message says not)."""


class AclApi(Protocol):
    """What applying needs of Nomad (`rollout.nomad.NomadClient`)."""

    def acl_policy(self, name: str) -> AclPolicy | None: ...

    def put_acl_policy(self, policy: AclPolicy) -> None: ...

    def delete_acl_policy(self, name: str) -> None: ...

    def namespace(self, name: str) -> NamespaceView | None: ...

    def put_namespace(self, name: str, description: str) -> None: ...


@dataclass(frozen=True)
class Change:
    """One object and what applying does to it; `before` is what Nomad held (None: absent)."""

    kind: Literal["policy", "namespace"]
    name: str
    action: Action
    description: str
    rules: str = ""
    before: AclPolicy | None = None

    def as_dict(self) -> dict[str, str]:
        """For `--json`."""
        return {"kind": self.kind, "name": self.name, "action": self.action}


def desired_policies(scope: Scope) -> list[AclPolicy]:
    """The policies `rollout policies render` writes, as the ACL API takes them."""
    bodies = [nomad_policy(principal, scope) for principal in PRINCIPALS]
    return [AclPolicy(name=b["Name"], description=b["Description"], rules=b["Rules"]) for b in bodies]


def plan(nomad: AclApi, scope: Scope) -> list[Change]:
    """Read every policy and the namespace; what applying would change (policies first, the namespace last).

    Raises:
        PolicyApplyError: the token may not read ACL policies (not a management token).
        NomadError: Nomad failed.
    """
    try:
        changes = [_policy_change(want, nomad.acl_policy(want.name)) for want in desired_policies(scope)]
        spec = namespace_spec(scope)
        existing = nomad.namespace(spec["Name"])
    except NomadUnauthorized as e:
        raise PolicyApplyError(f"cannot read the ACL policies: {e.message}", hint=MANAGEMENT_HINT) from e
    # An existing namespace is kept as it is: a write replaces every field (quota, meta, capabilities) operators set.
    action: Action = "unchanged" if existing is not None else "create"
    return [*changes, Change("namespace", spec["Name"], action, spec["Description"])]


def _policy_change(want: AclPolicy, have: AclPolicy | None) -> Change:
    action: Action = "create" if have is None else "unchanged" if have.same_as(want) else "update"
    return Change("policy", want.name, action, want.description, want.rules, before=have)


def apply(nomad: AclApi, changes: list[Change]) -> list[Change]:
    """Write every change; on a refusal, restore what this run wrote and raise.

    Raises:
        PolicyApplyError: Nomad refused a write; the message names the object, quotes Nomad and says what was
            restored.
    """
    done: list[Change] = []
    for change in changes:
        if change.action == "unchanged":
            continue
        try:
            _write(nomad, change)
        except NomadError as e:
            raise _refused(change, e, _undo(nomad, done)) from e
        done.append(change)
    return done


def _write(nomad: AclApi, change: Change) -> None:
    if change.kind == "namespace":
        nomad.put_namespace(change.name, change.description)
    else:
        nomad.put_acl_policy(AclPolicy(change.name, change.description, change.rules))


def _undo(nomad: AclApi, done: list[Change]) -> list[tuple[str, str | None]]:
    """Put back what the policies were, newest first: (name, None when restored, else why not)."""
    outcome: list[tuple[str, str | None]] = []
    for change in reversed(done):  # only policies: the namespace is the last write
        try:
            if change.before is None:
                nomad.delete_acl_policy(change.name)
            else:
                nomad.put_acl_policy(change.before)
            outcome.append((change.name, None))
        except NomadError as e:
            outcome.append((change.name, e.message))
    return outcome


def _refused(change: Change, error: NomadError, undone: list[tuple[str, str | None]]) -> PolicyApplyError:
    """The message: which object, Nomad's own text, and what became of the writes before it."""
    what = "ACL policy" if change.kind == "policy" else "namespace"
    lines = [f"Nomad refused {what} {change.name}: {error.message}"]
    restored = [name for name, problem in undone if problem is None]
    failed = [f"{name} ({problem})" for name, problem in undone if problem is not None]
    if restored:
        lines.append(f"Restored what this run had changed: {', '.join(restored)}.")
    if failed:
        lines.append(f"Could NOT restore: {'; '.join(failed)}. Run `rollout policies apply` again once Nomad "
                     "answers, or put them back by hand.")
    elif not undone:
        lines.append("Nothing had been written.")
    if isinstance(error, NomadUnauthorized):
        hint = MANAGEMENT_HINT
    else:
        hint = "Fix what Nomad names (`rollout policies render` shows the rules) and run again; it is safe to re-run."
    return PolicyApplyError("\n".join(lines), hint=hint)
