"""`rollout controller`: the controller service that advances every rollout, with leader election."""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

from delivery import clikit
from delivery.argtypes import bounded_float
from delivery.config import add_registry_flag
from delivery.paths import state_home
from rollout.compose import Composition, compose
from rollout.controller.leader import MAX_SKEW_S, TTL_S, FileLease, Leadership, Lease, Log, NomadLease
from rollout.controller.service import INTERVAL_S, ControllerService, json_log, release_state_watch
from rollout.nomad import NomadClient

EPILOG = f"""\
examples:
  rollout controller                          # run until SIGTERM/Ctrl-C (NOMAD_ADDR set: cluster mode)
  rollout controller --json                   # one JSON line per action on stdout
  rollout controller --once                   # one pass over every rollout, then exit
  rollout serve --controller                  # the same loop inside the API server

Every rollout of every environment is advanced here: timed pauses, gates, `rollout pause|resume|abort|rollback`
and the API's actions take effect with no terminal open (`rollout watch` only shows progress). Start as many
replicas as you like: in cluster mode they elect one leader through the Nomad Variable
delivery/controller/leader (compare-and-set, TTL {TTL_S:g} s, renewed every TTL/3; the token needs variables
read and write on it); the others wait and take over within about one TTL when the leader dies. The embedded
default allows one controller per machine ($DELIVERY_HOME/controller.lock).
Leader changes and errors are JSON lines on stderr.
exit status: 0 stopped (or --once done), 1 the leader lock cannot be used, 2 usage error
"""


def lease_for(c: Composition, ttl: float = TTL_S) -> Lease:
    """The Nomad Variable lock in cluster mode, a file lock in the embedded default."""
    if c.nomad is None:
        return FileLease(state_home() / "controller.lock")
    return NomadLease(NomadClient(c.nomad.settings), ttl=ttl, max_skew=min(MAX_SKEW_S, ttl / 6))


def build_service(args: argparse.Namespace, *, on_progress: Log | None = None) -> ControllerService:
    """The service on this configuration's release state, scheduler and ledger (checked here, once)."""
    c = compose(args)
    _ = c.ledger  # cluster mode without a shared ledger fails now, not once per rollout
    ttl = getattr(args, "ttl", None) or TTL_S
    log = json_log(sys.stderr)

    # One listing per pass: the service itself skips biomarkers without a rollout in progress.
    return ControllerService(rollouts=c.store.pairs, controller_for=c.controller_for,
                             leadership=Leadership(lease_for(c, ttl), period=ttl / 3, log=log),
                             interval=getattr(args, "interval", None) or INTERVAL_S, on_progress=on_progress,
                             log=log, state_watch=release_state_watch(c.store))


def _text_progress(record: dict[str, object]) -> None:
    rest = " ".join(f"{k}={v}" for k, v in record.items() if k not in {"environment", "biomarker", "action", "why"})
    why = f" ({record['why']})" if record.get("why") else ""
    print(f"{record['environment']}/{record['biomarker']}: {record['action']} {rest}{why}".rstrip(), flush=True)


def _controller(args: argparse.Namespace) -> int:
    service = build_service(args, on_progress=json_log(sys.stdout) if args.json else _text_progress)
    if args.once:
        if not service.run_once():
            print(f"another controller leads ({service.leadership.lease.describe()}); nothing done", file=sys.stderr)
        return 0
    with stop_on_signals(service):
        service.run()
    return 0


@contextmanager
def stop_on_signals(service: ControllerService) -> Iterator[None]:
    """SIGTERM and SIGINT finish the current step, release the lock and return."""
    def stop(signum: int, frame: FrameType | None) -> None:
        service.stop(release=True)

    before = {s: signal.signal(s, stop) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for s, handler in before.items():
            signal.signal(s, handler)


def add_service_flags(p: argparse.ArgumentParser) -> None:
    """The flags the controller service takes, in `rollout controller` and `rollout serve --controller`."""
    p.add_argument("--interval", type=bounded_float(0.05, 3600), default=INTERVAL_S,
                   help=f"longest sleep between passes in seconds (default {INTERVAL_S:g}); changes seen by "
                        "blocking queries wake it sooner")
    p.add_argument("--ttl", type=bounded_float(1, 600), default=TTL_S,
                   help=f"leader lock TTL in seconds (default {TTL_S:g}; renewed every TTL/3)")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `rollout controller`."""
    p = clikit.add_command(sub, "controller", _controller, help="run the controller service that advances rollouts",
                           epilog=EPILOG)
    p.add_argument("--once", action="store_true", help="one pass over every rollout, then exit")
    p.add_argument("--nomad-addr", help="Nomad address (default NOMAD_ADDR; none: the embedded default)")
    p.add_argument("--namespace", help="Nomad namespace (default NOMAD_NAMESPACE or `default`)")
    p.add_argument("--region", help="Nomad region (default NOMAD_REGION)")
    p.add_argument("--public-key", type=Path, help="CI signing public key (default DELIVERY_PUBLIC_KEY)")
    add_registry_flag(p)
    add_service_flags(p)
    clikit.add_json_flag(p)
