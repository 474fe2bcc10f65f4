"""JUnit XML for Jenkins: the test command's own report when it wrote one, else one test case for the command."""

from __future__ import annotations

import shutil
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path

from delivery.docker import ContainerOutcome


def write(target: Path, reports: Path, stage: str, command: Sequence[str], outcome: ContainerOutcome) -> Path:
    """Write `target`: the first *.xml the command left in `reports`, or a one-case suite built here."""
    own = sorted(reports.glob("*.xml"))
    if own:
        shutil.copyfile(own[0], target)
        return target
    suite = ET.Element("testsuite", name=f"delivery.{stage}", tests="1",
                       failures="0" if outcome.exit_code == 0 else "1", errors="0")
    case = ET.SubElement(suite, "testcase", classname=f"delivery.{stage}", name=" ".join(command))
    log = "\n".join(outcome.log_tail)
    if outcome.exit_code != 0:
        reason = "timed out" if outcome.timed_out else f"exit code {outcome.exit_code}"
        failure = ET.SubElement(case, "failure", message=reason)
        failure.text = log
    ET.SubElement(case, "system-out").text = log
    ET.ElementTree(suite).write(target, encoding="utf-8", xml_declaration=True)
    return target
