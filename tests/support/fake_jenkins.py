"""A loopback fake of Jenkins: crumb issuer, folders, jobs' config.xml, bulk api/json, disable/delete, faults."""

from __future__ import annotations

import base64
import json
import re
import urllib.parse
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import Any

from tests.support.fake_github import Fault, LoopbackServer, Reply, take_fault

USER, TOKEN = "seed-bot", "jenkins-api-token-0123456789"
CRUMB = {"_class": "hudson.security.csrf.DefaultCrumbIssuer", "crumb": "dab177f483b3dd93",
         "crumbRequestField": "Jenkins-Crumb"}
FOLDER_CLASS = "com.cloudbees.hudson.plugins.folder.Folder"
EMPTY_FOLDER_XML = f"<?xml version='1.1' encoding='UTF-8'?><{FOLDER_CLASS}><description></description></{FOLDER_CLASS}>"


@dataclass
class FakeJob:
    config_xml: str
    disabled: bool = False

    @property
    def is_folder(self) -> bool:
        return ET.fromstring(self.config_xml.encode()).tag == FOLDER_CLASS

    @property
    def description(self) -> str | None:
        node = ET.fromstring(self.config_xml.encode()).find("description")
        return node.text if node is not None else None


class FakeJenkins:
    """Items keyed by full name (`folder/job`); every request is logged for counting."""

    def __init__(self, *, crumbs: bool = True) -> None:
        self.items: dict[str, FakeJob] = {}
        self.faults: list[Fault] = []
        self.crumbs = crumbs
        self.http = LoopbackServer(self._route)
        self.url = self.http.url

    def fail(self, method: str, path: str, status: int, *, times: int = 1, body: str = "") -> None:
        self.faults.append(Fault(method, path, Reply(status, body.encode(), {}), times))

    def requests(self, method: str | None = None, contains: str = "") -> int:
        return self.http.count(method, contains)

    def stop(self) -> None:
        self.http.stop()

    def _route(self, method: str, raw_path: str, headers: dict[str, str], body: bytes) -> Reply:
        fault = take_fault(self.faults, method, raw_path)
        if fault is not None:
            return fault
        if headers.get("authorization") != "Basic " + base64.b64encode(f"{USER}:{TOKEN}".encode()).decode():
            return Reply(401, b"<html>Unauthorized</html>", {"WWW-Authenticate": "Basic realm=\"Jenkins\""})
        parsed = urllib.parse.urlsplit(raw_path)
        if parsed.path == "/crumbIssuer/api/json":
            return _json(CRUMB) if self.crumbs else Reply(404)
        if method == "POST" and self.crumbs and headers.get("jenkins-crumb") != CRUMB["crumb"]:
            return Reply(403, b"No valid crumb was included in the request")
        name, action = _split(parsed.path)
        query = dict(urllib.parse.parse_qsl(parsed.query))
        return self._dispatch(method, name, action, query, headers, body)

    def _dispatch(self, method: str, name: str, action: str, query: dict[str, str], headers: dict[str, str],
                  body: bytes) -> Reply:
        item = self.items.get(name) if name else None
        if name and item is None:
            return Reply(404, b"<html>Not Found</html>")
        if method == "GET" and action == "":
            return Reply(200, b"<html>Jenkins</html>", {"Content-Type": "text/html", "X-Jenkins": "2.452.1"})
        if method == "GET" and action == "api/json":
            return _json(self._info(name, item, query.get("tree", "")))
        if method == "POST" and action == "createItem":
            return self._create(name, query.get("name", ""), headers, body)
        if item is None:
            return Reply(404)
        if action == "config.xml":
            if method == "GET":
                return Reply(200, item.config_xml.encode(), {"Content-Type": "application/xml"})
            item.config_xml = body.decode()
            item.disabled = _disabled(item.config_xml)
            return Reply(200)
        if method == "POST" and action in ("disable", "enable"):
            item.disabled = action == "disable"
            item.config_xml = re.sub(r"<disabled>\w+</disabled>", f"<disabled>{str(item.disabled).lower()}</disabled>",
                                     item.config_xml)
            return Reply(302, b"", {"Location": f"{self.url}/"})
        if method == "POST" and action == "doDelete":
            for key in [k for k in self.items if k == name or k.startswith(name + "/")]:
                del self.items[key]
            return Reply(302, b"", {"Location": f"{self.url}/"})
        return Reply(404)

    def _children(self, name: str) -> list[tuple[str, FakeJob]]:
        prefix = f"{name}/" if name else ""
        return [(k[len(prefix):], v) for k, v in sorted(self.items.items())
                if k.startswith(prefix) and "/" not in k[len(prefix):]]

    def _info(self, name: str, item: FakeJob | None, tree: str) -> dict[str, Any]:
        if tree == "name":
            return {"name": name.rsplit("/", 1)[-1]}
        jobs = [{"_class": FOLDER_CLASS if j.is_folder else "org.jenkinsci.plugins.workflow.multibranch."
                 "WorkflowMultiBranchProject", "name": n, "description": j.description, "disabled": j.disabled,
                 "url": f"{self.url}/job/{n}/"} for n, j in self._children(name)]
        return {"name": name, "jobs": jobs}

    def _create(self, parent: str, short: str, headers: dict[str, str], body: bytes) -> Reply:
        full = f"{parent}/{short}" if parent else short
        if not short or full in self.items:
            return Reply(400, b"A job already exists with the name")
        if headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
            self.items[full] = FakeJob(EMPTY_FOLDER_XML)
        else:
            try:
                ET.fromstring(body)
            except ET.ParseError:
                return Reply(500, b"<html>javax.xml.stream.XMLStreamException</html>")
            self.items[full] = FakeJob(body.decode(), _disabled(body.decode()))
        return Reply(200)


def _split(path: str) -> tuple[str, str]:
    """`/job/a/job/b/config.xml` → (`a/b`, `config.xml`)."""
    parts = [urllib.parse.unquote(p) for p in path.strip("/").split("/")]
    names = []
    while len(parts) >= 2 and parts[0] == "job":
        names.append(parts[1])
        parts = parts[2:]
    return "/".join(names), "/".join(parts)


def _disabled(config_xml: str) -> bool:
    node = ET.fromstring(config_xml.encode()).find("disabled")
    return node is not None and node.text == "true"


def _json(body: Any) -> Reply:
    return Reply(200, json.dumps(body).encode(), {"Content-Type": "application/json"})
