"""The one loader for every plugin group (entry points): `load(group, name)` and `names(group)`."""

from __future__ import annotations

import difflib
from collections.abc import Callable
from importlib.metadata import EntryPoint, entry_points

from delivery.errors import DeliveryError


class PluginError(DeliveryError):
    """A plugin is not installed, or its package failed to import."""


def names(group: str) -> list[str]:
    """The names installed under `group`, sorted."""
    return sorted({ep.name for ep in entry_points(group=group)})


def load(group: str, name: str) -> object:
    """The object the entry point `name` of `group` refers to (usually a class or factory)."""
    entry = _find(group, name)
    try:
        return entry.load()
    except Exception as e:  # a plugin's import can fail in any way; the user needs which package and why
        raise PluginError(
            f"{group} plugin {name!r} from {_distribution(entry)} failed to load: {type(e).__name__}: {e}",
            hint=f"Reinstall or fix that package, or choose another {group} plugin ({', '.join(names(group))}).",
        ) from e


def factory(group: str, name: str) -> Callable[..., object]:
    """`load`, refusing an entry point that is not callable (a class or factory function)."""
    target = load(group, name)
    if not callable(target):
        raise PluginError(f"{group} plugin {name!r} refers to {target!r}, which is not a class or function",
                          hint="The entry point must name a class or a factory (module:Name).")
    return target


def _find(group: str, name: str) -> EntryPoint:
    for entry in entry_points(group=group):
        if entry.name == name:
            return entry
    installed = names(group)
    close = difflib.get_close_matches(name, installed, n=1)
    suggestion = f" Did you mean {close[0]!r}?" if close else ""
    listing = ", ".join(installed) if installed else "none"
    raise PluginError(
        f"no {group} plugin named {name!r} (installed: {listing}).{suggestion}",
        hint=f"Install the package that provides it (a {group!r} entry point), or use one of the installed names.",
    )


def _distribution(entry: EntryPoint) -> str:
    dist = entry.dist
    return f"{dist.name} {dist.version}" if dist is not None else f"module {entry.module}"
