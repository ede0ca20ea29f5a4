"""Numbers that agree with each other, say what they count, and read as what they are."""

from __future__ import annotations

import types

import numpy as np
import pandas as pd
from hypothesis import example, given
from hypothesis import strategies as st

from research.viz.panels import DASHBOARDS
from research.viz.panels.layout import dropdown
from research.viz.panels.predictions import PROMOTION_RULE, _pva_figure, hit_rate
from research.workflow.results import latest
from tests.viz.test_panels import one, page_text, runs, title  # noqa: F401 (the runs fixture)


@given(st.lists(st.floats(-0.05, 0.05, allow_nan=False), min_size=2, max_size=40))
@example([0.01, -0.02, 0.0, 0.03])
def test_the_hit_rate_in_a_figure_title_is_the_librarys_for_a_zero_forecast(actual):
    """The naive model forecasts 0: its hit rate is the share of bars that did not go up, never 0%."""
    from research.models.evaluate import forecast_metrics

    preds = pd.DataFrame({"symbol": "S", "model": "naive", "predicted": 0.0, "actual": actual,
                          "timestamp": pd.date_range("2024-01-01", periods=len(actual), tz="UTC")})
    expected = forecast_metrics(preds["actual"], preds["predicted"])["directional_accuracy"]
    assert hit_rate(pd.DataFrame(), preds, "S", "naive") == expected
    assert expected == np.mean(np.asarray(actual) <= 0)
    run = types.SimpleNamespace(as_of="2024-02-01", finished_at=None, run_id="r")
    assert f"(direction hit rate {expected:.1%})" in _pva_figure(preds, "S", "naive", run).layout.title.text


def test_the_figure_title_and_the_champions_table_show_the_same_recorded_hit_rate(runs):  # noqa: F811
    run = latest("daily", runs_dir=runs)
    evals = run.table("model_eval")
    page = DASHBOARDS["02-predictions"](runs_dir=runs)
    symbol, model = one(page, "wb-pva-symbol"), one(page, "wb-pva-model")
    model.value = "naive"
    recorded = evals[(evals["symbol"] == symbol.value) & (evals["model"] == "naive")]["directional_accuracy"].iloc[0]
    assert f"(direction hit rate {recorded:.1%})" in title(one(page, "wb-pva-fig"))
    assert f"<td>{recorded:.1%}</td>" in one(page, "wb-champions-table").value


def test_the_model_table_states_the_promotion_criterion(runs):  # noqa: F811
    page = DASHBOARDS["02-predictions"](runs_dir=runs)
    rule = one(page, "wb-promotion-rule").value
    assert "RMSE" in rule and "naive" in rule and "out-of-sample" in rule and rule.count("promot") >= 1
    assert PROMOTION_RULE.split(" (")[0] in rule
    metric = one(page, "wb-acc-metric")
    labels = [label for label, _ in metric.options]
    assert "Directional accuracy" in labels and "Rank IC" in labels
    assert not any("_" in label for label in labels), labels
    metric.value = "directional_accuracy"
    assert "judged on RMSE only" in title(one(page, "wb-acc-fig"))


def test_a_dropdown_with_one_option_is_hidden_and_shown_again_with_two():
    box = dropdown(["only"], description="Symbol", dom_class="wb-demo")
    assert box.layout.display == "none"
    box.options = ["a", "b"]
    assert box.layout.display is None
    assert dropdown(["a", "b"], description="x", dom_class="wb-demo2").layout.display is None


def test_the_correlation_heatmap_leaves_pairs_without_shared_bars_blank():
    from research.viz.panels.market import _correlation_figure

    idx = pd.date_range("2020-01-01", periods=200, freq="D", tz="UTC")
    rng = np.random.default_rng(3)
    prices = pd.DataFrame({"A": 100 * np.cumprod(1 + rng.normal(0, 0.01, 200)),
                           "B": 100 * np.cumprod(1 + rng.normal(0, 0.01, 200))}, index=idx)
    prices.loc[idx[5:], "B"] = np.nan  # B stops after 5 bars: no correlation with A
    run = types.SimpleNamespace(as_of="2020-07-18", finished_at=None, run_id="r")
    trace = _correlation_figure(prices, "all", run).data[0]
    flat = [t for row in trace.text for t in row]
    assert "nan" not in " ".join(flat).lower() and "" in flat and "1.00" in flat


def test_paper_cards_say_what_they_count(runs):  # noqa: F811
    from research.viz.panels import paper_trading

    text = page_text(paper_trading(runs_dir=runs))
    assert "Round trips closed (entry and exit fill)" in text and "Fills (each buy and each sell)" in text
    assert ">Sessions<" not in text and "Sessions recorded" in text
    assert "# Trades" not in text
