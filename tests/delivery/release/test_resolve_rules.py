"""The pure resolution rules, as properties over generated registry states."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from delivery.release.resolve import RegistryView, ReleaseView, ResolveError, choose
from delivery.release.state import ChannelPin, Freeze
from delivery.release.yank import YankRecord
from delivery.versioning import Version, parse_range, parse_version, sort_key, tag_of

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
IMAGE = "reg.example:5000/biomarkers/alpha"
NO_ENV = ReleaseView(None, {}, ())

small = st.integers(min_value=0, max_value=4)
versions = st.builds(Version, small, small, small, st.one_of(st.none(), st.sampled_from(["rc.1", "beta.2"])))
ranges = st.sampled_from(["*", "^0", "^1", "^2", "~1.2", "~0.3", ">=1.2 <3", ">1", "<=2.1", "1.x", "^1.2.3",
                          ">=2.0.0-rc.1", "~1.2.0-beta.2", "0.0.x || 4"])


def _digest(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def _view(items: list[Version], yanked: set[Version] = frozenset()) -> RegistryView:  # type: ignore[assignment]
    tags = {tag_of(v): _digest(str(v)) for v in items}
    yanks = {tag_of(v): YankRecord(str(v), tags[tag_of(v)], "bad numbers", "qa", NOW) for v in yanked if v in items}
    return RegistryView(IMAGE, tags, yanks)


def _resolved(spec: str, view: RegistryView, release: ReleaseView = NO_ENV) -> Version | None:
    try:
        return parse_version(choose(spec, view, release, NOW).version)
    except ResolveError:
        return None


@settings(deadline=None)  # timing is not the property; CI machines are shared
@given(st.lists(versions, max_size=10), st.lists(versions, max_size=6), ranges)
def test_adding_versions_never_makes_a_range_resolve_lower(before: list[Version], added: list[Version],
                                                           spec: str) -> None:
    old = _resolved(spec, _view(before))
    new = _resolved(spec, _view(before + added))
    if old is not None:
        assert new is not None and sort_key(new) >= sort_key(old)


@settings(deadline=None)  # timing is not the property; CI machines are shared
@given(st.lists(versions, max_size=10), ranges)
def test_a_range_gives_a_pre_release_only_when_it_names_one(items: list[Version], spec: str) -> None:
    chosen = _resolved(spec, _view(items))
    if chosen is not None and chosen.prerelease:
        assert "-" in spec
    if chosen is not None:
        assert parse_range(spec).matches(chosen)


@settings(deadline=None)  # timing is not the property; CI machines are shared
@given(st.lists(versions, min_size=1, max_size=10), st.data())
def test_a_range_never_gives_a_yanked_version_but_an_exact_pin_still_does(items: list[Version],
                                                                          data: st.DataObject) -> None:
    yanked = set(data.draw(st.lists(st.sampled_from(items), max_size=len(items))))
    view = _view(items, yanked)
    spec = data.draw(ranges)
    chosen = _resolved(spec, view)
    assert chosen is None or chosen not in yanked
    for version in yanked:
        pinned = choose(str(version), view, NO_ENV, NOW)
        assert pinned.digest == view.tags[tag_of(version)]
        assert any("yanked" in w for w in pinned.warnings)


@settings(deadline=None)  # timing is not the property; CI machines are shared
@given(st.lists(versions, min_size=1, max_size=10), st.data())
def test_every_answer_is_a_full_reference_whose_digest_is_the_tags(items: list[Version],
                                                                   data: st.DataObject) -> None:
    view = _view(items)
    version = data.draw(st.sampled_from(items))
    for spec in (str(version), view.tags[tag_of(version)]):
        answer = choose(spec, view, NO_ENV, NOW)
        assert answer.reference == f"{IMAGE}:{tag_of(parse_version(answer.version))}@{answer.digest}"  # type: ignore[arg-type]
        assert answer.digest == view.tags[tag_of(version)]


def test_a_digest_prefers_the_highest_non_yanked_tag_on_it() -> None:
    same = _digest("same bytes")
    view = RegistryView(IMAGE, {"1.0.0": same, "1.0.1": same, "2.0.0": _digest("other")},
                        {"1.0.1": YankRecord("1.0.1", same, "wrong tag", "qa", NOW)})
    answer = choose(same, view, NO_ENV, NOW)
    assert answer.version == "1.0.0" and answer.rule.startswith("digest")


def _pin(version: str, digest: str) -> ChannelPin:
    return ChannelPin(version=version, digest=digest, image=IMAGE, moved_at=NOW, moved_by="rm")


def test_a_channel_returns_its_pin_even_when_newer_versions_exist() -> None:
    view = _view([Version(1, 0, 0), Version(1, 1, 0)])
    release = ReleaseView("prod", {"stable": _pin("1.0.0", view.tags["1.0.0"])}, ())
    answer = choose("@stable", view, release, NOW)
    assert answer.version == "1.0.0" and "channel stable of prod" in answer.rule
    with pytest.raises(ResolveError, match="belong to an environment"):
        choose("@stable", view, NO_ENV, NOW)  # the hint names --env
    with pytest.raises(ResolveError, match="candidate"):
        choose("candidate", view, release, NOW)


def test_an_active_version_freeze_wins_over_channels_and_matching_ranges_until_it_expires() -> None:
    view = _view([Version(1, 0, 0), Version(1, 1, 0), Version(2, 0, 0)])
    freeze = Freeze(id="f1", reason="audit", owner="qa", created_at=NOW - timedelta(hours=1),
                    expires_at=NOW + timedelta(hours=1), version="1.0.0")
    release = ReleaseView("prod", {"stable": _pin("1.1.0", view.tags["1.1.0"])}, (freeze,))
    assert choose("stable", view, release, NOW).version == "1.0.0"
    assert choose("^1", view, release, NOW).rule.startswith("freeze f1")
    outside = choose("^2", view, release, NOW)
    assert outside.version == "2.0.0" and "does not satisfy" in outside.warnings[0]
    later = NOW + timedelta(hours=2)
    assert choose("stable", view, release, later).version == "1.1.0"
    assert choose("^1", view, release, later).version == "1.1.0"


def test_nothing_matching_says_how_many_matches_are_yanked() -> None:
    view = _view([Version(1, 0, 0)], {Version(1, 0, 0)})
    with pytest.raises(ResolveError, match="1 matching version"):
        choose("^1", view, NO_ENV, NOW)
    with pytest.raises(ResolveError, match=r"no version 3\.0\.0"):
        choose("3.0.0", view, NO_ENV, NOW)
