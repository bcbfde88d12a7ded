"""SQL views, macros and index maintenance, kept as ``.sql`` files and loaded by name.

Files are package data read through :mod:`importlib.resources`, so they work from a
checkout, an editable install and a wheel alike. Templates use ``{{name}}`` placeholders
that are only ever filled with identifiers from :mod:`cmfq.warehouse.schema`, never with
user input (values are bound as parameters).
"""

from __future__ import annotations

import re
from functools import cache
from importlib import resources


@cache
def read(name: str) -> str:
    """The text of ``sql/<name>.sql``."""
    return resources.files(__name__).joinpath(f"{name}.sql").read_text("utf-8")


def statements(name: str, **fill: str) -> list[str]:
    """The statements of ``sql/<name>.sql``, placeholders filled, comments kept."""
    text = read(name)
    for key, value in fill.items():
        text = text.replace("{{" + key + "}}", value)
    left = re.findall(r"\{\{(\w+)\}\}", text)
    if left:
        raise KeyError(f"sql/{name}.sql: no value for {sorted(set(left))}")
    return [s.strip() for s in _split(text) if _has_code(s)]


def _split(text: str) -> list[str]:
    # Statements end with ';' at the end of a line; the files never put ';' elsewhere so.
    return re.split(r";[ \t]*(?:\n|$)", text)


def _has_code(stmt: str) -> bool:
    return any(line.strip() and not line.strip().startswith("--") for line in stmt.splitlines())
