"""Tiny busybox "biomarkers" with real digests in the test registry, and the release state around them."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from delivery.docker import DockerClient, RegistryAuth
from delivery.localenv import RegistryHandle
from delivery.manifest.model import Biomarker
from delivery.manifest.validate import parse_manifest
from delivery.release.state import ChannelPin, Freeze, ReleaseStore
from tests.support.images import write_busybox_context

# Reads /data/input/study.txt (one number per line), writes a report whose numbers scale with $FACTOR, and names
# the digest it was told it runs as; exits 3 when $FAIL_ON_STEP matches the step (for workflow tests).
RUN_SH = r"""#!/bin/sh
set -e
sum=0
for f in $(find /data/input -type f -name '*.txt' | sort); do
  for n in $(cat "$f"); do sum=$((sum + n)); done
done
volume=$((sum * FACTOR))
left=$((sum * FACTOR / 2))
printf '{"volume_ml": %s, "per_lung": {"left": {"laa950_percent": %s}}, "image_digest": "%s"}\n' \
  "$volume" "$left" "$BIOMARKER_IMAGE_DIGEST" > /data/output/report.json
echo "$volume" > /data/output/volume.txt
echo "quantified $sum x $FACTOR"
"""

# A workflow step: copies its input's numbers forward, doubling them; `fail` variant exits non-zero with a message.
STEP_SH = r"""#!/bin/sh
for f in $(find /data/input -type f -name '*.txt' | sort); do
  for n in $(cat "$f"); do echo $((n * 2)); done
done > /data/output/study.txt
echo "step wrote $(wc -l < /data/output/study.txt) values"
"""

MANIFEST = """\
apiVersion: delivery/v1
kind: Biomarker
name: {name}
description: A busybox stand-in biomarker for execution tests.
owners: ["@imaging/tests"]
image: biomarkers/{name}
test:
  command: ["sh", "-c", "true"]
variants:
  fast:
    command: ["sh", "/app/run.sh"]
    resources: {{cpu_mhz: 500, memory_mb: 64}}
    timeout: 1m
  convert:
    command: ["sh", "/app/step.sh"]
    resources: {{cpu_mhz: 500, memory_mb: 64}}
    timeout: 1m
  broken:
    command: ["sh", "-c", "echo 'segmentation exploded: no lungs found' >&2; exit 3"]
    resources: {{cpu_mhz: 500, memory_mb: 64}}
    timeout: 1m
rollout:
  gates:
    equivalence:
      volume_ml: {{relative: 0.01}}
      per_lung.left.laa950_percent: {{absolute: 0.5}}
workflows:
  chain:
    steps:
      - {{name: convert, variant: convert}}
      - {{name: quantify, variant: fast, input: convert}}
  failing:
    steps:
      - {{name: convert, variant: convert}}
      - {{name: segment, variant: broken, input: convert}}
      - {{name: quantify, variant: fast, input: segment}}
"""


def manifest(name: str) -> Biomarker:
    return parse_manifest(MANIFEST.format(name=name).encode(), f"{name}/biomarker.yaml")


@dataclass(frozen=True)
class Built:
    name: str
    version: str
    repository: str  # registry path, e.g. biomarkers/alpha
    digest: str
    image: str  # host/repository

    @property
    def reference(self) -> str:
        return f"{self.image}:{self.version}@{self.digest}"


def build_biomarker(client: DockerClient, busybox: Path, workdir: Path, registry: RegistryHandle,
                    auth: RegistryAuth, name: str, version: str, *, factor: int = 3) -> Built:
    """Build and push `biomarkers/NAME:VERSION`; `factor` scales every number it reports."""
    context = write_busybox_context(
        workdir / f"{name}-{version}", busybox, files={"app/run.sh": RUN_SH, "app/step.sh": STEP_SH},
        extra_dockerfile=f"COPY app /app\nENV FACTOR={factor}\nLABEL build={uuid.uuid4().hex} version={version}\n")
    repository = f"biomarkers/{name}"
    image = f"{registry.host}/{repository}"
    client.build(context, f"{image}:{version}", network_mode="none")
    pushed = client.push(image, version, auth)
    return Built(name, version, repository, pushed.digest, image)


def pin(built: Built, reason: str = "") -> ChannelPin:
    return ChannelPin(version=built.version, digest=built.digest, image=built.image,
                      moved_at=datetime.now(UTC), moved_by="tests", reason=reason)


def set_channels(store: ReleaseStore, environment: str, name: str, *, stable: Built | None = None,
                 candidate: Built | None = None, weight: int | None = None, rollout_id: str = "r1",
                 freezes: tuple[Freeze, ...] | None = None) -> None:
    """Move channels / rollout weight / freezes of one biomarker, compare-and-set like everyone else."""
    current = store.read(environment, name)
    channels = dict(current.state.channels)
    if stable is not None:
        channels["stable"] = pin(stable)
    if candidate is not None:
        channels["candidate"] = pin(candidate)
    update: dict[str, object] = {"channels": channels}
    if weight is not None:
        update["rollout"] = {"id": rollout_id, "weight": weight}
    if freezes is not None:
        update["freezes"] = freezes
    store.write(current.state.model_copy(update=update), current.index)


def cohort_freeze(version: str, cohort: str | None) -> Freeze:
    return Freeze(id=f"trial-{uuid.uuid4().hex[:6]}", reason="trial protocol fixes the version", owner="qa@example.org",
                  created_at=datetime.now(UTC), version=version, cohort=cohort)


def study(folder: Path, *numbers: int) -> Path:
    """A fake study: a folder with one text file of numbers."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "study.txt").write_text("".join(f"{n}\n" for n in numbers), encoding="utf-8")
    return folder


class RecordingRollback:
    """A `Rollback` that remembers what it was asked (the CLI wires the controller's)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, str]] = []

    def rollback(self, biomarker: str, version: str, reason: str) -> list[str]:
        self.calls.append((biomarker, version, reason))
        return [f"rolled back {biomarker} {version} in test-env"]
