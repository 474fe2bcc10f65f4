"""`delivery ci run` on emphysema: wall time on an empty registry and after a one-line code change, and the bytes
the second push sends against the size of the layers that changed (target ratio 1.0: only changed layers travel).

Run: .venv/bin/python benchmarks/ci_run.py   (needs root for debootstrap the first time; prints JSON)
The engine's build cache is whatever this machine has: `build_s` of the first run shows whether it was warm.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from delivery.config import registry_settings  # noqa: E402
from delivery.localenv import start_registry  # noqa: E402

GIT = ["git", "-c", "user.name=bench", "-c", "user.email=bench@example.org"]


def delivery(*args: str) -> dict:
    done = subprocess.run([str(REPO / ".venv" / "bin" / "delivery"), *args, "--json"], capture_output=True,
                          text=True, check=False)
    if done.returncode != 0:
        sys.exit(f"delivery {' '.join(args)} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout)


def timed_run(repo: Path, base: str) -> tuple[float, dict]:
    started = time.monotonic()
    result = delivery("ci", "run", str(repo), "--base-image", base)
    return round(time.monotonic() - started, 1), result


def layer_sizes(name: str, digest: str) -> dict[str, int]:
    manifest = registry_settings().client().get_manifest(name, digest).json()
    return {layer["digest"]: int(layer["size"]) for layer in manifest["layers"]}


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="bench-ci-"))
    registry = start_registry(work / "registry")
    os.environ.update({"DELIVERY_REGISTRY": registry.host, "DELIVERY_REGISTRY_USER": registry.username,
                       "DELIVERY_REGISTRY_PASSWORD": registry.password.reveal(), "DELIVERY_HOME": str(work / "home")})
    try:
        base = f"{registry.host}/base/python:bookworm"
        delivery("base-image", "build", "--suite", "bookworm", "--with", "python3,python3-venv,ca-certificates",
                 "--venv", "/opt/venv", "--push", base)
        repo = work / "emphysema"
        shutil.copytree(REPO / "biomarkers" / "emphysema", repo,
                        ignore=shutil.ignore_patterns("*.egg-info", "__pycache__", ".delivery", ".pytest_cache"))
        subprocess.run(["git", "-C", str(repo), "init", "-q", "-b", "main"], check=True)
        subprocess.run([*GIT, "-C", str(repo), "add", "-A"], check=True)
        subprocess.run([*GIT, "-C", str(repo), "commit", "-qm", "emphysema"], check=True)
        subprocess.run(["git", "-C", str(repo), "tag", "v0.1.0"], check=True)
        cold_s, first = timed_run(repo, base)

        init = repo / "emphysema" / "__init__.py"
        init.write_text(init.read_text() + "# one-line change for the benchmark\n")
        subprocess.run([*GIT, "-C", str(repo), "commit", "-qam", "one-line change"], check=True)
        warm_s, second = timed_run(repo, base)

        before = layer_sizes("biomarkers/emphysema", first["push"]["digest"])
        after = layer_sizes("biomarkers/emphysema", second["push"]["digest"])
        changed = {d: s for d, s in after.items() if d not in before}
        sent = int(second["push"]["bytes_pushed"])
        stages = {r["name"]: r["duration_s"] for r in first["stages"]}
        print(json.dumps({
            "cold_run_s": cold_s, "cold_stage_s": stages,
            "after_one_line_change_s": warm_s,
            "after_change_stage_s": {r["name"]: r["duration_s"] for r in second["stages"]},
            "speedup": round(cold_s / warm_s, 2),
            "image_layers": len(after), "changed_layers": len(changed),
            "changed_layers_bytes": sum(changed.values()), "second_push_bytes_sent": sent,
            "sent_over_changed": round(sent / max(1, sum(changed.values())), 3),
            "image_compressed_bytes": sum(after.values()),
        }, indent=2))
    finally:
        registry.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
