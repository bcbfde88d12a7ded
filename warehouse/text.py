"""User-given names made safe to print: names are stored verbatim, but a terminal, a tree
or a DOT/Mermaid line must not be restyled, rewritten or split by what a name contains."""

from __future__ import annotations

import re

# ESC sequences, bell, backspace, carriage return, C1 controls and bidi overrides.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_CONTROL_OR_NEWLINE = re.compile(r"[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def printable(text: str, *, newlines: bool = True) -> str:
    r"""``text`` with control characters shown as escapes (``\x1b``, ``\r``; ``\n`` too when
    ``newlines`` is false, for one-line renderings such as a lineage tree)."""
    pattern = _CONTROL if newlines else _CONTROL_OR_NEWLINE
    return pattern.sub(lambda m: m.group().encode("unicode_escape").decode(), text)
