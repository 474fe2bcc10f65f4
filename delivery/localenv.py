"""Local daemons for the embedded default and the test harness: a Docker engine and a registry."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import bcrypt
import requests

from delivery.docker import DockerClient, DockerError, private_socket
from delivery.errors import ConfigError, ExternalServiceError
from delivery.secrets import Secret

DEFAULT_SOCKETS = ("/var/run/docker.sock",)
READY_TIMEOUT_S = 60.0


def cache_dir() -> Path:
    """Where daemons keep their data between runs (`DELIVERY_CACHE` or the XDG cache)."""
    explicit = os.environ.get("DELIVERY_CACHE")
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    path = Path(explicit) if explicit else Path(xdg) / "biomarker-delivery"
    path.mkdir(parents=True, exist_ok=True)
    return path


@dataclass
class EngineHandle:
    """A Docker engine we found or started; `stop()` stops it only if we started it."""

    base_url: str
    process: subprocess.Popen[bytes] | None = None
    runtime_dir: Path | None = None

    @property
    def started_here(self) -> bool:
        return self.process is not None

    def stop(self) -> None:
        """Stop a dockerd we started (gracefully, then by force)."""
        if self.process is None:
            return
        _terminate(self.process, grace_s=20)
        self.process = None
        if self.runtime_dir:
            shutil.rmtree(self.runtime_dir, ignore_errors=True)


def find_engine() -> str | None:
    """The base URL of a Docker engine that answers, if any (DOCKER_HOST first)."""
    candidates = [os.environ["DOCKER_HOST"]] if os.environ.get("DOCKER_HOST") else []
    candidates += [f"unix://{p}" for p in (*DEFAULT_SOCKETS, str(private_socket())) if Path(p).exists()]
    for url in candidates:
        try:
            DockerClient(url, timeout=5).ping()
            return url
        except DockerError:
            continue
    return None


def ensure_engine(data_root: Path | None = None) -> EngineHandle:
    """Use the engine that answers, or start a private dockerd (no iptables, no bridge)."""
    url = find_engine()
    if url:
        return EngineHandle(url)
    binary = shutil.which("dockerd")
    if binary is None:
        raise ConfigError("no Docker engine answers and dockerd is not installed",
                          hint="Install Debian's docker.io (apt-get install docker.io) or set DOCKER_HOST.")
    return _start_dockerd(binary, data_root or cache_dir() / "dockerd")


def _start_dockerd(binary: str, data_root: Path) -> EngineHandle:
    # The socket sits at a fixed short path so later commands find this engine without DOCKER_HOST.
    sock = private_socket()
    runtime = sock.parent
    runtime.mkdir(mode=0o700, parents=True, exist_ok=True)
    # Left by a dockerd that was killed (no engine answered there): a stale pidfile whose pid was reused
    # by another process would make the new dockerd refuse to start.
    sock.unlink(missing_ok=True)
    (runtime / "dockerd.pid").unlink(missing_ok=True)
    data_root.mkdir(parents=True, exist_ok=True)
    (runtime / "daemon.json").write_text("{}\n", encoding="utf-8")
    command = [
        binary, "--config-file", str(runtime / "daemon.json"), "--data-root", str(data_root),
        "--exec-root", str(runtime / "exec"), "--pidfile", str(runtime / "dockerd.pid"),
        "-H", f"unix://{sock}", "--iptables=false", "--ip6tables=false", "--bridge=none", "--ip-masq=false",
    ]
    log = (runtime / "dockerd.log").open("wb")
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    handle = EngineHandle(f"unix://{sock}", process, runtime)
    _wait(lambda: _engine_answers(handle.base_url), process, runtime / "dockerd.log", "dockerd")
    return handle


def _engine_answers(url: str) -> bool:
    try:
        DockerClient(url, timeout=3).ping()
        return True
    except DockerError:
        return False


@dataclass
class RegistryHandle:
    """A `docker-registry` process on loopback with bcrypt htpasswd auth."""

    host: str
    username: str
    password: Secret
    root: Path
    process: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    @property
    def log_path(self) -> Path:
        return self.root / "registry.log"

    def stop(self) -> None:
        """Stop the registry process (its storage stays under `root`)."""
        _terminate(self.process, grace_s=10)


# A generated password has ~144 bits of entropy, so the hash cost guards nothing there; the
# registry pays it on every request (~70 ms at 10 on 2 cores), which is why callers may lower it.
DEFAULT_BCRYPT_ROUNDS = 10


def start_registry(root: Path, *, username: str = "delivery", password: str | None = None,
                   port: int | None = None, read_only: bool = False,
                   bcrypt_rounds: int = DEFAULT_BCRYPT_ROUNDS) -> RegistryHandle:
    """Start Debian's docker-registry on 127.0.0.1 with storage and auth under `root`."""
    binary = shutil.which("docker-registry")
    if binary is None:
        raise ConfigError("docker-registry is not installed",
                          hint="Install Debian's docker-registry (apt-get install docker-registry).")
    secret = Secret(password or secrets.token_urlsafe(18))
    root.mkdir(parents=True, exist_ok=True)
    host = f"127.0.0.1:{port or free_port()}"
    hashed = bcrypt.hashpw(secret.reveal().encode(), bcrypt.gensalt(rounds=bcrypt_rounds)).decode()
    (root / "htpasswd").write_text(f"{username}:{hashed}\n", encoding="utf-8")
    config = root / "config.yml"
    config.write_text(_registry_config(root, host, read_only), encoding="utf-8")
    log = (root / "registry.log").open("ab")
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "REGISTRY_HTTP_SECRET": secrets.token_hex(16)}
    process = subprocess.Popen([binary, "serve", str(config)], stdout=log, stderr=subprocess.STDOUT,
                               env=env, start_new_session=True)
    handle = RegistryHandle(host, username, secret, root, process)
    _wait(lambda: _registry_answers(handle.url), process, handle.log_path, "docker-registry")
    return handle


def _registry_config(root: Path, host: str, read_only: bool = False) -> str:
    # JSON-quoted scalars: the paths come from the caller and must not change the YAML's structure.
    return "\n".join([
        "version: 0.1",
        "log: {level: info, fields: {service: registry}}",
        "storage:",
        f"  filesystem: {{rootdirectory: {json.dumps(str(root / 'data'))}}}",
        "  delete: {enabled: true}",
        "  cache: {blobdescriptor: inmemory}",
        f"  maintenance: {{readonly: {{enabled: {json.dumps(read_only)}}}}}",
        "http:",
        f"  addr: {json.dumps(host)}",
        "  headers: {X-Content-Type-Options: [nosniff]}",
        "auth:",
        f"  htpasswd: {{realm: delivery-registry, path: {json.dumps(str(root / 'htpasswd'))}}}",
        "",
    ])


def _registry_answers(url: str) -> bool:
    try:
        return requests.get(f"{url}/v2/", timeout=2).status_code == 401
    except requests.RequestException:
        return False


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait(ready: Callable[[], bool], process: subprocess.Popen[bytes], log: Path, name: str) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if ready():
            return
        if process.poll() is not None:
            break
        time.sleep(0.2)
    _terminate(process, grace_s=5)
    tail = log.read_text(errors="replace").splitlines()[-15:] if log.exists() else []
    raise ExternalServiceError(f"{name} did not become ready", hint="its log ends with:\n" + "\n".join(tail))


def _terminate(process: subprocess.Popen[bytes], *, grace_s: float) -> None:
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


@dataclass(frozen=True)
class LocalEnvironment:
    """The embedded default's engine and registry as `delivery local up` left them."""

    engine_url: str
    engine_started: bool
    registry_host: str
    registry_user: str
    registry_pid: int
    registry_reused: bool


def read_registry_record(record: Path) -> dict[str, str | int] | None:
    """What `local_up` recorded about the registry (host, username, pid), or None when nothing is recorded.

    Raises:
        ConfigError: the record exists but is not one `local_up` wrote (hand-edited, truncated by a crash).
    """
    try:
        data = json.loads(record.read_text(encoding="utf-8"))
        host, username, pid = str(data["host"]), str(data["username"]), int(data.get("pid", 0))
        int(host.rsplit(":", 1)[1])
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError, AttributeError, IndexError) as e:
        raise ConfigError(f"{record} is damaged: it is not the registry record `delivery local up` writes",
                          hint="Run `delivery local up`: it starts a registry and writes the record again "
                               "(the stored images and the password stay).") from e
    return {"host": host, "username": username, "pid": pid}


def local_up(state: Path) -> LocalEnvironment:
    """Start or reuse the engine and a persistent loopback registry recorded under `state`."""
    state.mkdir(parents=True, exist_ok=True)
    engine = ensure_engine()
    if engine.process is not None:  # keep a dockerd we started running after this command exits
        (state / "dockerd.pid").write_text(str(engine.process.pid), encoding="utf-8")
    record, password_file = state / "registry.json", state / "registry.password"
    try:
        known: dict[str, str | int] = read_registry_record(record) or {}
    except ConfigError:
        known = {}  # a damaged record only costs a fresh start; storage and password are reused
    password = password_file.read_text(encoding="utf-8").strip() if password_file.exists() else None
    if known and password and _registry_accepts(str(known["host"]), str(known["username"]), password):
        return LocalEnvironment(engine.base_url, engine.started_here, str(known["host"]), str(known["username"]),
                                int(known["pid"]), True)
    port = int(str(known["host"]).rsplit(":", 1)[1]) if known and _port_free(str(known["host"])) else None
    handle = start_registry(state / "registry", username="delivery", password=password, port=port)
    password_file.touch(mode=0o600)
    password_file.chmod(0o600)
    password_file.write_text(handle.password.reveal(), encoding="utf-8")
    record.write_text(json.dumps({"host": handle.host, "username": handle.username, "pid": handle.process.pid}),
                      encoding="utf-8")
    return LocalEnvironment(engine.base_url, engine.started_here, handle.host, handle.username,
                            handle.process.pid, False)


def local_down(state: Path) -> list[str]:
    """Stop what `local_up` started (by the pids it recorded); returns what was stopped."""
    stopped = []
    known = read_registry_record(state / "registry.json") or {}
    pids = [("docker-registry", _pid(known.get("pid"))), ("dockerd", _pid_file(state / "dockerd.pid"))]
    for name, pid in pids:
        if pid > 0 and _signal(pid, name):
            stopped.append(f"{name} (pid {pid})")
    (state / "dockerd.pid").unlink(missing_ok=True)
    return stopped


def _pid(value: object) -> int:
    return value if isinstance(value, int) else int(value) if isinstance(value, str) and value.isdigit() else 0


def _pid_file(path: Path) -> int:
    try:
        return _pid(path.read_text(encoding="utf-8").strip())
    except OSError:
        return 0


def _signal(pid: int, binary: str) -> bool:
    """SIGTERM `pid` only while it still runs `binary`: a recorded pid may have been reused since a reboot."""
    try:
        argv0 = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0", 1)[0]
    except OSError:
        return False
    if Path(argv0.decode(errors="replace")).name != binary:
        return False
    try:
        os.kill(pid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def _registry_accepts(host: str, username: str, password: str) -> bool:
    try:
        return requests.get(f"http://{host}/v2/", auth=(username, password), timeout=3).status_code == 200
    except requests.RequestException:
        return False


def _port_free(host: str) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", int(host.rsplit(":", 1)[1])))
        except OSError:
            return False
    return True
