"""The app's only way to the data: cached calls of the cmfq.Warehouse API.

The queries of a page share one open warehouse, closed after a few idle seconds, so a
long-running app never keeps the index from loggers and the CLI. Results are cached for a
minute (or until "Refresh" is pressed).
"""

from __future__ import annotations

import atexit
import os
import threading
from typing import Any

import streamlit as st

from cmfq.config import ENV_UI_REMOTE as ENV_REMOTE
from cmfq.config import ENV_UI_REMOTE_OPTIONS as ENV_REMOTE_OPTIONS
from cmfq.errors import CmfqError


def target() -> str:
    """What the app shows: a remote read in place, or the warehouse folder."""
    from cmfq.config import warehouse_path

    return os.environ.get(ENV_REMOTE) or str(warehouse_path())


@st.cache_data(ttl=60, show_spinner=False)
def call(warehouse_target: str, method: str, *args: Any, _epoch: int = 0, **kwargs: Any) -> Any:
    """``Warehouse(warehouse_target).<method>(*args, **kwargs)``, cached per warehouse and arguments."""
    with _LOCK:  # one DuckDB connection, used by one session thread at a time
        return getattr(_open(warehouse_target), method)(*args, **kwargs)


_LOCK = threading.RLock()
_HELD: dict[str, Any] = {}  # target -> open Warehouse
_CLOSERS: dict[str, threading.Timer] = {}
HOLD_S = 5.0  # a page's queries share one open warehouse; it closes after this long unused


def _open(where: str) -> Any:
    """The open warehouse for ``where`` (opened on demand, closed when idle): one page
    render opens it once, and an idle app never keeps the index from loggers and the CLI."""
    wh = _HELD.get(where)
    if wh is None:
        import json

        from cmfq.warehouse.query import Warehouse

        remote = os.environ.get(ENV_REMOTE)
        if remote:
            from cmfq.warehouse.remote import open_remote

            wh = Warehouse(open_remote(remote, json.loads(os.environ.get(ENV_REMOTE_OPTIONS) or "{}")))
        else:
            wh = Warehouse(where)
        _HELD[where] = wh
    if where in _CLOSERS:
        _CLOSERS[where].cancel()
    timer = threading.Timer(HOLD_S, _close, args=(where,))
    timer.daemon = True
    _CLOSERS[where] = timer
    timer.start()
    return wh


def _close(where: str) -> None:
    with _LOCK:
        wh = _HELD.pop(where, None)
        _CLOSERS.pop(where, None)
        if wh is not None:
            wh.close()


def _prewarm() -> None:
    """Import the charting stack (altair: about half a second) in the background while the
    first page renders, so that the first page with a chart does not pay for it."""
    import cmfq.app.charts  # noqa: F401


threading.Thread(target=_prewarm, name="cmfq-prewarm", daemon=True).start()


@atexit.register
def _close_all() -> None:
    """Close what is still open at exit: a DuckDB database torn down by the interpreter's
    finalization (while a timer thread may still hold it) can abort the process."""
    for where, timer in list(_CLOSERS.items()):
        timer.cancel()
        _close(where)


def get(method: str, *args: Any, **kwargs: Any) -> Any:
    """Like :func:`call`, but a cmfq error becomes a message on the page and stops it."""
    try:
        return call(target(), method, *args, _epoch=st.session_state.get("cmfq_epoch", 0), **kwargs)
    except CmfqError as exc:
        st.error(str(exc), icon="⚠️")
        st.stop()


def refresh() -> None:
    """Forget every cached answer (new runs were logged or pulled) and reopen the warehouse."""
    st.session_state["cmfq_epoch"] = st.session_state.get("cmfq_epoch", 0) + 1
    call.clear()
    _close(target())


def sidebar() -> None:
    """The warehouse shown, problems found while opening it, and a refresh button."""
    with st.sidebar:
        st.caption(f"Warehouse: `{target()}`")
        if st.button("Refresh", help="Reload: pick up runs logged or pulled since the page opened"):
            refresh()
        problems = get("problems_list")
        if problems:
            st.warning(f"{len(problems)} partition(s) skipped; run `cmfq verify`:\n\n" +
                       "\n".join(f"- {p}" for p in problems[:5]))
