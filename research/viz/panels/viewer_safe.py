"""What a dashboard viewer may see: no internal detail, and a word when a view fails.

* :func:`redact` replaces file paths, URLs (database, tracking, any ``scheme://``), ``user@host``
  and the server's own host and user names in a text shown to viewers (error messages, run
  records) with neutral placeholders.
* :func:`public_tracking_url` is the MLflow UI address viewers can open, only when one is
  configured (``Settings.public_tracking_url``, ``WORKBENCH_PUBLIC_TRACKING_URL``); pages link to
  MLflow runs only then.
* :func:`on_change` registers a widget callback that, when it fails, logs the details and tells
  the viewer that the view could not be updated (:func:`callback_notice`), instead of failing
  silently.
"""

from __future__ import annotations

import getpass
import html
import logging
import re
import socket
from collections.abc import Callable
from functools import lru_cache
from typing import Any

import ipywidgets as widgets

from research.config import get_settings

__all__ = ["redact", "public_tracking_url", "mlflow_link", "on_change", "callback_notice", "UPDATE_FAILED"]

log = logging.getLogger(__name__)

UPDATE_FAILED = "This view could not be updated; the figures shown are from before the change. Reload the page to try again."

_URL = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s'\"<>)\]]*")
_USER_AT_HOST = re.compile(r"\b[\w.-]+@[\w-]+(?:\.[\w-]+)+\b")
#: An absolute POSIX path of two segments or more, a ``~`` path, or a Windows drive path.
_PATH = re.compile(r"(?<![\w/.:])(?:~|[A-Za-z]:)?(?:[/\\][\w.@+-]+){2,}[/\\]?")


@lru_cache(maxsize=1)
def _machine_names() -> tuple[str, ...]:
    names = set()
    for get in (socket.gethostname, socket.getfqdn, getpass.getuser):
        try:
            name = get()
        except Exception:  # no user database entry in a container
            continue
        if name and len(name) >= 3 and name not in {"localhost", "root"}:
            names.add(name)
    return tuple(sorted(names, key=len, reverse=True))


def redact(text: object) -> str:
    """``text`` with URLs, file paths, ``user@host`` and this machine's host and user names replaced.

    >>> redact("no such table: sqlite:////home/ana/data/ledger.db (see /srv/wb/runs/x/run.json)")
    'no such table: <url> (see <path>)'
    """
    out = _URL.sub("<url>", str(text))
    out = _USER_AT_HOST.sub("<user@host>", out)
    out = _PATH.sub("<path>", out)
    for name in _machine_names():
        out = re.sub(rf"\b{re.escape(name)}\b", "<host>", out)
    return out


def public_tracking_url() -> str | None:
    """The MLflow UI address viewers can reach (``None`` unless configured)."""
    url = getattr(get_settings(), "public_tracking_url", None)
    return str(url).rstrip("/") if url else None


def mlflow_link(run_id: str, *, label: str = "MLflow run", dom_class: str = "wb-mlflow") -> str:
    """An HTML link to MLflow run ``run_id`` on the public tracking URL, or ``""`` when none is set."""
    base = public_tracking_url()
    if not base or not run_id:
        return ""
    href = html.escape(f"{base}/#/runs/{run_id}", quote=True)
    return f'<a class="{dom_class}" href="{href}" target="_blank" rel="noopener noreferrer">{html.escape(label)}</a>'


_NOTICE: list[widgets.HTML] = []
_CALLS = {"depth": 0, "failed": False}


def callback_notice() -> widgets.HTML:
    """The page's notice for failed updates (one per kernel: one page per viewer kernel).

    Hidden until a callback registered with :func:`on_change` fails; cleared by the next update
    that succeeds.
    """
    if not _NOTICE:
        box = widgets.HTML("", layout=widgets.Layout(display="none"))
        box.add_class("wb-update-failed")
        _NOTICE.append(box)
    return _NOTICE[0]


def _show_notice(message: str | None) -> None:
    box = callback_notice()
    if message is None:
        if box.layout.display != "none":
            box.value, box.layout.display = "", "none"
        return
    box.value = f'<div class="wb-panel-error" role="alert">{html.escape(message)}</div>'
    box.layout.display = None


def on_change(widget: widgets.Widget, handler: Callable[[dict], Any], *, names: str = "value") -> None:
    """``widget.observe(handler, names=names)``, telling the viewer when ``handler`` fails.

    The exception is logged with its traceback (for the operator); the viewer sees
    :data:`UPDATE_FAILED` in :func:`callback_notice`, never the exception's text.
    """

    def safe(change: dict) -> None:
        outermost = _CALLS["depth"] == 0
        if outermost:
            _CALLS["failed"] = False
        _CALLS["depth"] += 1
        try:
            handler(change)
        except Exception:
            log.exception("updating the view after a change of %s failed",
                          getattr(widget, "description", "") or type(widget).__name__)
            _CALLS["failed"] = True
        finally:
            _CALLS["depth"] -= 1
        if outermost:  # one verdict per viewer action (a callback may change other controls)
            _show_notice(UPDATE_FAILED if _CALLS["failed"] else None)

    widget.observe(safe, names=names)
