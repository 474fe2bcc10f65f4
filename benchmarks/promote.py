"""Promotion cost: requests, bytes sent and wall time for 10 MB and 500 MB images, against skopeo and docker.

Everything runs in the same process and the same run, against one Debian docker-registry on loopback behind
a byte-counting TCP proxy (so every tool is measured the same way). Requests are counted from the
registry's access log. Prints JSON.

    .venv/bin/python benchmarks/promote.py [--sizes 10,500] [--no-docker] [--no-skopeo]
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import json
import os
import shutil
import socket
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


from delivery.audit import AuditLog
from delivery.environments import Environment
from delivery.localenv import RegistryHandle, start_registry
from delivery.provenance import build_statement, generate_keys, load_private_key, sign_statement, store_attestation
from delivery.registry import OCI_MANIFEST, Manifest, RegistryClient, sha256_digest
from delivery.release.connect import verifier
from delivery.release.copy import Location, copy_image
from delivery.release.promote import PromoteRequest, promote
from delivery.release.state import SqliteReleaseStore

MB = 1 << 20


class CountingProxy:
    """A loopback TCP forwarder that counts bytes in each direction."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.sent = self.received = 0
        self._lock = threading.Lock()
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = self._server.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def reset(self) -> None:
        with self._lock:
            self.sent = self.received = 0

    def _accept(self) -> None:
        while True:
            client, _ = self._server.accept()
            upstream = socket.create_connection(self.upstream)
            threading.Thread(target=self._pump, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, False), daemon=True).start()

    def _pump(self, source: socket.socket, target: socket.socket, outbound: bool) -> None:
        try:
            while data := source.recv(1 << 18):
                target.sendall(data)
                with self._lock:
                    if outbound:
                        self.sent += len(data)
                    else:
                        self.received += len(data)
        except OSError:
            pass
        finally:
            for s in (source, target):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)


def _layer_tar(size: int, seed: str) -> bytes:
    """An uncompressed tar with one file of `size` pseudo-random bytes (docker can extract it)."""
    block = hashlib.sha256(seed.encode()).digest() * (MB // 32)
    payload = b"".join(i.to_bytes(8, "big") + block[8:] for i in range(size // MB))
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        info = tarfile.TarInfo("data.bin")
        info.size, info.mtime = len(payload), 0
        tar.addfile(info, io.BytesIO(payload))
    return out.getvalue()


def push_image(client: RegistryClient, repository: str, tag: str, size: int) -> Manifest:
    """A single-layer OCI image docker can pull, uploaded with the registry client."""
    layer = _layer_tar(size, f"{repository}:{tag}:{size}")
    layer_digest = sha256_digest(layer)
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {"Cmd": ["/data.bin"]},
                         "rootfs": {"type": "layers", "diff_ids": [layer_digest]}}).encode()
    client.upload_blob(repository, config)
    client.upload_blob(repository, layer)
    doc = {"schemaVersion": 2, "mediaType": OCI_MANIFEST,
           "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha256_digest(config),
                      "size": len(config)},
           "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer_digest,
                       "size": len(layer)}]}
    raw = json.dumps(doc).encode()
    manifest = Manifest(raw, OCI_MANIFEST, sha256_digest(raw))
    client.put_manifest(repository, tag, manifest)
    return manifest


def _requests_since(log: Path, offset: int) -> int:
    with log.open("rb") as handle:
        handle.seek(offset)
        return sum(1 for line in handle if b"response completed" in line)


def measure(name: str, size_mb: int, proxy: CountingProxy, registry: RegistryHandle,
            action: Callable[[], Any]) -> dict[str, Any]:
    """Run `action` once and report what went over the wire."""
    time.sleep(0.3)  # let the previous tool's connections drain out of the counters
    proxy.reset()
    offset = registry.log_path.stat().st_size
    started = time.perf_counter()
    action()
    wall = time.perf_counter() - started
    time.sleep(0.3)
    return {"tool": name, "size_mb": size_mb, "requests": _requests_since(registry.log_path, offset),
            "bytes_sent": proxy.sent, "bytes_received": proxy.received, "wall_s": round(wall, 3)}


def _attest(client: RegistryClient, repository: str, digest: str, key: Path) -> None:
    now = datetime.now(UTC).isoformat(timespec="seconds")
    statement = build_statement(
        subject_name=repository, digest=digest, source={"uri": "bench", "digest": {"gitCommit": "0" * 40}},
        build={}, builder_id="benchmark", invocation_id="bench", started=now, finished=now,
        byproducts=[{"name": "test", "annotations": {"status": "passed"}},
                    {"name": "scan", "annotations": {"status": "passed"}}], internal={}, dependencies=[])
    store_attestation(client, repository, digest, sign_statement(statement, load_private_key(key)))


def run_size(size_mb: int, ctx: dict[str, Any]) -> list[dict[str, Any]]:
    registry, proxy, client, host = ctx["registry"], ctx["proxy"], ctx["client"], ctx["host"]
    repo = f"bench/app{size_mb}"
    manifest = push_image(client, repo, "1.0.0", size_mb * MB)
    _attest(client, repo, manifest.digest, ctx["keys"][0])
    src = Location(client, repo)
    rows = []

    def ours_copy(target: Location, tag: str) -> Callable[[], Any]:
        def go() -> None:
            digest = client.head_manifest(repo, "1.0.0")
            assert digest == manifest.digest
            copy_image(src, digest, target, tag)
        return go

    rows.append(measure("delivery copy, same repository (new tag)", size_mb, proxy, registry,
                        ours_copy(src, "1.0.0-same")))
    rows.append(measure("delivery copy, cross-repository (mount)", size_mb, proxy, registry,
                        ours_copy(Location(client, f"bench/rel{size_mb}"), "1.0.0")))
    env = Environment.model_validate({"apiVersion": "delivery/v1", "kind": "Environment", "name": "bench",
                                      "registry": host, "repository_prefix": "bench",
                                      "nomad": {"address": "http://127.0.0.1:4646"}})
    request = PromoteRequest(f"app{size_mb}", "1.0.0", env, "stable", actor="benchmark")
    rows.append(measure("delivery promote (gates verified, channel moved)", size_mb, proxy, registry, lambda: promote(
        request, source=src, target=src, store=ctx["store"], audit=ctx["audit"], verify=verifier(ctx["keys"][1]))))
    if ctx["skopeo"]:
        creds = f"{registry.username}:{registry.password.reveal()}"
        base = ["skopeo", "--insecure-policy", "copy", "-q", "--src-tls-verify=false", "--dest-tls-verify=false",
                "--src-creds", creds, "--dest-creds", creds, "--preserve-digests", f"docker://{host}/{repo}:1.0.0"]
        rows.append(measure("skopeo copy, same repository", size_mb, proxy, registry,
                            lambda: subprocess.run([*base, f"docker://{host}/{repo}:1.0.0-skopeo"], check=True)))
        rows.append(measure("skopeo copy, cross-repository", size_mb, proxy, registry,
                            lambda: subprocess.run([*base, f"docker://{host}/bench/skopeo{size_mb}:1.0.0"],
                                                   check=True)))
    if ctx["docker"] is not None:
        rows.append(measure("docker pull + tag + push, cross-repository", size_mb, proxy, registry,
                            lambda: _docker_round_trip(ctx["docker"], host, repo, size_mb, registry)))
    for row in rows:
        row["manifest_bytes"] = len(manifest.raw)
    return rows


def _docker_round_trip(docker: Any, host: str, repo: str, size_mb: int, registry: RegistryHandle) -> None:
    auth = {"username": registry.username, "password": registry.password.reveal()}
    image = docker.images.pull(f"{host}/{repo}", tag="1.0.0", auth_config=auth)
    image.tag(f"{host}/bench/docker{size_mb}", "1.0.0")
    for event in docker.api.push(f"{host}/bench/docker{size_mb}", tag="1.0.0", stream=True, decode=True,
                                 auth_config=auth):
        if "error" in event:
            raise RuntimeError(event["error"])
    docker.images.remove(f"{host}/bench/docker{size_mb}:1.0.0", force=True)
    docker.images.remove(f"{host}/{repo}:1.0.0", force=True)


def _docker() -> Any:
    try:
        import docker  # benchmarks may talk to the engine directly; domain code goes through delivery.docker

        client = docker.from_env(timeout=600)
        client.ping()
        return client
    except Exception as e:  # no engine: the baseline is reported as missing
        print(f"docker baseline skipped: {type(e).__name__}", file=sys.stderr)
        return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10,500", help="image sizes in MB (default: %(default)s)")
    parser.add_argument("--no-docker", action="store_true")
    parser.add_argument("--no-skopeo", action="store_true")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-promote-"))
    registry = start_registry(work / "registry")
    try:
        port = int(registry.host.rsplit(":", 1)[1])
        proxy = CountingProxy(("127.0.0.1", port))
        host = f"127.0.0.1:{proxy.port}"
        ctx = {"registry": registry, "proxy": proxy, "host": host,
               "client": RegistryClient(f"http://{host}", registry.username, registry.password),
               "keys": generate_keys(work / "keys"), "store": SqliteReleaseStore(work / "state.sqlite"),
               "audit": AuditLog(f"sqlite:///{work / 'audit.sqlite'}"),
               "skopeo": shutil.which("skopeo") is not None and not args.no_skopeo,
               "docker": None if args.no_docker else _docker()}
        rows = [row for size in args.sizes.split(",") for row in run_size(int(size), ctx)]
        print(json.dumps(_summary(rows), indent=2))
    finally:
        registry.stop()
        shutil.rmtree(work, ignore_errors=True)


def _summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    ours = [r for r in rows if r["tool"].startswith("delivery copy, same")]
    by = {(r["tool"], r["size_mb"]): r for r in rows}
    sizes = sorted({r["size_mb"] for r in rows})
    ratios = {}
    for size in sizes:
        mine = by[("delivery copy, cross-repository (mount)", size)]
        for tool in ("skopeo copy, cross-repository", "docker pull + tag + push, cross-repository"):
            other = by.get((tool, size))
            if other:
                ratios[f"{tool} / delivery mount, {size} MB: bytes_sent"] = round(
                    other["bytes_sent"] / max(mine["bytes_sent"], 1), 1)
                ratios[f"{tool} / delivery mount, {size} MB: wall"] = round(other["wall_s"] / mine["wall_s"], 1)
    return {
        "registry": "Debian docker-registry 2.8 on loopback, htpasswd bcrypt auth (each request pays a bcrypt check)",
        "machine": {"cpus": os.cpu_count()},
        "results": rows,
        "ratios": ratios,
        "targets": {
            "requests_le_4": all(r["requests"] <= 4 for r in ours),
            "bytes_sent_vs_manifest_same_repo": [round(r["bytes_sent"] / r["manifest_bytes"], 1) for r in ours],
            "wall_largest_over_smallest_same_repo": round(ours[-1]["wall_s"] / ours[0]["wall_s"], 2) if ours else None,
        },
    }


if __name__ == "__main__":
    main()
