"""The plugin loader: installed names, did-you-mean, and a plugin that fails to import."""

from __future__ import annotations

from pathlib import Path

import pytest

from delivery import plugins
from delivery.plugins import PluginError
from tests.support.plugin_dist import add_fake_plugin


def test_names_lists_the_builtin_gates() -> None:
    assert {"health", "success-rate", "runtime", "equivalence"} <= set(plugins.names("rollout.gates"))


def test_a_missing_plugin_lists_what_is_installed_and_suggests_the_closest() -> None:
    with pytest.raises(PluginError) as caught:
        plugins.load("rollout.gates", "succes-rate")
    message = caught.value.render()
    assert "no rollout.gates plugin named 'succes-rate'" in message
    assert "equivalence, health, runtime, success-rate" in message
    assert "Did you mean 'success-rate'?" in message


def test_an_empty_group_says_none_is_installed() -> None:
    with pytest.raises(PluginError, match=r"installed: none"):
        plugins.load("delivery.nothing-here", "x")


def test_a_plugin_that_fails_to_import_names_its_distribution_and_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    add_fake_plugin(tmp_path, monkeypatch, module="brokenplugin_mod", source="import no_such_module_anywhere\n",
                    entry_points={"rollout.gates": {"broken": "brokenplugin_mod:Gate"}}, distribution="brokenplugin")
    with pytest.raises(PluginError) as caught:
        plugins.load("rollout.gates", "broken")
    message = caught.value.render()
    assert "rollout.gates plugin 'broken' from brokenplugin 0.1 failed to load" in message
    assert "ModuleNotFoundError" in message and "no_such_module_anywhere" in message
    assert "Traceback" not in message


def test_an_entry_point_that_is_not_callable_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    add_fake_plugin(tmp_path, monkeypatch, module="constplugin_mod", source="VALUE = 3\n",
                    entry_points={"rollout.gates": {"const": "constplugin_mod:VALUE"}}, distribution="constplugin")
    with pytest.raises(PluginError, match="not a class or function"):
        plugins.factory("rollout.gates", "const")

