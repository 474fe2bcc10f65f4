"""What a security review found at the front door: headers, readiness, versions, the status page's session."""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx

from delivery.docker import DockerClient, RegistryAuth
from delivery.localenv import RegistryHandle
from delivery.registry import RegistryClient
from delivery.secrets import Secret
from rollout.api.app import COOKIE, create_app
from rollout.api.auth import add_token, remove_token, token_hash
from rollout.api.page import LOGIN_CSRF
from rollout.api.sessions import SessionStore
from tests.rollout.api.conftest import NAME, Api, make_services
from tests.support.api_server import serve

OPENAPI = Path(__file__).resolve().parents[3] / "manifests" / "openapi.json"


def test_a_freeze_pinned_to_non_ascii_digits_is_refused(api: Api) -> None:
    with api.client("release-manager") as manager:
        refused = manager.post(f"/v1/biomarkers/{NAME}/freezes",
                               json={"reason": "trial", "version": "\u0661.\u0660.\u0660"})
    assert refused.status_code == 422 and refused.json()["field"] == "body.version"


def test_every_response_says_nosniff_and_no_referrer(api: Api) -> None:
    with api.client(None) as anonymous, api.client("developer") as developer:
        responses = [anonymous.get("/"), anonymous.get("/healthz"), anonymous.get("/v1/biomarkers"),
                     anonymous.get("/static/status.css"), anonymous.get("/nowhere"),
                     developer.get(f"/v1/biomarkers/{NAME}/versions"),
                     developer.post("/v1/executions", content=b"x" * (64 * 1024))]
    assert [r.status_code for r in responses] == [200, 200, 401, 200, 404, 200, 413]
    for response in responses:
        assert response.headers["x-content-type-options"] == "nosniff", response.url
        assert response.headers["referrer-policy"] == "no-referrer", response.url


def test_readiness_fails_while_the_registry_refuses_the_servers_credentials(
        tmp_path: Path, docker_client: DockerClient, registry: RegistryHandle, registry_auth: RegistryAuth) -> None:
    services = make_services(tmp_path, docker_client, registry, registry_auth)
    add_token(services.tokens.path, "rm", "release-manager")
    services.registry = RegistryClient(registry.url, registry.username, Secret("rotated-away-password"))
    with serve(create_app(services)) as url, httpx.Client(base_url=url) as client:
        ready = client.get("/readyz")
    assert ready.status_code == 503 and ready.json()["status"] == "not ready"
    checks = ready.json()["checks"]
    assert "refused the server's credentials" in checks["registry"] and checks["ledger"] == "ok"
    assert "rotated-away-password" not in ready.text


def _csrf(page: httpx.Response) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert found, page.text
    return found.group(1)


def _sign_in(client: httpx.Client, token: str, **headers: str) -> httpx.Response:
    form = client.get("/", headers=headers)
    return client.post("/login", data={"token": token, "csrf": _csrf(form)}, headers=headers)


def _set_cookie(response: httpx.Response, name: str) -> str:
    return next(h for h in response.headers.get_list("set-cookie") if h.startswith(f"{name}="))


def test_signing_in_sets_an_opaque_http_only_same_site_session_cookie(api: Api) -> None:
    token = api.tokens["release-manager"]
    with api.client(None) as browser:
        signed_in = _sign_in(browser, token)
        cookie = _set_cookie(signed_in, COOKIE)
        page = browser.get("/")
    session_id = cookie.split(";")[0].split("=", 1)[1]
    assert signed_in.status_code == 303 and page.status_code == 200 and "signed in as" in page.text
    assert token not in cookie and token_hash(token) not in cookie and len(session_id) >= 32
    attributes = {a.strip().lower() for a in cookie.split(";")[1:]}
    assert "httponly" in attributes and "samesite=strict" in attributes and "secure" not in attributes


def test_behind_tls_the_session_cookie_is_secure(api: Api) -> None:
    tls = {"X-Forwarded-Proto": "https"}  # what the proxy in front says (uvicorn trusts loopback's X-Forwarded-*)
    with api.client(None) as browser:
        form = browser.get("/", headers=tls)
        login_cookie = _set_cookie(form, LOGIN_CSRF)
        browser.cookies.clear()  # a Secure cookie travels over https only: hand it over as the browser would
        signed_in = browser.post("/login", data={"token": api.tokens["auditor"], "csrf": _csrf(form)},
                                 headers={**tls, "Cookie": login_cookie.split(";")[0]})
    assert signed_in.status_code == 303
    for cookie in (login_cookie, _set_cookie(signed_in, COOKIE)):
        assert "secure" in {a.strip().lower() for a in cookie.split(";")}


def test_signing_in_needs_the_forms_csrf_token(api: Api) -> None:
    token = api.tokens["release-manager"]
    with api.client(None) as forger:  # a cross-site form: no CSRF cookie of ours, or a token it cannot know
        bare = forger.post("/login", data={"token": token})
        forger.get("/")
        guessed = forger.post("/login", data={"token": token, "csrf": "guessed"})
    assert bare.status_code == 403 and guessed.status_code == 403
    assert COOKIE not in bare.headers.get("set-cookie", "") and COOKIE not in guessed.headers.get("set-cookie", "")


def test_sessions_are_shared_by_replicas_and_end_on_sign_out_everywhere(
        api: Api, docker_client: DockerClient, registry: RegistryHandle, registry_auth: RegistryAuth) -> None:
    replica = make_services(api.services.tokens.path.parent, docker_client, registry, registry_auth)
    with serve(create_app(replica)) as other_url, api.client(None) as browser:
        _sign_in(browser, api.tokens["developer"])
        session_id = browser.cookies[COOKIE]
        elsewhere = httpx.get(f"{other_url}/status/panel", cookies={COOKIE: session_id})
        forged = browser.post("/logout")  # no CSRF token: a cross-site form cannot sign anyone out
        still = httpx.get(f"{other_url}/status/panel", cookies={COOKIE: session_id})
        page = browser.get("/")
        browser.post("/logout", data={"csrf": _csrf(page)})
        after = httpx.get(f"{other_url}/status/panel", cookies={COOKIE: session_id})
    assert elsewhere.status_code == 200 and forged.status_code == 403 and still.status_code == 200
    assert after.status_code == 401 and "signed out" in after.json()["error"]


def test_a_session_ends_when_its_token_is_revoked_or_it_expires(api: Api, tmp_path: Path) -> None:
    name = "short-lived"
    token = add_token(api.services.tokens.path, name, "auditor")
    with api.client(None) as browser:
        _sign_in(browser, token)
        before = browser.get("/status/panel")
        remove_token(api.services.tokens.path, name)
        after = browser.get("/status/panel")
    assert before.status_code == 200 and after.status_code == 401
    now = [1_000_000.0]
    sessions = SessionStore(f"sqlite:///{tmp_path / 'sessions.sqlite'}", ttl_s=60, clock=lambda: now[0])
    session_id, _ = sessions.open(token_hash(token))
    assert sessions.find(session_id) is not None
    now[0] += 61
    assert sessions.find(session_id) is None


def test_the_not_found_answers_are_in_the_contract(api: Api) -> None:
    document = json.loads(OPENAPI.read_text(encoding="utf-8"))["paths"]
    with api.client("release-manager") as manager:
        answers = {("/v1/resolve", "post"): manager.post("/v1/resolve", json={"biomarker": "nosuch", "pin": "1"}),
                   ("/v1/biomarkers/{name}/freezes", "post"): manager.post("/v1/biomarkers/nosuch/freezes",
                                                                           json={"reason": "r"}),
                   ("/v1/biomarkers/{name}/freezes/{freeze_id}", "delete"): manager.delete(
                       f"/v1/biomarkers/{NAME}/freezes/never-there")}
    for (path, method), answer in answers.items():
        assert answer.status_code == 404, (path, answer.text)
        assert "404" in document[path][method]["responses"], path


def test_a_wrong_method_names_every_method_the_path_serves(api: Api) -> None:
    with api.client("developer") as developer:
        refused = developer.request("PATCH", "/v1/executions")
    assert refused.status_code == 405 and set(refused.headers["allow"].split(", ")) == {"GET", "POST"}
