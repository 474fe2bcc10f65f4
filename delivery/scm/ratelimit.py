"""GitHub rate limits: read the headers, keep a budget, wait for resets, honour Retry-After, back off on 5xx."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol, TypeVar

from delivery.errors import ExternalServiceError

SECONDARY_WAIT = 60.0


class Clock(Protocol):
    """Wall-clock time and sleeping; tests pass a fake one so nothing really waits."""

    def now(self) -> float: ...

    def sleep(self, seconds: float) -> None: ...


class SystemClock:
    """The real clock."""

    def now(self) -> float:
        """Seconds since the epoch."""
        return time.time()

    def sleep(self, seconds: float) -> None:
        """Block for `seconds`."""
        time.sleep(seconds)


class Response(Protocol):
    """What the governor needs to see of an HTTP answer."""

    @property
    def status(self) -> int: ...

    @property
    def headers(self) -> Mapping[str, str]: ...


R = TypeVar("R", bound=Response)


class RateLimitExceeded(ExternalServiceError):
    """GitHub's rate limit is spent and the reset is further away than we may wait."""

    service = "GitHub"


@dataclass(frozen=True)
class Budget:
    """The last rate-limit figures GitHub sent for one resource (`core`, `graphql`)."""

    remaining: int
    limit: int
    reset: float


class Governor:
    """Runs requests under GitHub's limits, waiting and retrying only where it is safe."""

    def __init__(
        self, clock: Clock, *, max_wait: float = 3600.0, retries: int = 4, backoff: float = 1.0,
        progress: Callable[[str], None] | None = None,
    ) -> None:
        self.clock, self.max_wait, self.retries, self.backoff = clock, max_wait, retries, backoff
        self.progress = progress or (lambda _message: None)
        self.budgets: dict[str, Budget] = {}
        self.waited = 0.0

    def run(self, resource: str, send: Callable[[], R]) -> R:
        """Send (again when allowed) until an answer that is not a limit or a 5xx, or retries run out."""
        self._respect_budget(resource)
        response = send()
        for attempt in range(self.retries):
            self._observe(resource, response.headers)
            delay = self._delay(response, attempt)
            if delay is None:
                return response
            self._wait(delay, f"GitHub answered {response.status}")
            response = send()
        self._observe(resource, response.headers)
        return response

    def _respect_budget(self, resource: str) -> None:
        """Do not spend a request we know will be refused: wait for the reset first."""
        budget = self.budgets.get(resource)
        if budget is not None and budget.remaining <= 0 and budget.reset > self.clock.now():
            self._wait(budget.reset - self.clock.now() + 1, f"{resource} rate limit of {budget.limit} spent")

    def _observe(self, resource: str, headers: Mapping[str, str]) -> None:
        try:
            remaining = int(headers["x-ratelimit-remaining"])
            limit = int(headers.get("x-ratelimit-limit", "0"))
            reset = float(headers.get("x-ratelimit-reset", "0"))
        except (KeyError, ValueError):
            return
        self.budgets[resource] = Budget(remaining, limit, reset)

    def _delay(self, response: Response, attempt: int) -> float | None:
        """Seconds to wait before retrying `response`, or None when it is final."""
        headers, status = response.headers, response.status
        if status in (403, 429):
            if "retry-after" in headers:  # secondary limit: GitHub says how long
                return _seconds(headers["retry-after"], SECONDARY_WAIT)
            if headers.get("x-ratelimit-remaining") == "0":  # primary limit: wait for the reset
                return max(_seconds(headers.get("x-ratelimit-reset", "0"), 0.0) - self.clock.now(), 0.0) + 1
            return float(SECONDARY_WAIT * 2**attempt) if status == 429 else None
        if status >= 500:
            return float(self.backoff * 2**attempt)
        return None

    def _wait(self, seconds: float, why: str) -> None:
        if seconds > self.max_wait:
            raise RateLimitExceeded(
                f"{why}; the limit resets in {seconds:.0f} s, longer than the allowed wait of {self.max_wait:.0f} s",
                status=429, hint="Run the scan again after the reset, or raise --max-wait.",
            )
        self.progress(f"{why}: waiting {seconds:.0f} s before going on")
        self.waited += seconds
        self.clock.sleep(seconds)


def _seconds(value: str, default: float) -> float:
    try:
        return float(value)
    except ValueError:
        return default
