"""No internal detail reaches a viewer, MLflow links only to a public URL, failed updates are told."""

from __future__ import annotations

import ipywidgets as widgets
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from research.viz.panels import DASHBOARDS
from research.viz.panels import market as market_module
from research.viz.panels.viewer_safe import (
    UPDATE_FAILED,
    callback_notice,
    mlflow_link,
    on_change,
    redact,
)
from research.workflow.results import latest
from tests.viz.test_panels import by_class, one, page_text, runs  # noqa: F401 (the runs fixture)

SEGMENT = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789_-.", min_size=1, max_size=12).filter(
    lambda s: s.strip(".") != "")


@given(st.lists(SEGMENT, min_size=2, max_size=6), st.sampled_from(["", "sqlite:///", "file://", "postgresql://u:p@db.internal/"]),
       st.sampled_from(["error at {}", "{}: no such file", "cannot open '{}' (retry)", "[{}]"]))
@example(["home", "ana", "data", "ledger.db"], "sqlite:///", "cannot open '{}' (retry)")
@example(["srv", "wb", "runs"], "", "{}: no such file")
def test_redact_removes_every_absolute_path_and_url(segments, scheme, template):
    location = scheme + "/" + "/".join(segments)
    shown = redact(template.format(location))
    assert "/" + "/".join(segments) not in shown
    assert scheme.rstrip("/") == "" or scheme.split("://")[0] + "://" not in shown
    assert ("<path>" in shown) or ("<url>" in shown)


def test_redact_keeps_ordinary_text():
    text = "ValueError: window must be positive (got -3); SPX/ETH ratio 1.5 and 12/31"
    assert redact(text) == text
    assert redact("mail ana@research.example.com") == "mail <user@host>"


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_no_page_shows_a_path_a_url_or_the_ledger(runs, name, monkeypatch):  # noqa: F811
    monkeypatch.delenv("WORKBENCH_PUBLIC_TRACKING_URL", raising=False)
    import os

    page = DASHBOARDS[name](runs_dir=runs)
    text = page_text(page)
    home = str(runs.parent)
    assert home not in text, "a server path reached the page"
    assert "sqlite:" not in text and "ledger.db" not in text and os.environ["WORKBENCH_LEDGER_URL"] not in text
    assert "127.0.0.1:5000" not in text and "wb-mlflow" not in text, "an MLflow link with no public tracking URL"


def test_mlflow_links_point_at_the_public_tracking_url_only(runs, monkeypatch):  # noqa: F811
    monkeypatch.setenv("WORKBENCH_PUBLIC_TRACKING_URL", "https://mlflow.research.example/")
    run = latest("daily", runs_dir=runs)
    page = DASHBOARDS["01-market-overview"](runs_dir=runs)
    (header,) = by_class(page, "wb-header-box")
    assert f'href="https://mlflow.research.example/#/runs/{run.record["mlflow_run_id"]}"' in header.value
    assert mlflow_link("") == ""
    monkeypatch.delenv("WORKBENCH_PUBLIC_TRACKING_URL")
    assert mlflow_link("abc") == ""


def test_the_empty_states_name_no_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("WORKBENCH_LEDGER_URL", f"sqlite:///{tmp_path / 'empty-ledger.db'}")
    for name, build in DASHBOARDS.items():
        text = page_text(build(runs_dir=tmp_path / "daily"))
        assert str(tmp_path) not in text and "sqlite" not in text, name


def test_a_failed_callback_tells_the_viewer_and_the_next_success_clears_it():
    box = widgets.Dropdown(options=["a", "b", "c"], value="a")
    notice = callback_notice()

    def handler(change):
        if change["new"] == "b":
            raise RuntimeError("/srv/secret/path exploded")

    on_change(box, handler)
    box.value = "b"
    assert notice.layout.display != "none" and UPDATE_FAILED in notice.value
    assert "/srv/secret" not in notice.value and "exploded" not in notice.value
    box.value = "c"
    assert notice.layout.display == "none" and notice.value == ""


def test_a_failing_figure_update_on_a_page_shows_the_notice(runs, monkeypatch):  # noqa: F811
    page = DASHBOARDS["01-market-overview"](runs_dir=runs)
    notice = one(page, "wb-update-failed")
    assert notice.layout.display == "none"

    def broken(*args, **kwargs):
        raise KeyError("close")

    monkeypatch.setattr(market_module, "_price_figure", broken)
    scale = one(page, "wb-prices-scale")
    scale.value = next(v for v in scale.options if v != scale.value)
    assert notice.layout.display != "none" and "could not be updated" in notice.value
