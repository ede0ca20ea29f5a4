"""A widget callback that fails, in a real browser: the viewer is told the view could not be updated
(never the exception's text) at the top of the screen wherever the page is scrolled, and the next
update that succeeds clears the word.

The page is the real market overview, served by the same server, from a notebook written next to
the dashboards for this test: it builds the page, then makes the price figure's builder fail (as a
bad value in the data or a bug would), so changing the price scale fails inside the kernel.
"""

from __future__ import annotations

import nbformat
import pytest

from research.viz.panels.viewer_safe import UPDATE_FAILED
from tests.browser.test_dashboards import ALL_DRAWN

pytestmark = pytest.mark.browser

SECRET = "/srv/workbench/secret-path/ledger.db"
CELLS = [
    "import research.viz.panels.market as market\nfrom research.viz.panels import market_overview",
    "shown = market_overview()\n"
    "def _broken(*args, **kwargs):\n"
    f"    raise RuntimeError('cannot draw from {SECRET}')\n"
    "market._price_figure = _broken  # the page is built: from now on only a redraw fails\n"
    "shown",
]


def _choose_other(page, control: str) -> None:
    select = page.locator(f".{control} select")
    current = select.evaluate("s => s.options[s.selectedIndex].text").strip()
    others = [o.strip() for o in select.locator("option").all_text_contents() if o.strip() != current]
    assert others, f"{control} offers one option only"
    select.select_option(label=others[-1])


def test_a_failed_update_tells_the_viewer_and_the_next_success_clears_it(served, page):
    nb = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                           "language": "python"}})
    nb.cells = [nbformat.v4.new_code_cell(src) for src in CELLS]
    path = served.home / "dashboards" / "zz-failing-update.ipynb"
    nbformat.write(nb, path)
    try:
        page.goto(f"{served.url}/voila/render/{path.name}")
        page.wait_for_function(ALL_DRAWN)
        notice = page.locator(".wb-update-failed")
        assert notice.count() == 1 and not notice.is_visible(), "a failure notice before anything failed"
        before = page.locator(".wb-prices-fig .gtitle").first.text_content()

        _choose_other(page, "wb-prices-scale")
        notice.wait_for(state="visible", timeout=30_000)
        text = notice.inner_text()
        assert text.strip() == UPDATE_FAILED, text
        assert notice.locator("[role=alert]").count() == 1
        body = page.locator("body").inner_text()
        assert SECRET not in body and "RuntimeError" not in body, "the exception reached the viewer"
        assert page.locator(".wb-prices-fig .gtitle").first.text_content() == before, "the old figure is gone"
        page.evaluate("window.scrollTo(0, document.body.scrollHeight)")
        box, height = notice.bounding_box(), page.viewport_size["height"]
        assert box and 0 <= box["y"] and box["y"] + box["height"] <= height, f"the notice is off screen: {box}"

        before_vol = page.locator(".wb-vol-fig .gtitle").first.text_content()
        _choose_other(page, "wb-vol-window")
        page.wait_for_function(
            "([sel, old]) => { const t = document.querySelector(sel); return t && t.textContent !== old; }",
            arg=[".wb-vol-fig .gtitle", before_vol], timeout=30_000)
        notice.wait_for(state="hidden", timeout=30_000)
    finally:
        path.unlink(missing_ok=True)
    assert page.blocked == []
