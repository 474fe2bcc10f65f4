"""Thin typed client for Jenkins on python-jenkins; failures become JenkinsError classified by status code."""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import jenkins
import requests

from delivery.errors import ExternalServiceError
from delivery.secrets import Secret

T = TypeVar("T")
BULK_TREE = "jobs[name,description,disabled,color]"
_HINTS = {
    401: "Jenkins refused the credentials: check --user and the API token in --token-env.",
    403: "The Jenkins user may not do this (or the CSRF crumb was refused): check its permissions.",
    404: "The job or folder does not exist in Jenkins: run `delivery pipelines plan` to see what is missing.",
    500: "Jenkins failed internally: look at its system log, then run again.",
}


class JenkinsError(ExternalServiceError):
    """Jenkins refused or failed a request."""

    service = "Jenkins"


@dataclass(frozen=True)
class JobSummary:
    """One item of a folder as the bulk read returns it."""

    name: str
    description: str | None
    disabled: bool


class JenkinsClient:
    """The Jenkins calls the sync needs, each translated into JenkinsError on failure."""

    def __init__(self, url: str, username: str | None, token: Secret | None, *, timeout: int = 30) -> None:
        self.url = url.rstrip("/") + "/"
        password = token.reveal() if token is not None else None
        self._server = jenkins.Jenkins(self.url, username=username, password=password, timeout=timeout)

    def folder_jobs(self, folder: str) -> tuple[JobSummary, ...] | None:
        """Every item of `folder` with its description, in one request; None when the folder is missing.

        Raises:
            JenkinsError: Jenkins refused or failed (401, 403, 500, …).
        """
        url = f"{self.url}{_job_path(folder)}api/json?tree={urllib.parse.quote(BULK_TREE)}"
        try:
            text = self._call(f"read folder {folder}", lambda: self._server.jenkins_open(requests.Request("GET", url)))
        except JenkinsError as e:
            if e.status == 404:
                return None
            raise
        try:
            items = json.loads(text).get("jobs") or []
        except (ValueError, AttributeError) as e:
            raise JenkinsError(f"Jenkins sent a folder listing of {folder} that is not JSON") from e
        return tuple(_summary(item) for item in items if isinstance(item, dict))

    def create_folder(self, folder: str, config_xml: str) -> None:
        """Create folder `folder` from its config.xml.

        Raises:
            JenkinsError: Jenkins refused or failed.
        """
        self._call(f"create folder {folder}", lambda: self._server.create_job(folder, config_xml))

    def job_config(self, full_name: str) -> str:
        """The live config.xml of `full_name`.

        Raises:
            JenkinsError: the job is missing (404) or Jenkins refused or failed.
        """
        return str(self._call(f"read {full_name}", lambda: self._server.get_job_config(full_name)))

    def create_job(self, full_name: str, config_xml: str) -> None:
        """Create job `full_name`.

        Raises:
            JenkinsError: Jenkins refused or failed.
        """
        self._call(f"create {full_name}", lambda: self._server.create_job(full_name, config_xml))

    def update_job(self, full_name: str, config_xml: str) -> None:
        """Replace the config.xml of `full_name`.

        Raises:
            JenkinsError: the job is missing (404) or Jenkins refused or failed.
        """
        self._call(f"update {full_name}", lambda: self._server.reconfig_job(full_name, config_xml))

    def disable_job(self, full_name: str) -> None:
        """Disable `full_name` (its history stays).

        Raises:
            JenkinsError: the job is missing (404) or Jenkins refused or failed.
        """
        self._call(f"disable {full_name}", lambda: self._server.disable_job(full_name))

    def delete_job(self, full_name: str) -> None:
        """Delete `full_name` and its history.

        Raises:
            JenkinsError: the job is missing (404) or Jenkins refused or failed.
        """
        self._call(f"delete {full_name}", lambda: self._server.delete_job(full_name))

    def _call(self, what: str, action: Callable[[], T]) -> T:
        try:
            return action()
        except (jenkins.JenkinsException, requests.RequestException) as e:
            status = _status(e)
            hint = _HINTS.get(status or 0, "Check --jenkins-url and that Jenkins is up, then run again.")
            raise JenkinsError(f"Jenkins could not {what} ({_describe(status)})", status=status, hint=hint) from e


def _job_path(full_name: str) -> str:
    return "".join(f"job/{urllib.parse.quote(part)}/" for part in full_name.split("/"))


def _summary(item: dict[str, Any]) -> JobSummary:
    disabled = bool(item.get("disabled")) or item.get("color") == "disabled"
    return JobSummary(str(item.get("name", "")), item.get("description"), disabled)


def _status(error: BaseException) -> int | None:
    """The HTTP status behind an error: python-jenkins raises its own types while handling requests' HTTPError."""
    if isinstance(error, jenkins.NotFoundException):
        return 404
    seen: BaseException | None = error
    while seen is not None:
        response = getattr(seen, "response", None)
        if isinstance(seen, requests.HTTPError) and response is not None:
            return int(response.status_code)
        seen = seen.__cause__ or seen.__context__
    return None


def _describe(status: int | None) -> str:
    return f"HTTP {status}" if status is not None else "no answer"
