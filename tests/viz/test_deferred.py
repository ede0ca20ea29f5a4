"""Panels after the first figure wait for it on the dashboard server, and lose nothing."""

from __future__ import annotations

import ipywidgets as widgets
import pytest

from research.viz.panels import DASHBOARDS, deferred
from research.viz.panels.layout import show_figure
from tests.viz.test_panels import by_class, one, runs, walk  # noqa: F401 (the runs fixture)


@pytest.fixture
def on_server(monkeypatch):
    monkeypatch.setenv("WORKBENCH_FIGURES", "page")
    deferred._HELD.clear()
    deferred._READY.clear()  # one page per kernel on the server; here several pages share a process
    yield
    deferred.release_all()


def _state(page: widgets.Widget) -> list:
    return [w.outputs if isinstance(w, widgets.Output) else w.value for w in walk(page)
            if isinstance(w, (widgets.Output, widgets.HTML))]


@pytest.mark.parametrize("name", ["01-market-overview", "03-backtest-explorer", "04-portfolio-risk", "02-predictions"])
def test_panels_after_the_first_figure_wait_for_it_and_come_back_whole(runs, on_server, name, monkeypatch):  # noqa: F811
    page = DASHBOARDS[name](runs_dir=runs)
    pending = by_class(page, deferred.PENDING_CLASS)
    assert pending, "nothing deferred"
    drawn = [w for w in walk(page) if "wb-figure" in w._dom_classes and w.outputs]
    assert drawn, "the first figure is sent at once"
    assert not any(deferred.has_figure(p) and any(o.outputs for o in walk(p) if isinstance(o, widgets.Output))
                   for p in pending), "a deferred panel sent its figures"
    ready = one(page, deferred.READY_CLASS)
    ready.value = "drawn"  # what the page's first drawn figure does
    assert by_class(page, deferred.PENDING_CLASS) == []
    monkeypatch.delenv("WORKBENCH_FIGURES")
    deferred._HELD.clear()
    again = DASHBOARDS[name](runs_dir=runs)  # the same page built without deferral
    assert len(_state(page)) >= len(_state(again))
    assert all(o.outputs for o in walk(page) if "wb-figure" in getattr(o, "_dom_classes", ()))


def test_a_panel_redrawn_before_release_keeps_its_new_state(on_server):
    out = widgets.Output()
    out.add_class("wb-figure")
    show_figure(out, {"data": [], "layout": {"title": {"text": "old"}}})
    panel = deferred.deferred("Demo", lambda: widgets.VBox([out]))
    assert out.outputs == ()
    show_figure(out, {"data": [], "layout": {"title": {"text": "new"}}})  # a deep link's callback, say
    deferred.release_all()
    assert "new" in str(out.outputs) and "old" not in str(out.outputs)
    assert deferred.PENDING_CLASS not in panel._dom_classes


def test_off_the_server_a_panel_is_shown_as_built(monkeypatch):
    monkeypatch.delenv("WORKBENCH_FIGURES", raising=False)
    html = widgets.HTML("x" * 500)
    assert deferred.deferred("Demo", lambda: html) is html and html.value == "x" * 500
