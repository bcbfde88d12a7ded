"""Named remotes, saved in the warehouse's cmfq.json (never with secrets)."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any

from cmfq.errors import InvalidInputError, NotFoundError
from cmfq.warehouse.layout import Layout
from cmfq.warehouse.remote import Remote, check_options, open_remote

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


@dataclass(frozen=True)
class SavedRemote:
    name: str
    url: str
    options: dict[str, Any]
    default: bool
    last_push: str | None = None
    last_pull: str | None = None

    def open(self) -> Remote:
        return open_remote(self.url, self.options)


def list_remotes(layout: Layout) -> list[SavedRemote]:
    settings = layout.settings()
    default = settings.get("default_remote")
    return [SavedRemote(name, r["url"], dict(r.get("options") or {}), name == default, r.get("last_push"),
                        r.get("last_pull"))
            for name, r in sorted((settings.get("remotes") or {}).items())]


def add_remote(layout: Layout, name: str, url: str, options: dict[str, Any], *, default: bool = False) -> SavedRemote:
    if not _NAME.fullmatch(name):
        raise InvalidInputError(f"{name!r} is not a valid remote name.",
                                hint="Use letters, digits, '.', '_' or '-', starting with a letter or digit.")
    options = {k: v for k, v in options.items() if v not in (None, "", False)}
    check_options(options)
    open_remote(url, options)  # refuses credentials in the URL and unknown protocols now, not at push
    settings = layout.settings()
    remotes = settings.setdefault("remotes", {})
    if name in remotes:
        raise InvalidInputError(f"A remote named {name!r} exists already ({remotes[name]['url']}).",
                                hint=f"Remove it first with `cmfq remote remove {name}`.")
    remotes[name] = {"url": url, "options": options}
    if default or not settings.get("default_remote"):
        settings["default_remote"] = name
    layout.save_settings(settings)
    return next(r for r in list_remotes(layout) if r.name == name)


def remove_remote(layout: Layout, name: str) -> None:
    settings = layout.settings()
    remotes = settings.get("remotes") or {}
    if name not in remotes:
        raise _unknown(layout, name)
    del remotes[name]
    if settings.get("default_remote") == name:
        settings["default_remote"] = next(iter(sorted(remotes)), None)
    layout.save_settings(settings)


def get_remote(layout: Layout, name: str | None) -> SavedRemote:
    """The remote called ``name``, or the default one."""
    remotes = list_remotes(layout)
    if name is None:
        for r in remotes:
            if r.default:
                return r
        raise InvalidInputError("No remote is configured.",
                                hint="Add one: `cmfq remote add origin s3://bucket/prefix` (or a folder path).")
    for r in remotes:
        if r.name == name:
            return r
    raise _unknown(layout, name)


def record_sync(layout: Layout, name: str, what: str) -> None:
    """Remember when this warehouse last pushed to or pulled from a remote."""
    settings = layout.settings()
    remote = (settings.get("remotes") or {}).get(name)
    if remote is not None:
        remote[f"last_{what}"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        layout.save_settings(settings)


def _unknown(layout: Layout, name: str) -> NotFoundError:
    known = [r.name for r in list_remotes(layout)]
    return NotFoundError("remote", name, hint=f"Known remotes: {', '.join(known)}." if known
                         else "Add one with `cmfq remote add NAME URL`.")
