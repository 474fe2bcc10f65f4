"""Tiny images built without any network: FROM scratch plus a static busybox."""

from __future__ import annotations

from pathlib import Path

BUSYBOX_PATHS = ("/bin/busybox", "/usr/bin/busybox")


def static_busybox() -> Path | None:
    """The host's static busybox (Debian's busybox-static), if installed."""
    for candidate in BUSYBOX_PATHS:
        path = Path(candidate)
        if path.exists() and b"ld-linux" not in path.read_bytes()[:8192]:
            return path
    return None


def write_busybox_context(directory: Path, busybox: Path, *, extra_dockerfile: str = "", files: dict[str, str] | None = None) -> Path:
    """A build context whose image has busybox as /bin/sh and friends."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "busybox").write_bytes(busybox.read_bytes())
    (directory / "busybox").chmod(0o755)
    for name, text in (files or {}).items():
        target = directory / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
    dockerfile = (
        "FROM scratch\n"
        "COPY busybox /bin/busybox\n"
        'RUN ["/bin/busybox", "--install", "-s", "/bin"]\n'
        "ENV PATH=/bin\n"
        f"{extra_dockerfile}"
        'CMD ["/bin/sh"]\n'
    )
    (directory / "Dockerfile").write_text(dockerfile, encoding="utf-8")
    return directory
