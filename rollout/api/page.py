"""The status page: server-rendered Jinja2 from templates/status/, refreshed by a small local script (polling)."""

from __future__ import annotations

import hmac
import secrets
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import parse_qs

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape

from rollout.api.app import COOKIE, READERS, ApiError, Reader, authenticate, session_store
from rollout.api.auth import token_hash
from rollout.api.overview import Overview, overview
from rollout.api.services import Services
from rollout.api.sessions import Session

TEMPLATES = Path(__file__).resolve().parents[2] / "templates" / "status"
ASSETS = {"status.js": "text/javascript", "status.css": "text/css"}
POLL_S = 5
LOGIN_CSRF = "delivery_login_csrf"
LOGIN_CSRF_TTL_S = 3600
# Everything is served from here: no inline script, no CDN.
CSP = "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'"


def _jinja() -> Environment:
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html", "svg"]),
                      trim_blocks=True, lstrip_blocks=True)
    env.filters["short"] = lambda digest: (digest or "")[7:19]
    env.filters["when"] = lambda t: t.strftime("%Y-%m-%d %H:%M:%SZ") if t else "—"
    return env


def _secure(request: Request, services: Services) -> bool:
    """Secure cookies behind TLS: served over https (X-Forwarded-Proto from a trusted proxy with --proxy-headers
    counts) or DELIVERY_API_SECURE_COOKIES set."""
    return services.config.secure_cookies or request.url.scheme == "https"


def _form(body: bytes) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace")).items() if v}


def _same(given: str | None, expected: str | None) -> bool:
    return bool(given and expected) and hmac.compare_digest(str(given), str(expected))


def install_page(app: FastAPI, services: Services) -> None:
    """`/` (the page, or a sign-in form), `/status/panel` (the refreshed part), `/v1/status` (JSON), assets."""
    jinja = _jinja()

    def render(name: str, status: int = 200, **values: object) -> HTMLResponse:
        html = jinja.get_template(name).render(poll_s=POLL_S, **values)
        return HTMLResponse(html, status_code=status, headers={"Content-Security-Policy": CSP,
                                                                "Cache-Control": "no-store"})

    def login_form(request: Request, status: int = 200, message: str | None = None) -> HTMLResponse:
        """The sign-in form with a fresh CSRF token, also set as a cookie only /login sees (double submit)."""
        csrf = secrets.token_urlsafe(32)
        response = render("login.html", status, message=message, csrf=csrf)
        response.set_cookie(LOGIN_CSRF, csrf, max_age=LOGIN_CSRF_TTL_S, path="/login", httponly=True,
                            samesite="strict", secure=_secure(request, services))
        return response

    @app.get("/", include_in_schema=False)
    def page(request: Request) -> Response:
        try:
            principal = authenticate(request)
        except ApiError:
            return login_form(request)
        if principal.role not in READERS:
            return login_form(request, 403, f"role {principal.role} cannot see the status page")
        session: Session | None = getattr(request.state, "session", None)
        return render("page.html", view=overview(services, datetime.now(UTC)), principal=principal,
                      csrf=session.csrf if session else None)

    @app.get("/status/panel", include_in_schema=False)
    def panel(principal: Reader) -> Response:
        return render("panel.html", view=overview(services, datetime.now(UTC)), principal=principal)

    @app.get("/v1/status", response_model=Overview, tags=["status"], summary="what the status page shows")
    def status(_: Reader) -> Overview:
        return overview(services, datetime.now(UTC))

    @app.post("/login", include_in_schema=False)
    async def login(request: Request) -> Response:
        form = _form(await request.body())
        if not _same(form.get("csrf"), request.cookies.get(LOGIN_CSRF)):
            return login_form(request, 403, "the sign-in form expired or did not come from this page; sign in again")
        token = form.get("token", "").strip()
        found = services.tokens.authenticate(token) if token else None
        if found is None:
            return login_form(request, 401, "unknown token")
        sessions = session_store(request)
        session_id, _ = sessions.open(token_hash(token))
        response = RedirectResponse("/", status_code=303)
        response.set_cookie(COOKIE, session_id, httponly=True, samesite="strict", secure=_secure(request, services),
                            max_age=sessions.ttl_s)
        response.delete_cookie(LOGIN_CSRF, path="/login")
        return response

    @app.post("/logout", include_in_schema=False)
    async def logout(request: Request) -> Response:
        session_id = request.cookies.get(COOKIE, "")
        sessions = session_store(request)
        session = sessions.find(session_id) if session_id else None
        if session is not None:  # a live session ends only with its own CSRF token: no cross-site sign-out
            if not _same(_form(await request.body()).get("csrf"), session.csrf):
                raise ApiError(403, "sign-out was not sent from the status page", hint="Use its sign out button.")
            sessions.close(session_id)
        response = RedirectResponse("/", status_code=303)
        response.delete_cookie(COOKIE)
        return response

    @app.get("/static/{asset}", include_in_schema=False)
    def asset(asset: str) -> Response:
        if asset not in ASSETS:
            raise ApiError(404, f"no asset {asset}")
        return FileResponse(TEMPLATES / asset, media_type=ASSETS[asset], headers={"Cache-Control": "max-age=300"})

