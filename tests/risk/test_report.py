"""Risk report: composition of the metrics, monthly table, rolling metrics, overfitting, layering."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import research.risk as risk_pkg
from research.risk import metrics as m
from research.risk.report import RiskReport, monthly_returns, risk_report, rolling_metrics


@pytest.fixture(scope="module")
def daily() -> tuple[pd.Series, pd.Series]:
    rng = np.random.default_rng(5)
    idx = pd.date_range("2021-01-01", periods=600, freq="B", tz="UTC")
    bench = pd.Series(rng.normal(0.0003, 0.01, len(idx)), index=idx)
    strat = 0.8 * bench + pd.Series(rng.normal(0.0002, 0.005, len(idx)), index=idx)
    return strat, bench


def test_report_composes_the_metrics(daily):
    r, b = daily
    rep = risk_report(r, benchmark=b, meta={"name": "demo"})
    assert isinstance(rep, RiskReport)
    pd.testing.assert_series_equal(rep.summary, m.summary(r, benchmark=b))
    pd.testing.assert_series_equal(rep.drawdown, m.drawdown_series(r))
    assert rep.equity.iloc[-1] == pytest.approx(1 + m.total_return(r))
    assert rep.benchmark_equity.iloc[-1] == pytest.approx(1 + m.total_return(b))
    assert rep.var.loc["historical", "VaR 95%"] == pytest.approx(m.value_at_risk(r))
    assert rep.var.loc["cornish_fisher", "CVaR 99%"] == pytest.approx(
        m.conditional_value_at_risk(r, level=0.99, method="cornish_fisher"))
    assert rep.rolling_window == 126 and rep.meta == {"name": "demo"}
    assert risk_report(r, periods_per_year=365).rolling_window == 182


def test_monthly_returns_by_hand():
    idx = pd.to_datetime(["2024-01-02", "2024-01-03", "2024-02-01", "2024-03-05", "2024-03-06"])
    r = pd.Series([0.10, -0.05, 0.02, 0.01, 0.01], index=idx)
    t = monthly_returns(r)
    assert t.loc[2024, 1] == pytest.approx(1.10 * 0.95 - 1)
    assert t.loc[2024, 2] == pytest.approx(0.02)
    assert t.loc[2024, 3] == pytest.approx(1.01**2 - 1)
    assert t.shape == (1, 12) and np.isnan(t.loc[2024, 4])
    assert monthly_returns(r.reset_index(drop=True)) is None


def test_rolling_metrics_by_hand(daily):
    r, _ = daily
    roll = rolling_metrics(r, window=20, periods_per_year=252)
    assert roll.iloc[:19].isna().all().all()
    window = r.iloc[30:50]
    assert roll["volatility"].iloc[49] == pytest.approx(window.std() * np.sqrt(252))
    assert roll["sharpe"].iloc[49] == pytest.approx(window.mean() / window.std() * np.sqrt(252))


def test_report_with_sweep_trials_reports_dsr_and_pbo():
    rng = np.random.default_rng(11)
    idx = pd.date_range("2020-01-01", periods=800, freq="B")
    trials = pd.DataFrame(rng.normal(0, 0.01, (800, 30)), index=idx)
    best = trials[(trials.mean() / trials.std()).idxmax()]
    rep = risk_report(best, trial_returns=trials, n_splits=8)
    assert rep.summary["# Trials"] == 30
    assert 0 <= rep.summary["Deflated Sharpe Ratio"] < 0.95
    assert rep.summary["PBO [%]"] == pytest.approx(rep.pbo.pbo * 100)
    assert rep.pbo.n_combinations == 70
    assert "nan_reasons" in rep.summary.attrs


def test_a_report_holds_numbers_and_no_drawing_hook(daily):
    import research.risk.report as report_mod

    rep = risk_report(daily[0])
    assert not hasattr(rep, "figures") and not hasattr(report_mod, "register_figure_builder")


def test_bad_input_is_refused():
    with pytest.raises(TypeError, match="pandas Series of per-bar decimal returns"):
        risk_report(pd.DataFrame({"a": [0.1, 0.2], "b": [0.0, 0.1]}))


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_layering_metrics_is_a_leaf_and_risk_never_imports_viz():
    root = Path(risk_pkg.__file__).parent
    assert not {n for n in _imports(root / "metrics.py") if n.startswith("research") and not n.startswith("research.risk.activity")}
    assert not {n for n in _imports(root / "activity.py") if n.startswith("research")}
    assert not {n for n in _imports(root / "overfitting.py") if n.startswith("research")}
    for path in root.glob("*.py"):
        bad = {n for n in _imports(path) if n.startswith(("research.viz", "research.cli", "research.tracking", "research.workflow"))}
        assert not bad, f"{path.name} imports {bad}"
