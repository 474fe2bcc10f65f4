"""Semantic versions, their registry tags, and ranges: the documented semantics, checked as properties."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from delivery.errors import UsageError
from delivery.versioning import (
    Version,
    newest,
    parse_range,
    parse_version,
    sort_key,
    tag_of,
    version_of_tag,
)

numbers = st.integers(min_value=0, max_value=30)
identifiers = st.from_regex(r"\A(alpha|beta|rc)(\.[1-9][0-9]?)?\Z")
builds = st.from_regex(r"\A[a-z0-9]{1,6}(\.[a-z0-9]{1,4})?\Z")


@st.composite
def versions(draw: st.DrawFn, *, pre: bool = True) -> Version:
    prerelease = draw(st.one_of(st.none(), identifiers)) if pre else None
    return Version(draw(numbers), draw(numbers), draw(numbers), prerelease, draw(st.one_of(st.none(), builds)))


finals = versions(pre=False)


@settings(deadline=None)  # timing is not the property; CI machines are shared
@given(versions())
def test_a_version_survives_text_and_registry_tags(version: Version) -> None:
    assert parse_version(str(version)) == version
    tag = tag_of(version)
    assert "+" not in tag
    back = version_of_tag(tag)
    assert back == version and back.build == version.build


@settings(deadline=None)  # timing is not the property; CI machines are shared
@given(st.lists(versions(), min_size=1, max_size=12))
def test_newest_is_the_semver_maximum(items: list[Version]) -> None:
    top = newest(items)
    assert top is not None
    assert all(sort_key(v) <= sort_key(top) for v in items)


def test_pre_releases_sort_before_their_release_and_build_metadata_breaks_ties() -> None:
    ordered = ["1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-beta.2", "1.0.0-beta.11", "1.0.0-rc.1", "1.0.0", "1.0.0+b1",
               "1.0.1", "1.10.0", "2.0.0"]
    parsed = [parse_version(v) for v in ordered]
    assert all(p is not None for p in parsed)
    assert sorted(parsed, key=sort_key) == parsed  # type: ignore[arg-type]


@pytest.mark.parametrize("tag", ["latest", "sha256-" + "a" * 64 + ".att", "1.0.0.yank", "1.0.0-rc.1.yank", "1.0",
                                 "v1.0.0", "1_0_0"])
def test_other_tags_are_not_versions(tag: str) -> None:
    assert version_of_tag(tag) is None


@settings(deadline=None)  # timing is not the property; CI machines are shared
@given(versions(), numbers)
def test_caret_major_is_that_major_without_pre_releases(version: Version, major: int) -> None:
    spec = parse_range(f"^{major + 1}")
    assert spec.matches(version) == (version.major == major + 1 and not version.prerelease)


@settings(deadline=None)  # timing is not the property; CI machines are shared
@given(versions(), numbers, numbers)
def test_tilde_minor_is_that_minor_without_pre_releases(version: Version, major: int, minor: int) -> None:
    spec = parse_range(f"~{major}.{minor}")
    assert spec.matches(version) == ((version.major, version.minor) == (major, minor) and not version.prerelease)


@settings(deadline=None)  # timing is not the property; CI machines are shared
@given(versions(), finals, finals)
def test_comparator_sets_are_an_and(version: Version, low: Version, high: Version) -> None:
    spec = parse_range(f">={low} <{high}")
    expected = low <= version < high and not version.prerelease
    assert spec.matches(version) == expected


@settings(deadline=None)  # timing is not the property; CI machines are shared
@given(versions())
def test_star_matches_every_release_and_no_pre_release(version: Version) -> None:
    assert parse_range("*").matches(version) == (not version.prerelease)


@settings(deadline=None)  # timing is not the property; CI machines are shared
@given(versions(pre=False), st.sampled_from(["", "=", "~", "^", ">=", ">", "<", "<="]), versions(pre=False))
def test_ranges_without_a_pre_release_never_match_one(base: Version, op: str, other: Version) -> None:
    pre = other.replace(prerelease="rc.1")
    assert not parse_range(f"{op}{base.major}.{base.minor}").matches(pre)
    assert not parse_range(f"{op}{base.finalize_version()}").matches(pre)


def test_pre_releases_match_when_asked_for_on_the_same_release_only() -> None:
    spec = parse_range(">=2.0.0-rc.1")
    assert spec.matches(Version.parse("2.0.0-rc.3"))
    assert spec.matches(Version.parse("2.0.0"))
    assert not spec.matches(Version.parse("2.1.0-beta"))


@pytest.mark.parametrize(("spec", "inside", "outside"), [
    ("1.4.2", "1.4.2", "1.4.3"),
    ("~1.4", "1.4.9", "1.5.0"),
    ("~1.4.2", "1.4.2", "1.4.1"),
    ("^1", "1.99.0", "2.0.0"),
    ("^0.4.2", "0.4.9", "0.5.0"),
    ("^0.0.3", "0.0.3", "0.0.4"),
    ("^0", "0.9.9", "1.0.0"),
    ("1.x", "1.2.0", "2.0.0"),
    (">1.2", "1.3.0", "1.2.9"),
    ("<=1.2", "1.2.9", "1.3.0"),
    ("1.0.0 || ^3", "3.1.0", "2.0.0"),
])
def test_documented_examples(spec: str, inside: str, outside: str) -> None:
    parsed = parse_range(spec)
    assert parsed.matches(Version.parse(inside))
    assert not parsed.matches(Version.parse(outside))


@pytest.mark.parametrize("spec", ["banana", "1.2.3.4", ">>1", "^", "1.2-", "~x.y.z.w"])
def test_nonsense_ranges_are_usage_errors(spec: str) -> None:
    with pytest.raises(UsageError):
        parse_range(spec)


ARABIC_INDIC = "\u0661.\u0660.\u0660"  # looks like 1.0.0 to Python's \d, names no tag anyone pushed


@pytest.mark.parametrize("text", [ARABIC_INDIC, "\u0661.2.3", "1.\uff12.3", "1.2.3-rc.\u0661"])
def test_versions_are_ascii_only(text: str) -> None:
    assert parse_version(text) is None and version_of_tag(text) is None
    for spec in (text, f"={text}", f"^{text}", f">={text} <9.0.0"):
        with pytest.raises(UsageError):
            parse_range(spec)


@pytest.mark.parametrize("spec", ["^\u0661", "~\u0661.\u0662", "\u0661.x", ">=\u0661"])
def test_partial_versions_in_ranges_are_ascii_only(spec: str) -> None:
    with pytest.raises(UsageError):
        parse_range(spec)


def test_rollout_freeze_refuses_a_pin_of_non_ascii_digits(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    from rollout.cli import main

    monkeypatch.setenv("DELIVERY_HOME", str(tmp_path))
    monkeypatch.delenv("NOMAD_ADDR", raising=False)
    code = main(["freeze", "alpha", "--reason", "trial", "--owner", "qa", "--pin", ARABIC_INDIC])
    assert code == 2 and "--pin" in capsys.readouterr().err
