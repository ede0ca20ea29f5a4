"""Tear-sheet figures: titled, labelled, subtitled with as-of and run id, drawing the report's numbers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest

from research.risk.report import risk_report
from research.viz import risk as vr


@pytest.fixture(scope="module")
def report():
    rng = np.random.default_rng(21)
    idx = pd.date_range("2022-01-03", periods=400, freq="B", tz="UTC")
    bench = pd.Series(rng.normal(0.0004, 0.01, len(idx)), index=idx)
    strat = 0.5 * bench + pd.Series(rng.normal(0.0001, 0.008, len(idx)), index=idx)
    return risk_report(strat, benchmark=bench, meta={"name": "demo strategy"})


def test_every_figure_is_titled_labelled_and_subtitled(report):
    figs = vr.tearsheet_figures(report, as_of="2023-08-01 16:00 UTC", run_id="run-42")
    assert set(figs) == {"equity", "drawdown", "monthly_returns", "rolling", "distribution"}
    for name, fig in figs.items():
        assert isinstance(fig, go.Figure)
        title = fig.layout.title.text
        assert title and "as of 2023-08-01 16:00 UTC" in title and "run run-42" in title, name
        assert "demo strategy" in title
        axes = [fig.layout[k] for k in fig.layout if k.startswith(("xaxis", "yaxis"))]
        labelled = [a.title.text for a in axes if a.title.text]
        assert any(k for k in fig.layout if k.startswith("xaxis") and fig.layout[k].title.text), name
        assert any(k for k in fig.layout if k.startswith("yaxis") and fig.layout[k].title.text), name
        assert labelled
        fig.to_json()  # serialisable for dashboards


def test_as_of_defaults_to_the_last_bar(report):
    fig = vr.growth_figure(report)
    assert "as of 2023-07-14" in fig.layout.title.text
    assert "run " not in fig.layout.title.text.split("<sup>")[1]


def test_figures_draw_the_reports_numbers(report):
    eq = vr.growth_figure(report)
    assert [t.name for t in eq.data] == ["strategy", "benchmark"]
    np.testing.assert_allclose(eq.data[0].y, report.equity.to_numpy())
    dd = vr.drawdown_figure(report)
    np.testing.assert_allclose(dd.data[0].y, report.drawdown.to_numpy() * 100)
    assert dd.data[1].y[0] == pytest.approx(report.summary["Max. Drawdown [%]"])
    heat = vr.monthly_returns_figure(report)
    np.testing.assert_allclose(np.asarray(heat.data[0].z, dtype=float), report.monthly.to_numpy() * 100)
    rolling = vr.rolling_figure(report)
    np.testing.assert_allclose(np.asarray(rolling.data[1].y, dtype=float), report.rolling["volatility"].to_numpy() * 100)
    dist = vr.distribution_figure(report)
    lines = {t.name.split(":")[0]: t.x[0] for t in dist.data if t.name.startswith("VaR")}
    assert len(lines) == 6
    assert lines["VaR 95% historical"] == pytest.approx(report.summary["VaR 95% (hist.) [%]"])
    assert lines["VaR 99% cornish-fisher"] == pytest.approx(report.summary["VaR 99% (C-F) [%]"])
    assert sum(dist.data[0].y) == len(report.returns)


def test_tearsheet_options_reach_every_figure(report):
    figs = vr.tearsheet_figures(report, run_id="r1")
    assert set(figs) == {"equity", "drawdown", "monthly_returns", "rolling", "distribution"}
    assert "run r1" in figs["rolling"].layout.title.text


def test_report_without_benchmark_or_dates_still_draws():
    r = pd.Series(np.random.default_rng(0).normal(0, 0.01, 50))
    figs = vr.tearsheet_figures(risk_report(r))
    assert len(figs["equity"].data) == 1
    assert figs["monthly_returns"].layout.annotations[0].text.startswith("monthly table needs")
