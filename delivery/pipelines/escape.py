"""Escaping by construction: Groovy literals from one filter, XML text from one finalizer."""

from __future__ import annotations

import unicodedata

from jinja2 import TemplateError
from markupsafe import Markup

REPLACEMENT = "\ufffd"
# Characters Groovy (or a reader of the file) could treat as line ends, BOMs or escapes: replaced, never emitted.
_UNSAFE_CATEGORIES = frozenset({"Cc", "Cs", "Co", "Cn", "Cf", "Zl", "Zp"})
_GROOVY_ESCAPES = {"\\": "\\\\", "'": "\\'", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\b": "\\b", "\f": "\\f"}
_XML_ESCAPES = {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&apos;", "\r": "&#13;"}


class GroovyLiteral(str):
    """A complete single-quoted Groovy string literal (no interpolation), made only by `groovy_literal`."""

    __slots__ = ()


def groovy_text(value: object) -> str:
    """The text a Groovy literal of `value` evaluates to: unsafe code points become U+FFFD."""
    return "".join(
        c if c in _GROOVY_ESCAPES or unicodedata.category(c) not in _UNSAFE_CATEGORIES else REPLACEMENT
        for c in str(value)
    )


def groovy_literal(value: object) -> GroovyLiteral:
    """`value` as a single-quoted Groovy literal: `$` stays inert, quotes and backslashes are escaped."""
    # Groovy decodes \\uXXXX before lexing; an even number of backslashes in front of `u` keeps it literal.
    body = "".join(_GROOVY_ESCAPES.get(c, c) for c in groovy_text(value))
    return GroovyLiteral(f"'{body}'")


def groovy_finalize(value: object) -> object:
    """Refuse to print anything into Groovy that did not pass the `groovy` filter (ints excepted)."""
    if isinstance(value, GroovyLiteral) or (isinstance(value, int) and not isinstance(value, bool)):
        return value
    raise TemplateError(f"unescaped value in a Groovy template: {type(value).__name__}; use `| groovy`")


def xml_text(value: object) -> str:
    """The text an XML 1.0 parser reads back for `value`: characters XML cannot carry become U+FFFD."""
    return "".join(c if _xml_allowed(c) else REPLACEMENT for c in str(value))


def xml_finalize(value: object) -> Markup:
    """Escape every printed value as XML text, including `\\r` (which parsers would fold into `\\n`)."""
    return Markup("".join(_XML_ESCAPES.get(c, c) for c in xml_text(value)))  # noqa: S704 - escaped just here


def _xml_allowed(c: str) -> bool:
    code = ord(c)
    if code < 0x20:
        return c in "\t\n\r"
    return code <= 0xD7FF or 0xE000 <= code <= 0xFFFD or code >= 0x10000
