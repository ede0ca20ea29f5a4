"""Panels shown after the page's first figure: a page is interactive as soon as its top is.

On the dashboard server a page's kernel has already built every panel before the viewer arrives
(pre-started kernels), but the browser still has to receive every widget's state and draw every
figure before the first one shows. :func:`deferred` keeps a panel's heavy state (figure specs in
output widgets, table markup in HTML widgets) in the kernel and shows a short "loading" line in
its place; the page's first drawn figure sets a hidden widget (:func:`ready_widget`), and the
kernel then sends the held state, so those panels are drawn after the first figure.

Elsewhere (JupyterLab, tests without a browser) a panel is shown as built.
"""

from __future__ import annotations

import html
import logging
from collections.abc import Callable

import ipywidgets as widgets

__all__ = ["deferred", "ready_widget", "release_all", "READY_CLASS", "PENDING_CLASS", "READY_SCRIPT", "has_figure", "on_page"]

log = logging.getLogger(__name__)

READY_CLASS = "wb-first-figure-drawn"
PENDING_CLASS = "wb-deferred-pending"

#: Run by the page after its first figure is drawn: tells the kernel to send the deferred panels.
READY_SCRIPT = """(function () {
  if (window.wbReadySent) return;
  var tries = 0;
  (function send() {
    var box = document.querySelector(".READY_CLASS input");
    if (!box) { if (++tries < 600) setTimeout(send, 50); return; }
    window.wbReadySent = true;
    box.value = "drawn";
    box.dispatchEvent(new Event("input", {bubbles: true}));
    box.dispatchEvent(new Event("change", {bubbles: true}));
  })();
})();""".replace("READY_CLASS", READY_CLASS)

_HELD: list[Callable[[], None]] = []
_READY: list[widgets.Text] = []


def on_page() -> bool:
    """Whether figures are drawn by the page (the dashboard server), where panels can wait."""
    from research.config import get_settings

    return get_settings().figures == "page"


def release_all() -> None:
    """Send every held panel's state now (the first figure is drawn, or nothing to wait for)."""
    while _HELD:
        restore = _HELD.pop(0)
        try:
            restore()
        except Exception:  # one panel's failure leaves the others to show
            log.exception("a deferred panel could not be shown")


def ready_widget() -> widgets.Text:
    """The hidden widget the page's first drawn figure sets (one per kernel: one page per viewer)."""
    if not _READY:
        box = widgets.Text(value="", layout=widgets.Layout(display="none"))
        box.add_class(READY_CLASS)
        box.observe(lambda change: release_all() if change["new"] else None, names="value")
        _READY.append(box)
    return _READY[0]


def _hold(widget: widgets.Widget, held: list[tuple[widgets.Widget, str, object]]) -> None:
    """Take the heavy state out of ``widget`` and its descendants into ``held``."""
    if isinstance(widget, widgets.Output) and widget.outputs:
        held.append((widget, "outputs", widget.outputs))
        widget.outputs = ()
    elif isinstance(widget, widgets.HTML) and len(widget.value) > 200:
        held.append((widget, "value", widget.value))
        widget.value = ""
    for child in getattr(widget, "children", ()):
        _hold(child, held)


def has_figure(widget: widgets.Widget) -> bool:
    """Whether ``widget`` or a descendant is a figure (an output with DOM class ``wb-figure``)."""
    if "wb-figure" in getattr(widget, "_dom_classes", ()):
        return True
    return any(has_figure(child) for child in getattr(widget, "children", ()))


def deferred(name: str, build: Callable[[], widgets.Widget]) -> widgets.Widget:
    """``build()``'s panel; on the dashboard server, its heavy state is sent after the first figure.

    The panel is built at once (in a pre-started kernel, before any viewer), so only the transfer
    and drawing wait. Its box carries :data:`PENDING_CLASS` until then.
    """
    panel = build()
    if not on_page():
        return panel
    held: list[tuple[widgets.Widget, str, object]] = []
    _hold(panel, held)
    if not held:
        return panel
    waiting = widgets.HTML(f'<div class="wb-note">Loading {html.escape(name.lower())}…</div>')
    box = widgets.VBox([waiting, panel])
    box.add_class(PENDING_CLASS)
    panel.layout.display = "none"

    def restore() -> None:
        for widget, trait, value in held:
            if getattr(widget, trait) in ((), ""):  # a callback (a deep link, say) may have redrawn it since
                setattr(widget, trait, value)
        panel.layout.display = None
        box.children = (panel,)
        box.remove_class(PENDING_CLASS)

    _HELD.append(restore)
    ready_widget()
    return box
