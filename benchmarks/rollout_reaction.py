"""Reaction time from a Nomad state change to the controller's next action, and requests per rollout,
with blocking queries vs a 5-second polling baseline measured in the same run. Prints JSON."""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rollout.controller import operations  # noqa: E402
from tests.support.fake_nomad import FakeNomad  # noqa: E402
from tests.support.nomad_world import ENV, SERVICE, Clock, client, controller, manifest, release  # noqa: E402

ROUNDS = 5


def one(blocking: bool) -> tuple[float, int]:
    """Canaries turn healthy 0.5 s after the controller starts waiting; time until it promotes."""
    tmp = Path(tempfile.mkdtemp())
    clock = Clock()
    with FakeNomad() as fake:
        m = manifest(SERVICE)
        for version in ("1.0.0", "1.1.0"):
            store_path = tmp / "release-state.sqlite"
            from delivery.release.state import SqliteReleaseStore
            operations.start_rollout(store=SqliteReleaseStore(store_path), scheduler=client(fake.address),
                                     manifest=m, variant="web", release=release(m.name, version),
                                     environment=ENV, now=clock())
            if version == "1.1.0":
                fake.default_health = None
            ctl = controller(fake.address, tmp, m.name, clock)
            if version == "1.0.0":
                ctl.run()
                continue
            ctl.run()  # registers; canaries wait for health
            before = fake.count()
            changed_at: list[float] = []
            acted_at: list[float] = []
            ctl.on_action = lambda a: acted_at.append(time.monotonic()) if not acted_at else None

            def flip() -> None:
                for alloc in fake.allocs_of("quicklook-web"):
                    if (alloc["DeploymentStatus"] or {}).get("Canary"):
                        changed_at.append(time.monotonic())
                        fake.set_alloc_health(alloc["ID"], True)

            threading.Timer(0.5, flip).start()

            def wait(c: object) -> None:
                if blocking:
                    ctl.block_for_change(30.0)
                else:
                    time.sleep(5.0)

            ctl.run(wait=wait)
            return acted_at[0] - changed_at[0], fake.count() - before
    raise AssertionError("unreachable")


def main() -> None:
    blocking = [one(True) for _ in range(ROUNDS)]
    polling = [one(False) for _ in range(2)]
    b_ms = statistics.median(r[0] for r in blocking) * 1000
    p_ms = statistics.median(r[0] for r in polling) * 1000
    b_req = statistics.median(r[1] for r in blocking)
    p_req = statistics.median(r[1] for r in polling)
    print(json.dumps({"reaction_ms_median_blocking": round(b_ms, 1), "reaction_ms_median_polling_5s": round(p_ms, 1),
                      "reaction_ratio_polling_over_blocking": round(p_ms / max(b_ms, 1e-6), 1),
                      "requests_after_register_blocking": b_req, "requests_after_register_polling_5s": p_req,
                      "target_median_ms": 250, "meets_target": b_ms <= 250, "rounds": ROUNDS}, indent=2))


if __name__ == "__main__":
    main()
