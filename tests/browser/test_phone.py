"""Every dashboard on a phone (390 px wide): figures as wide as the screen allows, titles wrapped
inside their figure, cards and controls stacked, nothing wider than the screen.

Screenshots go to ``tests/browser/screenshots/phone-<page>.png`` (git-ignored); the backtest
explorer's sweep, its main feature, also to ``docs/screenshots/phone-backtest-explorer.png`` when
that copy is missing or ``WORKBENCH_UPDATE_SCREENSHOTS=1``.
"""

from __future__ import annotations

import os

import pytest

from research.viz.panels import DASHBOARDS
from tests.browser.test_dashboards import ALL_DRAWN, DOCS_SCREENSHOTS, SCREENSHOTS

pytestmark = pytest.mark.browser

PHONE = {"viewport": {"width": 390, "height": 844}, "device_scale_factor": 1, "is_mobile": True, "has_touch": True}
#: Page padding of the template on each side: a figure may be this much narrower than the screen.
PADDING = 24

MEASURE = """() => {
  const vw = document.documentElement.clientWidth;
  const box = e => { const r = e.getBoundingClientRect(); return {left: r.left, right: r.right, width: r.width}; };
  const visible = e => e.offsetParent !== null && getComputedStyle(e).display !== 'none';
  return {
    vw,
    scroll: document.documentElement.scrollWidth,
    figures: [...document.querySelectorAll('.wb-figure')].filter(visible).map(f => {
      const plot = f.querySelector('.js-plotly-plot'), title = f.querySelector('.gtitle');
      return {name: [...f.classList].find(c => c.startsWith('wb-') && c !== 'wb-figure'),
              plot: plot ? box(plot) : null, title: title && title.textContent ? box(title) : null};
    }),
    cards: [...document.querySelectorAll('.wb-card')].filter(visible).map(box),
    content: box(document.querySelector('.wb-page')),
    controls: [...document.querySelectorAll('.wb-control')].filter(visible).map(box),
    overflow: [...document.querySelectorAll('.wb-page *')].filter(e => e.getBoundingClientRect().right > vw + 1
      && !e.closest('.wb-table-scroll') && !e.closest('.wb-table') && visible(e)).length,
  };
}"""


def _save_docs_copy(shot, name: str) -> None:
    from PIL import Image

    docs = DOCS_SCREENSHOTS / f"{name}.png"
    if docs.exists() and os.environ.get("WORKBENCH_UPDATE_SCREENSHOTS") != "1":
        return
    DOCS_SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with Image.open(shot) as img:
        small = img.convert("RGB").quantize(colors=64, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
        small.save(docs, optimize=True)


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_every_figure_fits_a_phone_with_its_title_wrapped_and_cards_stacked(served, browser, name):
    context = browser.new_context(**PHONE)
    page = context.new_page()
    page.set_default_timeout(120_000)
    try:
        page.goto(f"{served.url}/voila/render/{name}.ipynb")
        page.wait_for_function(ALL_DRAWN)
        page.wait_for_timeout(300)  # plotly's responsive relayout
        m = page.evaluate(MEASURE)
        vw = m["vw"]
        assert vw == 390 and m["scroll"] <= vw, f"{name}: the page scrolls sideways ({m['scroll']} px)"
        assert m["overflow"] == 0, f"{name}: {m['overflow']} elements reach past the screen"
        assert m["figures"], f"{name}: no figure"
        for fig in m["figures"]:
            plot = fig["plot"]
            assert plot and plot["width"] >= vw - 2 * PADDING - 1 and plot["right"] <= vw + 0.5, (name, fig)
            if fig["title"]:
                assert fig["title"]["left"] >= plot["left"] - 0.5 and fig["title"]["right"] <= plot["right"] + 0.5, \
                    f"{name}: the title of {fig['name']} is cut ({fig['title']} in {plot})"
        for card in m["cards"]:  # stacked: one card per row
            assert card["width"] >= m["content"]["width"] * 0.8 and card["right"] <= vw + 0.5, (name, card)
        for control in m["controls"]:
            assert control["right"] <= vw + 0.5, (name, control)

        SCREENSHOTS.mkdir(exist_ok=True)
        first = ".wb-sweep-fig" if name == "03-backtest-explorer" else ".wb-figure"
        page.locator(first).first.scroll_into_view_if_needed()
        shot = SCREENSHOTS / f"phone-{name}.png"
        page.screenshot(path=str(shot))
        if name == "03-backtest-explorer":
            _save_docs_copy(shot, "phone-backtest-explorer")
    finally:
        context.close()
