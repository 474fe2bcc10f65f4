"""The status page: server-rendered Jinja2 from templates/status/, refreshed by a small local script (polling)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import parse_qs

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape

from rollout.api.app import COOKIE, READERS, ApiError, Reader, authenticate
from rollout.api.overview import Overview, overview
from rollout.api.services import Services

TEMPLATES = Path(__file__).resolve().parents[2] / "templates" / "status"
ASSETS = {"status.js": "text/javascript", "status.css": "text/css"}
POLL_S = 5
# Everything is served from here: no inline script, no CDN.
CSP = "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'"


def _jinja() -> Environment:
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html", "svg"]),
                      trim_blocks=True, lstrip_blocks=True)
    env.filters["short"] = lambda digest: (digest or "")[7:19]
    env.filters["when"] = lambda t: t.strftime("%Y-%m-%d %H:%M:%SZ") if t else "—"
    return env


def install_page(app: FastAPI, services: Services) -> None:
    """`/` (the page, or a sign-in form), `/status/panel` (the refreshed part), `/v1/status` (JSON), assets."""
    jinja = _jinja()

    def render(name: str, status: int = 200, **values: object) -> HTMLResponse:
        html = jinja.get_template(name).render(poll_s=POLL_S, **values)
        return HTMLResponse(html, status_code=status, headers={"Content-Security-Policy": CSP,
                                                                "Cache-Control": "no-store"})

    @app.get("/", include_in_schema=False)
    def page(request: Request) -> Response:
        try:
            principal = authenticate(request)
        except ApiError:
            return render("login.html", message=None)
        if principal.role not in READERS:
            return render("login.html", 403, message=f"role {principal.role} cannot see the status page")
        return render("page.html", view=overview(services, datetime.now(UTC)), principal=principal)

    @app.get("/status/panel", include_in_schema=False)
    def panel(principal: Reader) -> Response:
        return render("panel.html", view=overview(services, datetime.now(UTC)), principal=principal)

    @app.get("/v1/status", response_model=Overview, tags=["status"], summary="what the status page shows")
    def status(_: Reader) -> Overview:
        return overview(services, datetime.now(UTC))

    @app.post("/login", include_in_schema=False)
    async def login(request: Request) -> Response:
        form = parse_qs((await request.body()).decode("utf-8", "replace"))
        token = (form.get("token") or [""])[0].strip()
        found = services.tokens.authenticate(token) if token else None
        if found is None:
            return render("login.html", 401, message="unknown token")
        response = RedirectResponse("/", status_code=303)
        response.set_cookie(COOKIE, token, httponly=True, samesite="strict", secure=services.config.secure_cookies,
                            max_age=12 * 3600)
        return response

    @app.post("/logout", include_in_schema=False)
    def logout() -> Response:
        response = RedirectResponse("/", status_code=303)
        response.delete_cookie(COOKIE)
        return response

    @app.get("/static/{asset}", include_in_schema=False)
    def asset(asset: str) -> Response:
        if asset not in ASSETS:
            raise ApiError(404, f"no asset {asset}")
        return FileResponse(TEMPLATES / asset, media_type=ASSETS[asset], headers={"Cache-Control": "max-age=300"})

