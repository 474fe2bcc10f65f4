"""The `rollout` command: deploy, watch and roll back biomarker versions; submit pinned executions."""

from __future__ import annotations

from collections.abc import Sequence
from types import ModuleType

from delivery import clikit
from rollout.commands import controller, executions, policies, recall, rollouts, serve, submit, tokens, triggers

DESCRIPTION = """\
Move biomarker versions onto the execution cluster progressively, and run pinned executions.
"""

EPILOG = """\
Run `rollout COMMAND --help` for the options of each command.

examples:
  rollout deploy emphysema --manifest biomarker.yaml --image REG/biomarkers/emphysema:1.4.2 --digest sha256:...
  rollout controller                  # advances every rollout (or: rollout serve --controller)
  rollout watch emphysema --json      # exit 0 done, 1 failed/rolled back, 3 waiting on a human
  rollout rollback emphysema --reason "QC drift"
"""

COMMANDS: tuple[ModuleType, ...] = (submit, executions, recall, triggers, rollouts, controller, serve, tokens,
                                   policies)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `rollout` console script."""
    return clikit.dispatch("rollout", DESCRIPTION, EPILOG, COMMANDS, argv)


if __name__ == "__main__":
    raise SystemExit(main())
