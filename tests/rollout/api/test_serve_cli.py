"""`rollout tokens` and `rollout serve` as a user runs them: a token printed once, a server process answering."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from delivery.localenv import RegistryHandle
from rollout.cli import main
from tests.support.api_server import free_port, wait_ready


def test_tokens_add_prints_the_token_once_and_keeps_only_its_hash(tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    tokens = tmp_path / "tokens.yaml"
    assert main(["tokens", "add", "ris-gateway", "--role", "execution-client", "--tokens", str(tokens)]) == 0
    token = capsys.readouterr().out.strip()
    assert main(["tokens", "list", "--json", "--tokens", str(tokens)]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert token.startswith("bdt_") and token not in tokens.read_text()
    assert listed == [{"name": "ris-gateway", "role": "execution-client"}]
    assert main(["tokens", "add", "ris-gateway", "--role", "auditor", "--tokens", str(tokens)]) == 2
    assert main(["tokens", "remove", "ris-gateway", "--tokens", str(tokens)]) == 0
    assert main(["tokens", "list", "--json", "--tokens", str(tokens)]) == 0


def test_rollout_serve_runs_two_workers_that_answer_with_the_stored_tokens(tmp_path: Path,
                                                                           registry: RegistryHandle) -> None:
    env = {**os.environ, "DELIVERY_HOME": str(tmp_path / "home"), "DELIVERY_REGISTRY": registry.host,
           "DELIVERY_REGISTRY_USER": registry.username, "DELIVERY_REGISTRY_PASSWORD": registry.password.reveal(),
           "NO_PROXY": "127.0.0.1,localhost"}
    env.pop("NOMAD_ADDR", None)
    tokens = tmp_path / "tokens.yaml"
    made = subprocess.run([sys.executable, "-m", "rollout.cli", "tokens", "add", "rm", "--role", "release-manager",
                           "--tokens", str(tokens)], env=env, capture_output=True, text=True, check=True)
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "rollout.cli", "serve", "--port", str(port), "--workers", "2",
                               "--tokens", str(tokens), "--org", "biomarkers"], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_ready(url, server)
        headers = {"Authorization": f"Bearer {made.stdout.strip()}"}
        listed = httpx.get(f"{url}/v1/biomarkers", headers=headers, timeout=10)
        anonymous = httpx.get(f"{url}/v1/biomarkers", timeout=10)
    finally:
        server.terminate()
        _, stderr = server.communicate(timeout=20)
    assert listed.status_code == 200 and "emphysema" in [b["name"] for b in listed.json()["biomarkers"]]
    assert anonymous.status_code == 401
    logged = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
    assert any(e["route"] == "/v1/biomarkers" and e["caller"] == "rm" for e in logged)
    assert made.stdout.strip() not in stderr


@pytest.mark.parametrize(("allowed", "secure"), [("10.0.0.5", False), ("127.0.0.1", True)])
def test_only_the_listed_load_balancers_forwarded_proto_makes_cookies_secure(
        tmp_path: Path, registry: RegistryHandle, allowed: str, secure: bool) -> None:
    """A client talking to the server directly cannot claim https through a forged X-Forwarded-Proto."""
    env = {**os.environ, "DELIVERY_HOME": str(tmp_path / "home"), "DELIVERY_REGISTRY": registry.host,
           "DELIVERY_REGISTRY_USER": registry.username, "DELIVERY_REGISTRY_PASSWORD": registry.password.reveal(),
           "NO_PROXY": "127.0.0.1,localhost"}
    env.pop("NOMAD_ADDR", None)
    tokens = tmp_path / "tokens.yaml"
    subprocess.run([sys.executable, "-m", "rollout.cli", "tokens", "add", "rm", "--role", "release-manager",
                    "--tokens", str(tokens)], env=env, capture_output=True, text=True, check=True)
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "rollout.cli", "serve", "--port", str(port), "--org", "biomarkers",
                               "--tokens", str(tokens), "--proxy-headers", "--forwarded-allow-ips", allowed], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_ready(url, server)
        form = httpx.get(f"{url}/", headers={"X-Forwarded-Proto": "https"}, timeout=10)
    finally:
        server.terminate()
        server.communicate(timeout=20)
    cookie = next(c for c in form.headers.get_list("set-cookie") if c.startswith("delivery_login_csrf="))
    assert ("secure" in {a.strip().lower() for a in cookie.split(";")}) is secure
