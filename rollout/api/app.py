"""The ASGI application: routes, authentication and authorisation per route, errors as problems."""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Header, Query, Request, Security
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BeforeValidator
from starlette.exceptions import HTTPException
from starlette.routing import Match

from delivery import __version__
from delivery.audit import AuditQuery
from delivery.errors import ConfigError, DeliveryError, ExternalServiceError, UsageError
from delivery.registry import Unauthorized
from delivery.release.resolve import gather_registry
from delivery.release.state import ConflictError
from rollout import freeze as freezes
from rollout.api.auth import Principal, Role
from rollout.api.dispatch import Busy, PlanningFailed
from rollout.api.middleware import AccessLog, BodyLimit, SecurityHeaders
from rollout.api.schemas import (
    IDEMPOTENCY_KEY,
    NAME,
    AuditEntry,
    AuditList,
    BiomarkerList,
    BiomarkerSummary,
    ExecutionList,
    ExecutionView,
    FreezeRequest,
    FreezeView,
    Health,
    Problem,
    RecallList,
    RecallView,
    Resolution,
    ResolveRequest,
    ResultsView,
    RolloutRequest,
    RolloutView,
    SubmitRequest,
    VersionList,
)
from rollout.api.services import Services
from rollout.api.sessions import SessionStore, sessions_of
from rollout.api.views import execution_view, freeze_view, results_view, version_views
from rollout.controller import operations
from rollout.controller.loop import load_status
from rollout.executions.model import Execution, ExecutionNotFound, ExecutionRequest
from rollout.executions.pins import binding_freeze, frozen_spec
from rollout.executions.submit import execution_id

log = logging.getLogger(__name__)
ALL: tuple[Role, ...] = ("execution-client", "release-manager", "developer", "auditor")
READERS: tuple[Role, ...] = ("release-manager", "developer", "auditor")
COOKIE = "delivery_session"
DATE_TIME = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]+)?)?"
                       r"([Zz]|[+-][0-9]{2}:[0-9]{2})?$")
_bearer = HTTPBearer(auto_error=False, description="a token from `rollout tokens add NAME --role ROLE`")
ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": Problem, "description": text} for code, text in (
        (400, "malformed request"), (401, "no or unknown bearer token"), (403, "the token's role may not do this"),
        (413, "request body too large"), (422, "a field is invalid (the message names it)"),
        (502, "the registry, Nomad or the database failed; retry later"),
        (503, "a system of record is not configured or the server is busy; retry later"))}
NOT_FOUND = "no such biomarker (the message says which)"


class ApiError(Exception):
    """A refusal with an HTTP status, a message, what to do next, and the field at fault."""

    def __init__(self, status: int, message: str, *, hint: str | None = None, field: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.hint, self.field = status, message, hint, field


def _status_of(error: DeliveryError) -> int:
    """How a domain error reads over HTTP."""
    if isinstance(error, ExecutionNotFound | operations.FreezeNotFound):
        return 404
    if isinstance(error, PlanningFailed):
        return 500
    if isinstance(error, Busy | ConfigError):
        return 503
    if isinstance(error, ConflictError | freezes.FrozenError):
        return 409
    if isinstance(error, ExternalServiceError):
        return 502
    return 422


def _problem(status: int, message: str, hint: str | None = None, field: str | None = None,
             headers: dict[str, str] | None = None) -> JSONResponse:
    body = Problem(error=message, hint=hint, field=field).model_dump(exclude_none=True)
    return JSONResponse(body, status_code=status, headers=headers)


def _install_errors(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(_: Request, e: ApiError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if e.status == 401 else None
        return _problem(e.status, e.message, e.hint, e.field, headers)

    @app.exception_handler(DeliveryError)
    async def delivery_error(_: Request, e: DeliveryError) -> JSONResponse:
        return _problem(_status_of(e), e.message, e.hint)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, e: HTTPException) -> JSONResponse:
        headers = dict(e.headers or {})
        if e.status_code == 405:  # Starlette names only the first route's methods; a path may have several
            headers["Allow"] = ", ".join(_allowed_methods(request))
        return _problem(e.status_code, str(e.detail), headers=headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, e: RequestValidationError) -> JSONResponse:
        errors = list(e.errors())
        if any(err.get("type") == "json_invalid" for err in errors):
            return _problem(400, "request body is not valid JSON", "Send a JSON object (Content-Type: "
                            "application/json).", "body")
        first = errors[0] if errors else {"loc": (), "msg": "invalid request"}
        where = ".".join(str(p) for p in first.get("loc", ()))
        more = f" (and {len(errors) - 1} more problem(s))" if len(errors) > 1 else ""
        return _problem(422, f"{where}: {first.get('msg')}{more}", "Fix that field and send the request again.",
                        where)


def _allowed_methods(request: Request) -> list[str]:
    """Every method some route serves at this path."""
    methods: set[str] = set()
    for route in request.app.router.routes:
        match, _ = route.matches(request.scope)  # PARTIAL: the path matches, the method does not
        if match != Match.NONE:
            methods |= set(getattr(route, "methods", None) or ())
    return sorted(methods)


def create_app(services: Services) -> FastAPI:
    """The application over `services`; every piece of state lives in them, none in the process."""
    app = FastAPI(title="Biomarker delivery API", version=__version__, openapi_url="/openapi.json",
                  docs_url=None, redoc_url=None, responses=ERRORS,
                  description="Submit pinned executions, read results with provenance, resolve pins, list "
                              "versions; release managers freeze and roll back. Bearer tokens carry a role.")
    app.state.services = services
    _install_errors(app)
    _health_routes(app, services)
    _execution_routes(app, services)
    _release_routes(app, services)
    from rollout.api.page import install_page

    install_page(app, services)
    app.add_middleware(BodyLimit, limit=services.config.max_body_bytes)
    app.add_middleware(AccessLog)
    app.add_middleware(SecurityHeaders)
    return app


# ------------------------------------------------------------------------------------------------ authentication
def authenticate(request: Request, _: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)] = None
                 ) -> Principal:
    """The caller from `Authorization: Bearer` (or the status page's session cookie, for reads only)."""
    services: Services = request.app.state.services
    header = request.headers.get("authorization")
    if header is None and request.method in ("GET", "HEAD") and request.cookies.get(COOKIE):
        principal = _session_principal(request, services, request.cookies[COOKIE])
    else:
        token = _bearer_token(header)
        if not token:
            raise ApiError(401, "no bearer token", hint="Send `Authorization: Bearer TOKEN` (rollout tokens add).")
        found = services.tokens.authenticate(token)
        if found is None:
            raise ApiError(401, "unknown or revoked token", hint="Ask an administrator for a new token.")
        principal = found
    request.state.principal = principal
    return principal


def _bearer_token(header: str | None) -> str | None:
    """The token of `Authorization: Bearer TOKEN`; the cookie never counts for writes, so a forged cross-site
    form can change nothing."""
    if header is None:
        return None
    scheme, _, token = header.partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def _session_principal(request: Request, services: Services, session_id: str) -> Principal:
    """The principal of a live status-page session (the session dies with its token)."""
    session = session_store(request).find(session_id)
    principal = services.tokens.principal_for_hash(session.token_sha256) if session else None
    if session is None or principal is None:
        raise ApiError(401, "the session expired or was signed out", hint="Sign in again at /.")
    request.state.session = session
    return principal


def session_store(request: Request) -> SessionStore:
    """The sessions every worker and replica shares (in the ledger database)."""
    services: Services = request.app.state.services
    return sessions_of(request.app.state, lambda: services.ledger.url)


def _date_time(value: object) -> object:
    if isinstance(value, str) and not DATE_TIME.match(value):
        raise ValueError("must be an RFC 3339 date-time such as 2026-03-02T10:00:00Z")
    return value


def role(*allowed: Role) -> Any:
    """Dependency: the caller, if their role is one of `allowed` (else 403)."""
    def check(principal: Annotated[Principal, Depends(authenticate)]) -> Principal:
        if principal.role not in allowed:
            raise ApiError(403, f"role {principal.role} may not do this", hint=f"Needs one of: {', '.join(allowed)}.")
        return principal

    return Depends(check)


Everyone = Annotated[Principal, role(*ALL)]
Reader = Annotated[Principal, role(*READERS)]
Submitting = Annotated[Principal, role("execution-client", "developer")]
Manager = Annotated[Principal, role("release-manager")]
Auditor = Annotated[Principal, role("auditor", "release-manager")]
ExecutionId = Annotated[str, PathParam(pattern=r"^[0-9a-f-]{36}$", description="execution id")]
Name = Annotated[str, PathParam(pattern=NAME, description="biomarker name")]
FreezeId = Annotated[str, PathParam(pattern=r"^[A-Za-z0-9_-]{1,64}$", description="freeze id")]
Action = Annotated[str, PathParam(pattern=r"^(pause|resume|abort|rollback)$", description="what to ask for")]
EnvironmentQuery = Annotated[str | None, Query(pattern=NAME, description="environment (default: the first served)")]
# The contract says date-time: a bare number (pydantic would read it as epoch seconds) is refused like any typo.
DateTimeQuery = Annotated[datetime | None, BeforeValidator(_date_time), Query(description="RFC 3339 date-time")]
IdempotencyKey = Annotated[str | None, Header(pattern=IDEMPOTENCY_KEY, description="same key + same body = "
                                              "same execution")]


# ------------------------------------------------------------------------------------------------ health
def _health_routes(app: FastAPI, services: Services) -> None:
    @app.get("/healthz", response_model=Health, tags=["health"], summary="the process answers")
    def healthz() -> Health:
        return Health(status="ok")

    @app.get("/readyz", response_model=Health, tags=["health"], summary="the systems of record answer",
             responses={503: {"model": Health, "description": "not ready: `checks` says which system and why"}})
    def readyz() -> Any:
        checks = {"tokens": "ok" if services.tokens.ready() else "no tokens configured"}
        for name, probe in _probes(services):
            checks[name] = _probe(probe)
        ready = all(v == "ok" for v in checks.values())
        return JSONResponse(Health(status="ready" if ready else "not ready", checks=checks).model_dump(),
                            status_code=200 if ready else 503)


def _probes(services: Services) -> tuple[tuple[str, Callable[[], object]], ...]:
    """The database (ledger), the release store, and the registry asked WITH the server's own credentials: a
    server whose registry password was rotated resolves nothing, so it is not ready."""
    return (("ledger", lambda: services.ledger.find("readiness-probe")),
            ("release-store", lambda: services.store.read(services.config.default_environment, "readiness-probe")),
            ("registry", services.registry.ping))


def _probe(probe: Callable[[], object]) -> str:
    try:
        probe()
    except Unauthorized as e:
        return f"the registry refused the server's credentials ({e.status or 401})"
    except Exception as e:  # readiness reports every failure, whatever its kind
        return getattr(e, "message", type(e).__name__)
    return "ok"


# ------------------------------------------------------------------------------------------------ executions
def _environment(services: Services, given: str | None) -> str:
    environment = given or services.config.default_environment
    if environment not in services.config.environments:
        raise ApiError(422, f"environment {environment!r} is not served here", field="environment",
                       hint=f"Use one of: {', '.join(services.config.environments)}.")
    return environment


def _input_path(services: Services, reference: str) -> Path:
    """The study under the input root; anything escaping it (.., absolute, symlinks out) is refused."""
    root = services.config.input_root
    if reference.startswith("/") or ".." in Path(reference).parts:
        raise ApiError(422, "input must be a relative path inside the input root", field="input")
    path = (root / reference).resolve()
    if not path.is_relative_to(root) or path == root:
        raise ApiError(422, "input must be a relative path inside the input root", field="input")
    try:
        present = path.exists()
    except OSError as e:  # a name too long for the file system, ...: the client's reference, not the server
        raise ApiError(422, f"input {reference!r} cannot be looked up: {e.strerror or type(e).__name__}",
                       field="input", hint="Use the study's name as it is on the shared input volume.") from e
    if not present:
        raise ApiError(422, f"input {reference!r} does not exist under the input root", field="input",
                       hint="Copy the study to the shared input volume first.")
    return path


def _own(execution: Execution, principal: Principal) -> Execution:
    """Execution clients see only their own delivered executions (others, and the paired shadow runs of a rollout,
    read as not found: a candidate's result is evidence for the team, never a result for the client)."""
    if principal.role == "execution-client" and (execution.record.actor != _actor(principal)
                                                 or execution.record.route == "shadow"):
        raise ApiError(404, f"no execution {execution.id}")
    return execution


def _view(execution: Execution, principal: Principal, services: Services) -> ExecutionView:
    """The execution as `principal` may see it (execution clients are not told a shadow run exists)."""
    view = execution_view(execution, services.config.input_root)
    return view.model_copy(update={"paired_execution_id": None}) if principal.role == "execution-client" else view


def _actor(principal: Principal) -> str:
    return f"api:{principal.name}"


def _mismatch(execution: Execution, request: ExecutionRequest, variant: str) -> str | None:
    """Which field of a replayed request differs from what the key first recorded."""
    r = execution.record
    for field, recorded, given in (("biomarker", r.biomarker, request.biomarker),
                                   ("pin", r.pin_requested, f"{request.biomarker}@{request.spec}"),
                                   ("variant", r.variant, variant), ("environment", r.environment,
                                                                     request.environment),
                                   ("cohort", r.cohort, request.cohort),
                                   ("input", r.input_path, str(request.input_path))):
        if recorded != given:
            return field
    return None


def _yank_override(body: SubmitRequest, principal: Principal) -> str | None:
    """Running a yanked (recalled) version: developers only, always with a reason (recorded with the execution)."""
    if not body.allow_yanked:
        if body.reason:
            raise ApiError(422, "reason is only for allow_yanked", field="reason", hint="Drop it or set allow_yanked.")
        return None
    if principal.role != "developer":
        raise ApiError(403, f"role {principal.role} may not run a yanked version", field="allow_yanked",
                       hint="Pin another version; a developer may run a recalled one with a reason.")
    if not body.reason:
        raise ApiError(422, "allow_yanked needs a reason", field="reason",
                       hint="Say why the recalled version must run.")
    return body.reason


def _execution_routes(app: FastAPI, services: Services) -> None:
    @app.post("/v1/executions", status_code=202, response_model=ExecutionView, tags=["executions"],
              summary="submit a study pinned to a version (runs asynchronously)",
              responses={409: {"model": Problem, "description": "Idempotency-Key reused with another body"},
                         503: {"model": Problem, "description": "too many submissions running; retry"}})
    def submit(body: SubmitRequest, request: Request, principal: Submitting,
               idempotency_key: IdempotencyKey = None) -> JSONResponse:
        environment = _environment(services, body.environment)
        manifest = services.catalog.manifest(body.biomarker)
        variant = body.variant or next(iter(manifest.variants))
        if variant not in manifest.variants:
            raise ApiError(422, f"{body.biomarker} has no variant {variant!r}", field="variant",
                           hint=f"Choose one of: {', '.join(manifest.variants)}.")
        request_id = f"api:{principal.name}:{idempotency_key or uuid.uuid4()}"
        id_ = execution_id(request_id)
        wanted = ExecutionRequest(
            biomarker=body.biomarker, spec=body.pin.strip().removeprefix("@"),
            input_path=_input_path(services, body.input), output_path=services.config.output_root / id_,
            variant=variant, environment=environment, cohort=body.cohort, series_uid=body.series_uid,
            request_id=request_id, actor=_actor(principal), yank_override=_yank_override(body, principal))
        existing = services.ledger.find(id_) if idempotency_key else None
        if existing is not None:
            differs = _mismatch(existing, wanted, variant)
            if differs:
                raise ApiError(409, f"Idempotency-Key {idempotency_key} was used for another request ({differs} "
                               "differs)", field=differs, hint="Use a new key for a new request.")
        execution = existing or services.dispatcher.start(wanted, id_)
        view = _view(execution, principal, services)
        return JSONResponse(view.model_dump(mode="json"), status_code=202, headers={"Location": view.links["self"]})

    @app.get("/v1/executions", response_model=ExecutionList, tags=["executions"],
             summary="the ledger: the latest executions, newest first (release managers, developers, auditors)")
    def list_executions(_: Reader,
                        biomarker: Annotated[str | None, Query(pattern=NAME)] = None,
                        version: Annotated[str | None, Query(pattern=r"^[0-9A-Za-z.+_-]{1,128}$")] = None,
                        since: DateTimeQuery = None,
                        limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> ExecutionList:
        found = services.ledger.executions(biomarker=biomarker, version=version, since=since, limit=limit,
                                           newest_first=True)
        return ExecutionList(executions=[execution_view(e, services.config.input_root) for e in found])

    @app.get("/v1/executions/{execution_id}", response_model=ExecutionView, tags=["executions"],
             summary="status, resolved version and digest, route, timings",
             responses={404: {"model": Problem, "description": "no such execution"}})
    def get_execution(execution_id: ExecutionId, principal: Everyone) -> ExecutionView:
        return _view(_own(services.ledger.get(execution_id), principal), principal, services)

    @app.get("/v1/executions/{execution_id}/results", response_model=ResultsView, tags=["executions"],
             summary="the report and its provenance",
             responses={404: {"model": Problem, "description": "no such execution"},
                        409: {"model": Problem, "description": "still queued or running"}})
    def get_results(execution_id: ExecutionId, principal: Everyone) -> ResultsView:
        execution = _own(services.ledger.get(execution_id), principal)
        view = results_view(execution)
        if view.status in ("queued", "running"):
            raise ApiError(409, f"execution {execution_id} is {view.status}; no results yet",
                           hint="Poll GET /v1/executions/{id} until its status is succeeded or failed.")
        return view


# ------------------------------------------------------------------------------------------------ releases
def _release_routes(app: FastAPI, services: Services) -> None:
    @app.get("/v1/biomarkers", response_model=BiomarkerList, tags=["releases"], summary="biomarkers and channels")
    def biomarkers(_: Everyone) -> BiomarkerList:
        out = []
        for name in services.catalog.names():
            manifest = services.catalog.manifest(name)
            channels = {env: {ch: pin.version for ch, pin in sorted(services.store.read(env, name)
                                                                    .state.channels.items())}
                        for env in services.config.environments}
            out.append(BiomarkerSummary(name=name, description=manifest.description, image=manifest.image,
                                        variants=list(manifest.variants), channels=channels))
        return BiomarkerList(biomarkers=out)

    @app.get("/v1/biomarkers/{name}/versions", response_model=VersionList, tags=["releases"],
             summary="what can be pinned: versions with channels, yanks and freezes",
             responses={404: {"model": Problem, "description": "unknown biomarker"}})
    def versions(name: Name, _: Everyone) -> VersionList:
        manifest = _manifest(services, name)
        now = datetime.now(UTC)
        states = [services.store.read(env, name).state for env in services.config.environments]
        view = gather_registry(services.registry, manifest.image)
        return VersionList(biomarker=name, image=view.image, versions=version_views(view, states, now),
                           freezes=[freeze_view(f, s.environment, now) for s in states for f in s.freezes])

    @app.post("/v1/resolve", response_model=Resolution, tags=["releases"], summary="resolve a pin, run nothing",
              responses={404: {"model": Problem, "description": NOT_FOUND}})
    def resolve(body: ResolveRequest, _: Everyone) -> Resolution:
        environment = _environment(services, body.environment)
        manifest = _manifest(services, body.biomarker)
        spec = body.pin.strip().removeprefix("@")
        state = services.store.read(environment, body.biomarker).state  # once: the freeze and the pin agree
        bound = binding_freeze(state, body.cohort, datetime.now(UTC))
        if bound is not None:
            spec = frozen_spec(spec, bound)
        try:
            found = services.resolver.resolve(spec, release=state, image_repository=manifest.image)
        except ValueError as e:  # a range the version grammar cannot read
            raise ApiError(422, f"pin {body.pin!r} is not a version, range, channel or digest: {e}",
                           field="pin") from e
        return Resolution(reference=found.reference, version=found.version, digest=found.digest, rule=found.rule,
                          attestation_digest=found.attestation_digest, warnings=list(found.warnings))

    @app.post("/v1/biomarkers/{name}/freezes", status_code=201, response_model=FreezeView, tags=["releases"],
              summary="freeze a biomarker in an environment (release managers)",
              responses={404: {"model": Problem, "description": NOT_FOUND},
                         409: {"model": Problem, "description": "the release state kept changing; retry"}})
    def add_freeze(name: Name, body: FreezeRequest, principal: Manager) -> FreezeView:
        environment = _environment(services, body.environment)
        _manifest(services, name)
        now = datetime.now(UTC)
        item = freezes.new_freeze(reason=body.reason, owner=_actor(principal), now=now, version=body.version,
                                  cohort=body.cohort,
                                  expires_at=now + timedelta(hours=body.hours) if body.hours else None)
        operations.add_freeze(services.store, environment, name, item, services.audit, actor=_actor(principal))
        return freeze_view(item, environment, now)

    @app.delete("/v1/biomarkers/{name}/freezes/{freeze_id}", status_code=204, tags=["releases"],
                summary="lift a freeze (release managers)",
                responses={404: {"model": Problem, "description": "no such biomarker or freeze"},
                           409: {"model": Problem, "description": "the release state kept changing; retry"}})
    def lift_freeze(name: Name, freeze_id: FreezeId,
                    principal: Manager,
                    environment: EnvironmentQuery = None) -> None:
        env = _environment(services, environment)
        _manifest(services, name)
        operations.remove_freeze(services.store, env, name, freeze_id, services.audit, "lifted through the API",
                                 actor=_actor(principal))

    @app.get("/v1/rollouts/{name}", response_model=RolloutView, tags=["rollouts"], summary="a rollout's status")
    def rollout(name: Name, _: Reader,
                environment: EnvironmentQuery = None) -> RolloutView:
        env = _environment(services, environment)
        status = load_status(services.store.read(env, name).state)
        doc = status.model_dump(mode="json", exclude={"candidate_spec", "promote_spec"}) if status else None
        return RolloutView(biomarker=name, environment=env, rollout=doc)

    @app.post("/v1/rollouts/{name}/{action}", status_code=202, response_model=RolloutView, tags=["rollouts"],
              summary="pause, resume, abort or roll back a rollout (release managers); the controller acts on it",
              responses={404: {"model": Problem, "description": "no rollout"},
                         409: {"model": Problem, "description": "the release state kept changing; retry"}})
    def act(name: Name, action: Action,
            body: RolloutRequest, principal: Manager) -> RolloutView:
        env = _environment(services, body.environment)
        if load_status(services.store.read(env, name).state) is None:
            raise ApiError(404, f"no rollout of {name} in {env}", hint="Start one with `rollout deploy`.")
        status = operations.request(services.store, env, name, action, now=datetime.now(UTC),
                                    reason=body.reason or "requested through the API", actor=_actor(principal),
                                    audit=services.audit)
        return RolloutView(biomarker=name, environment=env,
                           rollout=status.model_dump(mode="json", exclude={"candidate_spec", "promote_spec"}))

    @app.get("/v1/recalls", response_model=RecallList, tags=["audit"], summary="recalls (auditors)")
    def recalls(_: Auditor) -> RecallList:
        return RecallList(recalls=[RecallView(subject=e.subject, reason=e.reason, actor=e.actor, at=e.at,
                                              details=e.details) for e in services.audit.events(action="recall")])

    @app.get("/v1/audit", response_model=AuditList, tags=["audit"],
             summary="the audit trail: promotions, yanks, freezes, deploys, rollbacks, gate verdicts (auditors)")
    def audit_trail(_: Auditor, biomarker: Annotated[str | None, Query(pattern=NAME)] = None,
                    environment: Annotated[str | None, Query(pattern=NAME)] = None,
                    actor: Annotated[str | None, Query(min_length=1, max_length=200)] = None,
                    action: Annotated[str | None, Query(pattern=r"^[a-z][a-z_-]{0,63}$")] = None,
                    since: DateTimeQuery = None, until: DateTimeQuery = None) -> AuditList:
        query = AuditQuery(biomarker, environment, actor, action, since, until)
        return AuditList(events=[AuditEntry(**e.as_json()) for e in services.audit.read(query)])


def _manifest(services: Services, name: str) -> Any:
    if name not in services.catalog.names():
        raise ApiError(404, f"no biomarker {name}", hint="List them with GET /v1/biomarkers.")
    return services.catalog.manifest(name)


__all__ = ["ApiError", "UsageError", "create_app"]
