"""What the pages tell a viewer, in a real browser: headline figures labelled with their subject and
benchmark and identical wherever they appear, the model table's promotion criterion, and no
internal detail (paths, database URLs, user names, links to a tracking server nobody configured)."""

from __future__ import annotations

import re

import pytest

from research.viz.panels import DASHBOARDS
from tests.browser.test_dashboards import ALL_DRAWN

pytestmark = pytest.mark.browser

#: the pages that open on the headline row
HEADLINED = ("01-market-overview", "02-predictions", "03-backtest-explorer", "04-portfolio-risk")


def _open(page, served, name: str) -> None:
    page.goto(f"{served.url}/voila/render/{name}.ipynb")
    page.wait_for_function(ALL_DRAWN)


def test_headline_figures_name_their_subject_and_benchmark_and_agree_across_pages(served, page):
    rows = {}
    for name in HEADLINED:
        _open(page, served, name)
        cards = page.locator(".wb-headline .wb-card")
        assert cards.count() > 0, f"{name}: no headline figures"
        rows[name] = [c.inner_text() for c in cards.all()]
        subject = page.locator(".wb-headline-subject").inner_text()
        assert re.search(r"\d{4}-\d{2}-\d{2} to \d{4}-\d{2}-\d{2}", subject), f"{name}: no period in {subject!r}"
        benches = page.locator(".wb-headline .wb-card-bench").all_inner_texts()
        assert benches and all("benchmark" in b for b in benches), f"{name}: a book figure without its benchmark"
        labels = page.locator(".wb-headline .wb-card-bench + .wb-card-label").all_inner_texts()
        assert labels and all(" to " in label for label in labels), f"{name}: a book figure without its period"
    first = rows[HEADLINED[0]]
    assert all(r == first for r in rows.values()), "the headline figures differ between pages"
    assert page.blocked == []


def test_the_model_table_states_the_promotion_criterion(served, page):
    from research.viz.panels.predictions import PROMOTION_RULE

    _open(page, served, "02-predictions")
    text = page.inner_text("body")
    assert PROMOTION_RULE.split("(")[0].strip() in text and "RMSE" in text


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_no_internal_detail_reaches_a_page(served, page, name):
    _open(page, served, name)
    markup, text = page.content(), page.inner_text("body")
    for secret in (str(served.home), "sqlite:", "ledger.db", "postgresql:", "/root/", "/home/", "/tmp/"):
        assert secret not in markup, f"{name}: {secret!r} reached the page"
    assert served.canary not in markup
    # no public tracking URL is configured: no MLflow link (one to the server's own tracking
    # address would be dead behind a proxy and show an internal host)
    assert page.locator("a[href*='#/runs/']").count() == 0, f"{name}: an MLflow link without a public tracking URL"
    assert "127.0.0.1:5000" not in markup and "localhost:5000" not in markup
    assert "Traceback" not in text
