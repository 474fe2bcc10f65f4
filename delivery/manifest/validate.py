"""Turn located YAML into a Biomarker, or into every problem it has, each with file:line:column."""

from __future__ import annotations

import difflib
from functools import cache
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from delivery.errors import ManifestError, Problem
from delivery.manifest import model
from delivery.manifest.model import Biomarker
from delivery.manifest.source import Located, PathKey, load_bytes, load_file

Schema = dict[str, Any]

PATTERN_HELP = {
    model.DNS_LABEL: "a DNS label: lowercase letters, digits and `-`, starting with a letter",
    model.IMAGE_PATH: "a registry repository path such as `biomarkers/emphysema` (lowercase)",
    model.DURATION: "a duration such as `90s`, `15m` or `2h`",
    model.OWNER: "an e-mail address or a GitHub `@handle` / `@org/team`",
    model.BUILD_ARG: "a build-arg name (letters, digits, `_`)",
    model.METRIC: "a report.json metric name such as `laa950_percent`",
}


def load_manifest(path: Path, display: str | None = None) -> Biomarker:
    """Load and validate one `biomarker.yaml` file."""
    return validate_located(load_file(path, display))


def parse_manifest(raw: bytes, name: str) -> Biomarker:
    """Validate manifest bytes fetched from elsewhere (a GitHub blob, a webhook)."""
    return validate_located(load_bytes(raw, name))


def validate_located(located: Located) -> Biomarker:
    """Validate parsed YAML, reporting unknown keys with hints and every model error."""
    unknown = _unknown_keys(located, located.data, _schema(), ())
    try:
        manifest = Biomarker.model_validate(located.data)
    except ValidationError as e:
        covered = {p.field for p in unknown}
        problems = unknown + [p for p in model_problems(located, e) if p.field not in covered]
        raise ManifestError(sorted_problems(problems)) from None
    if unknown:
        raise ManifestError(sorted_problems(unknown))
    return manifest


@cache
def _schema() -> Schema:
    return Biomarker.model_json_schema(by_alias=True)


def sorted_problems(problems: list[Problem]) -> list[Problem]:
    return sorted(set(problems), key=lambda p: (p.line, p.column, p.field))


def model_problems(located: Located, error: ValidationError) -> list[Problem]:
    problems = []
    for item in error.errors(include_url=False):
        path = _data_path(located.data, item["loc"])
        if item["type"] == "extra_forbidden":
            problems.append(located.problem(path, f"unknown key `{path[-1]}`", at_key=True))
            continue
        at_key = "[key]" in item["loc"]  # the map key itself (e.g. a variant name) is wrong
        problems.append(located.problem(path, _message(item), at_key=at_key))
    return problems


def _message(item: Any) -> str:
    if item["type"] == "missing":
        return f"required field `{item['loc'][-1]}` is missing"
    message = str(item["msg"])
    if item["type"] in ("value_error", "assertion_error"):
        message = message.removeprefix("Value error, ")
    if item["type"] == "string_pattern_mismatch":
        expected = PATTERN_HELP.get(item["ctx"]["pattern"], f"the pattern {item['ctx']['pattern']}")
        return f"{item['input']!r} is not valid: expected {expected}"
    return message


def _data_path(data: Any, loc: tuple[int | str, ...]) -> PathKey:
    """Drop pydantic's union-branch labels from `loc`, keeping keys that exist in the data."""
    path: list[str | int] = []
    node = data
    for part in loc:
        if _has(node, part):
            node = node[part]
            path.append(part)
        elif isinstance(node, dict) and not _is_branch_label(part):
            path.append(part)  # a missing key: report it under its parent
            break
    return tuple(path)


def _has(node: Any, part: int | str) -> bool:
    if isinstance(node, dict):
        return part in node
    return isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)


def _is_branch_label(part: int | str) -> bool:
    return isinstance(part, str) and (part[:1].isupper() or "[" in part or part.startswith("function-"))


def _unknown_keys(located: Located, data: Any, schema: Schema, path: PathKey) -> list[Problem]:
    schema = _resolve(schema)
    if isinstance(data, dict):
        return _unknown_in_mapping(located, data, schema, path)
    items = schema.get("items")
    if isinstance(data, list) and isinstance(items, dict):
        found: list[Problem] = []
        for i, item in enumerate(data):
            found += _unknown_keys(located, item, items, (*path, i))
        return found
    return []


def _unknown_in_mapping(located: Located, data: dict[str, Any], schema: Schema, path: PathKey) -> list[Problem]:
    props: dict[str, Schema] = schema.get("properties", {})
    extra = schema.get("additionalProperties", True)
    for pattern_schema in schema.get("patternProperties", {}).values():
        extra = pattern_schema  # maps keyed by a validated name (variants) have one value schema
    found: list[Problem] = []
    for key, value in data.items():
        if key in props:
            found += _unknown_keys(located, value, props[key], (*path, key))
        elif isinstance(extra, dict):
            found += _unknown_keys(located, value, extra, (*path, key))
        elif extra is False and props:
            found.append(located.problem((*path, key), _unknown_message(key, props), at_key=True))
    return found


def _unknown_message(key: str, props: dict[str, Schema]) -> str:
    close = difflib.get_close_matches(key, list(props), n=1, cutoff=0.6)
    hint = f"; did you mean `{close[0]}`?" if close else f"; allowed: {', '.join(sorted(props))}"
    return f"unknown key `{key}`{hint}"


def _resolve(schema: Schema) -> Schema:
    """Follow `$ref` and single-branch `anyOf` (optional fields) into the real object schema."""
    root = _schema()
    while True:
        if "$ref" in schema:
            schema = root["$defs"][schema["$ref"].rsplit("/", 1)[-1]]
            continue
        branches = [b for b in schema.get("anyOf", []) if b.get("type") != "null"]
        if len(branches) == 1:
            schema = branches[0]
            continue
        return schema
