"""Deep links: a dashboard view's state lives in the page's query string.

Every control (a dropdown with a ``wb-<name>`` DOM class besides ``wb-control``) is a query
parameter named ``<name>`` whose value is the option's label, e.g.
``/voila/render/03-backtest-explorer.ipynb?bt-strategy=sma_cross&bt-symbol=SPX``. Opening such a
link selects those options (in the order given, so a choice that changes another control's
options comes first); changing a control rewrites the address bar, so the address can be shared
as it is. Unknown names and labels are ignored.

This runs in the browser (a script in a hidden output), only on the dashboard server: in
JupyterLab the notebook's own address is left alone.
"""

from __future__ import annotations

import ipywidgets as widgets

from research.config import get_settings

__all__ = ["DEEP_LINK_SCRIPT", "deep_link_widget"]

DEEP_LINK_SCRIPT = """<script>(function () {
if (window.wbDeepLinks) { return; }
window.wbDeepLinks = true;
var pending = [];
new URLSearchParams(window.location.search).forEach(function (value, key) {
  if (key !== "token") { pending.push([key, value]); }
});
function label(option) { return option.text.replace(/\u00a0/g, " ").trim(); }  // widgets use no-break spaces
function control(key) {
  var box = document.querySelector(".wb-control.wb-" + CSS.escape(key));
  return box ? box.querySelector("select") : null;
}
function step() {
  for (var i = 0; i < pending.length; i++) {
    var sel = control(pending[i][0]);
    if (!sel) { continue; }
    var want = pending[i][1];
    var opt = Array.prototype.find.call(sel.options, function (o) { return label(o) === want; });
    if (!opt) { continue; }
    pending.splice(i, 1);
    if (sel.value !== opt.value) {
      sel.value = opt.value;
      sel.dispatchEvent(new Event("change", {bubbles: true}));
      return;  // let the kernel update dependent controls first
    }
    i--;
  }
}
var tries = 0;
(function loop() { step(); if (pending.length && ++tries < 300) { setTimeout(loop, 50); } })();
document.addEventListener("change", function (event) {
  var sel = event.target;
  var box = sel && sel.closest ? sel.closest(".wb-control") : null;
  if (!box || sel.selectedIndex < 0) { return; }
  var key = Array.prototype.find.call(box.classList, function (c) { return c.indexOf("wb-") === 0 && c !== "wb-control"; });
  if (!key) { return; }
  var query = new URLSearchParams(window.location.search);
  query.set(key.slice(3), label(sel.options[sel.selectedIndex]));
  window.history.replaceState(null, "", "?" + query.toString());
}, true);
})();</script>"""


def deep_link_widget() -> widgets.Widget:
    """A hidden output running :data:`DEEP_LINK_SCRIPT` on the dashboard server (else an empty box)."""
    out = widgets.Output(layout=widgets.Layout(display="none"))
    out.add_class("wb-deep-links")
    if get_settings().figures == "page":
        out.outputs = ({"output_type": "display_data", "metadata": {},
                        "data": {"text/html": DEEP_LINK_SCRIPT, "text/plain": "deep links"}},)
    return out
