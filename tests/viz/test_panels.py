"""Dashboard pages and panels, built from a recorded run without a browser."""

from __future__ import annotations

import importlib.util
import io
import json
import os
import shutil
import socket
import types
from pathlib import Path

import ipywidgets as widgets
import numpy as np
import pandas as pd
import pytest

from research.viz.panels import DASHBOARDS, backtest_explorer, market_overview, pipeline_health
from research.viz.panels.explorer import canonical_params, params_label
from research.viz.panels.health import failed_stages, read_runs, runs_frame
from research.viz.panels.layout import BUNDLED_TRACES, PLOTLY_MIME, data_source, mlflow_run_url
from research.viz.panels.market import freshness_table, trailing_returns
from research.viz.panels.portfolio import drawdown_episodes, flatten_risk, headline, var_table
from research.workflow.results import latest

ROOT = Path(__file__).resolve().parents[2]


def _fixture_module():
    spec = importlib.util.spec_from_file_location("wb_run_fixture", ROOT / "tests" / "browser" / "run_fixture.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    """A published fixture run, and a ledger whose paper account is replayed up to its as-of date."""
    root = tmp_path_factory.mktemp("runs")
    run = _fixture_module().write_fixture_run(root)
    spec = importlib.util.spec_from_file_location("wb_paper_fixture", ROOT / "tests" / "browser" / "paper_fixture.py")
    paper = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(paper)
    url = f"sqlite:///{root / 'ledger.db'}"
    paper.write_fixture_account(url, as_of=str(run.as_of))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("WORKBENCH_LEDGER_URL", url)
        yield root / "daily"


def walk(widget: widgets.Widget) -> list[widgets.Widget]:
    found = [widget]
    for child in getattr(widget, "children", ()):
        found += walk(child)
    return found


def by_class(widget: widgets.Widget, dom_class: str) -> list[widgets.Widget]:
    return [w for w in walk(widget) if dom_class in getattr(w, "_dom_classes", ())]


def one(widget: widgets.Widget, dom_class: str) -> widgets.Widget:
    hits = by_class(widget, dom_class)
    assert len(hits) == 1, f"expected one widget with class {dom_class!r}, found {len(hits)}"
    return hits[0]


def figure_spec(out: widgets.Output) -> dict:
    (bundle,) = out.outputs
    return bundle["data"][PLOTLY_MIME]


def title(out: widgets.Output) -> str:
    return figure_spec(out)["layout"]["title"]["text"]


def copy_without(runs: Path, tmp_path: Path, *outputs: str) -> Path:
    """A copy of the fixture runs whose published run lacks the named outputs."""
    copy = tmp_path / "daily"
    shutil.copytree(runs, copy)
    run_dir = copy / latest("daily", runs_dir=runs).run_id
    for name in outputs:
        (run_dir / "outputs" / f"{name}.parquet").unlink()
    pointer = json.loads((copy / "published.json").read_text())
    (copy / "published.json").write_text(json.dumps({**pointer, "path": str(run_dir)}))
    return copy


def page_text(widget: widgets.Widget) -> str:
    parts = []
    for w in walk(widget):
        if isinstance(w, widgets.HTML):
            parts.append(w.value)
        if isinstance(w, widgets.Output):
            parts.append(json.dumps(w.outputs))
    return "\n".join(parts)


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_every_page_renders_every_panel_with_its_provenance(runs, name):
    page = DASHBOARDS[name](runs_dir=runs)
    run = latest("daily", runs_dir=runs)
    assert by_class(page, "wb-panel-error-box") == []
    text = page_text(page)
    assert f'class="wb-run-id">{run.run_id}<' in text
    assert f'class="wb-as-of">{run.as_of}<' in text
    assert "wb-synthetic" in text and 'class="wb-source">synthetic<' in text
    figures = by_class(page, "wb-figure")
    assert figures, "every page draws at least one figure"
    for out in figures:
        spec = figure_spec(out)
        assert spec["data"], f"empty figure {spec['layout'].get('title')}"
        notes = [a["text"] for a in spec["layout"].get("annotations", [])]
        if name != "05-pipeline-health":
            assert any(run.run_id in n and str(run.as_of) in n for n in notes), "figure lacks as-of and run id"
        assert "text/html" not in out.outputs[0]["data"], "figures must not carry HTML that loads plotly.js"
        drawn = {trace.get("type", "scatter") for trace in spec["data"]}
        assert drawn <= set(BUNDLED_TRACES), f"{sorted(drawn - set(BUNDLED_TRACES))} missing from the plotly bundle"


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_every_page_says_what_to_run_when_nothing_is_published(tmp_path, name, monkeypatch):
    monkeypatch.setenv("WORKBENCH_LEDGER_URL", f"sqlite:///{tmp_path / 'empty-ledger.db'}")  # no paper account either
    page = DASHBOARDS[name](runs_dir=tmp_path / "daily")
    (empty,) = by_class(page, "wb-empty-box")
    assert "make run" in empty.value and "No results yet" in empty.value
    assert by_class(page, "wb-figure") == []


def test_notebooks_are_thin_stripped_and_call_one_page_function():
    notebooks = sorted((ROOT / "dashboards").glob("*.ipynb"))
    assert [p.stem for p in notebooks] == sorted(DASHBOARDS)
    for path in notebooks:
        nb = json.loads(path.read_text(encoding="utf-8"))
        cells = [c for c in nb["cells"] if c["cell_type"] == "code"]
        assert all(c["outputs"] == [] and c["execution_count"] is None for c in cells), path.name
        source = ["".join(c["source"]) for c in cells]
        assert sum(len(s.splitlines()) for s in source) <= 4, f"{path.name} should be a few lines"
        func = DASHBOARDS[path.stem].__name__
        assert source[-1].strip() == f"{func}()", f"{path.name}: the last cell must be the single call {func}()"


def test_notebook_code_runs_against_a_published_run(runs, monkeypatch):
    monkeypatch.setenv("WORKBENCH_RUNS_DIR", str(runs.parent))
    for path in sorted((ROOT / "dashboards").glob("*.ipynb")):
        nb = json.loads(path.read_text(encoding="utf-8"))
        *setup, last = ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code"]
        scope: dict = {}
        for code in setup:
            exec(code, scope)
        page = eval(last, scope)
        assert "wb-page" in page._dom_classes and not by_class(page, "wb-panel-error-box"), path.name


def test_widget_changes_redraw_the_figure(runs):
    page = market_overview(runs_dir=runs)
    scale, fig = one(page, "wb-prices-scale"), one(page, "wb-prices-fig")
    assert "rebased to 100" in title(fig)
    scale.value = "log price"
    assert "log price" in title(fig) and figure_spec(fig)["layout"]["yaxis"]["type"] == "log"

    page = backtest_explorer(runs_dir=runs)
    params, equity = one(page, "wb-bt-params"), one(page, "wb-bt-equity-fig")
    trades = one(page, "wb-bt-trades-table")
    before = (title(equity), trades.value)
    params.value = params.options[1][1]
    assert title(equity) != before[0] and "slow=100" in title(equity)
    assert trades.value != before[1]
    strategy = one(page, "wb-bt-strategy")
    strategy.value = "buy_and_hold"
    assert "buy_and_hold" in title(equity) and one(page, "wb-bt-params").value == "{}"


def test_explorer_shows_the_recorded_curve_of_each_parameter_set(runs):
    run = latest("daily", runs_dir=runs)
    page = backtest_explorer(run)
    params, equity = one(page, "wb-bt-params"), one(page, "wb-bt-equity-fig")
    symbol = one(page, "wb-bt-symbol").value
    curves = run.table("equity")
    for _, value in params.options:
        params.value = value
        y = figure_spec(equity)["data"][0]["y"]
        recorded = curves[f"sma_cross|{symbol}|{value}"].dropna()
        assert len(_decode(y)) == len(recorded)
        np.testing.assert_allclose(_decode(y), recorded.to_numpy())


def _decode(values) -> np.ndarray:
    """Plotly's JSON may carry arrays as base64 typed arrays ({'dtype', 'bdata'[, 'shape']})."""
    if isinstance(values, dict):
        import base64

        arr = np.frombuffer(base64.b64decode(values["bdata"]), dtype=np.dtype(values["dtype"]))
        shape = values.get("shape")
        if isinstance(shape, str):
            shape = tuple(int(v) for v in shape.split(","))
        return arr.reshape(shape) if shape else arr
    return np.asarray(values, dtype=float)


def test_a_missing_output_shows_a_message_not_a_traceback(runs, tmp_path):
    page = backtest_explorer(runs_dir=copy_without(runs, tmp_path, "sweep", "trades"))
    (error,) = by_class(page, "wb-panel-error-box")
    assert "not available" in error.value and "&#x27;sweep&#x27;" in error.value and "Traceback" not in error.value
    assert "recorded no trades table" in one(page, "wb-bt-trades-table").value
    assert by_class(page, "wb-bt-equity-fig")


def test_health_lists_failed_stages_without_their_source(runs):
    records = read_runs("daily", runs_dir=runs)
    frame = runs_frame(records)
    assert list(frame["status"]) == ["COMPLETED", "FAILED"]
    assert frame.loc[1, "stopped at"] == "models"
    failed = failed_stages(records)
    assert list(failed["stage"]) == ["models"]
    assert failed.loc[0, "notebook"].endswith("notebooks/03-models.ipynb")
    assert "ValueError: training data contains NaN" in failed.loc[0, "error"]
    page = pipeline_health(runs_dir=runs)
    text = page_text(page)
    assert "model.fit(x, y)" not in text, "a failing cell's source must not reach the page"
    flt, fig = one(page, "wb-runs-filter"), one(page, "wb-runs-fig")
    flt.value = "not completed"
    assert "did not complete" in title(fig)
    assert "COMPLETED" not in one(page, "wb-runs-table").value


def test_health_without_a_published_run_still_shows_failures(runs, tmp_path):
    copy = tmp_path / "daily"
    shutil.copytree(runs, copy)
    (copy / "published.json").unlink()
    shutil.rmtree(copy / latest("daily", runs_dir=runs).run_id)
    (bad := copy / "broken-run").mkdir()
    (bad / "run.json").write_text("{not json")
    page = pipeline_health(runs_dir=copy)
    assert "No run has been published yet" in page_text(page)
    assert by_class(page, "wb-failures-table") and not by_class(page, "wb-signals")


def test_trailing_returns_by_calendar_window():
    idx = pd.date_range("2024-01-01", periods=10, freq="D", tz="UTC")
    prices = pd.DataFrame({"A": np.arange(100.0, 110.0)}, index=idx)
    row = trailing_returns(prices).iloc[0]
    assert row["1 day [%]"] == pytest.approx((109 / 108 - 1) * 100)
    assert row["1 week [%]"] == pytest.approx((109 / 102 - 1) * 100)
    assert row["all [%]"] == pytest.approx(9.0)
    assert np.isnan(row["1 month [%]"])


def test_var_table_reads_flat_and_sectioned_risk_documents():
    doc = {"VaR 95% (hist.) [%]": -1.5, "CVaR 95% (hist.) [%]": -2.5, "Sharpe Ratio": 0.7,
           "by_symbol": {"SPX": {"VaR 99% (Gauss.) [%]": -3.0}}}
    table = var_table(doc)
    assert table[["section", "method", "level"]].to_dict("records") == [
        {"section": "by_symbol / SPX", "method": "gaussian", "level": "99%"},
        {"section": "portfolio", "method": "historical", "level": "95%"},
    ]
    assert table["VaR"].tolist() == [-3.0, -1.5]
    assert pd.isna(table.loc[0, "CVaR"]) and table.loc[1, "CVaR"] == -2.5
    assert flatten_risk(doc)["by_symbol / SPX / VaR 99% (Gauss.) [%]"] == -3.0


def test_var_table_prefers_percent_keys_and_converts_decimal_tables():
    doc = {"strategy": "ma_crossover",
           "summary": {"VaR 95% (hist.) [%]": -1.5, "Max. Drawdown [%]": -20.0, "Sharpe Ratio": 0.4},
           "var": {"historical": {"VaR 95%": -0.0149, "CVaR 95%": -0.025},
                   "cornish_fisher": {"VaR 99%": -0.031, "CVaR 99%": None}},
           "nan_reasons": {"VaR 99% (C-F) [%]": "undefined skew/kurtosis"},
           "per_symbol": {"SPX": {"Sharpe Ratio": 0.2}}}
    table = var_table(doc).set_index(["method", "level"])
    assert set(table["section"]) == {"portfolio"}
    assert table.loc[("historical", "95%"), "VaR"] == -1.5  # the percent key wins over the decimal one
    assert table.loc[("historical", "95%"), "CVaR"] == pytest.approx(-2.5)
    assert table.loc[("cornish-fisher", "99%"), "VaR"] == pytest.approx(-3.1)
    assert pd.isna(table.loc[("cornish-fisher", "99%"), "CVaR"])
    assert headline(doc) == {"Max. Drawdown [%]": -20.0, "Sharpe Ratio": 0.4}


def test_drawdown_episodes_by_hand():
    idx = pd.date_range("2024-01-01", periods=7, freq="D", tz="UTC")
    equity = pd.Series([100, 90, 95, 100, 80, 85, 88], index=idx, dtype=float)
    ep = drawdown_episodes(equity)
    assert ep.to_dict("records") == [
        {"peak": "2024-01-04", "trough": "2024-01-05", "recovered": "", "depth [%]": pytest.approx(-20.0)},
        {"peak": "2024-01-01", "trough": "2024-01-02", "recovered": "2024-01-04", "depth [%]": pytest.approx(-10.0)},
    ]


def test_params_spellings_and_links():
    assert canonical_params('{"slow": 50, "fast": 10}') == canonical_params({"fast": 10, "slow": 50})
    assert canonical_params(None) == canonical_params("") == "{}"
    assert params_label('{"fast": 10, "slow": 50}') == "fast=10, slow=50"
    assert mlflow_run_url("abc", ui_url="http://mlflow.example:5000/") == "http://mlflow.example:5000/#/runs/abc"
    assert mlflow_run_url("abc") is None  # no public tracking URL configured: no link


def test_data_source_falls_back_to_the_run_parameters(runs, tmp_path):
    copy = tmp_path / "daily"
    shutil.copytree(runs, copy)
    run = latest("daily", runs_dir=copy)
    run = type(run)(pipeline=run.pipeline, run_id=run.run_id, path=copy / run.run_id, record=run.record)
    (run.path / "outputs" / "data_report.parquet").unlink()
    assert data_source(run) == ("synthetic", True)


def test_predictions_compare_only_evaluated_rows_and_show_todays_forecast(runs):
    from research.viz.panels.predictions import champions_table_html, out_of_sample

    run = latest("daily", runs_dir=runs)
    preds = run.table("predictions")
    oos = out_of_sample(preds)
    assert (oos["kind"] == "walk_forward").all() and oos["actual"].notna().all()
    assert len(oos) == (preds["kind"] == "walk_forward").sum()
    evals = run.table("model_eval")
    markup = champions_table_html(evals, preds)
    champ = evals[evals["champion"]].iloc[0]
    forecast = preds[(preds["kind"] == "forecast") & (preds["symbol"] == champ["symbol"])
                     & (preds["model"] == champ["model"])]["predicted"].iloc[0]
    assert f"{forecast:+.3%}" in markup and "/#/runs/" not in markup  # no public tracking URL: no link


def test_portfolio_defaults_to_the_equal_weight_book_of_the_risk_strategy(runs):
    from research.viz.panels.portfolio import portfolio_curves

    run = latest("daily", runs_dir=runs)
    curves, default = portfolio_curves(run)
    assert default == "book|sma_cross (equal weight)"
    equity = run.table("equity")
    members = [c for c in equity.columns if c.startswith("sma_cross|") and c.count("|") == 1]
    expected = equity[members].pct_change(fill_method=None).mean(axis=1).dropna()
    np.testing.assert_allclose(curves[default].pct_change().dropna().to_numpy(), expected.iloc[1:].to_numpy())


# ---------------------------------------------------------------- paper trading and the alert outbox
def test_paper_page_shows_the_replayed_account_against_its_backtest(runs):
    from research.viz.panels import paper_trading

    page = paper_trading(runs_dir=runs)
    run = latest("daily", runs_dir=runs)
    text = page_text(page)
    assert f'class="wb-as-of">{run.as_of}<' in text and 'class="wb-account">demo<' in text
    accounts = one(page, "wb-paper-accounts-table").value
    assert "demo" in accounts and "ma_crossover" in accounts and "SYN0001, SYN0002" in accounts
    fig = one(page, "wb-paper-equity-fig")
    names = [t["name"] for t in figure_spec(fig)["data"]]
    assert names == ["backtest (same strategy and period)", "paper account"]
    assert "paper equity against its backtest" in title(fig) and "tracking error" in title(fig)
    one(page, "wb-paper-view").value = "paper minus backtest"
    assert "paper minus backtest" in title(fig)
    recon = one(page, "wb-paper-recon-summary").value
    assert "Correlation of returns" in recon and "Tracking error (ann.)" in recon and "returns_correlation" not in recon
    assert "<th>Cause</th>" in one(page, "wb-paper-recon-table").value
    assert "<td>buy</td>" in one(page, "wb-paper-fills-table").value
    assert "cash" in one(page, "wb-paper-positions-table").value
    assert "Return [%]" in one(page, "wb-paper-cards").value
    outbox = one(page, "wb-outbox-table").value
    assert "paper_drift" in outbox and "unrouted" in outbox
    about = one(page, "wb-paper-alerts-table").value
    assert "drifted from its backtest" in about and "SYN0001 is 21% below its high" in about


def test_health_page_shows_the_outbox_with_failed_deliveries_but_no_secret(runs, monkeypatch):
    from research.alerts import dispatch
    from research.alerts.channels import AlertsConfig, WebhookChannel

    secret = "health-canary-secret-77"
    monkeypatch.setenv("WORKBENCH_WEBHOOK_SECRET", secret)
    url = os.environ["WORKBENCH_LEDGER_URL"]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    channel = WebhookChannel("ops", url=f"http://127.0.0.1:{port}/hook?token=tok-health", secret_env="WORKBENCH_WEBHOOK_SECRET",
                             retries=0, timeout=5, kinds=frozenset({"paper_drift"}))
    report = dispatch.deliver(AlertsConfig({"ops": channel}), url=url, sleep=lambda s: None)
    assert report.channels["ops"].failed == 1
    page = pipeline_health(runs_dir=runs)
    cards = one(page, "wb-outbox-cards").value
    assert ">1</div><div class=\"wb-card-label\">pending deliveries" in cards
    table = one(page, "wb-outbox-table").value
    assert "ops: pending" in table and "unreachable" in table
    text = page_text(page)
    assert secret not in text and "tok-health" not in text


def test_health_page_names_a_misconfigured_channel(runs, monkeypatch, tmp_path):
    from research.alerts import dispatch, outbox
    from research.alerts.channels import AlertsConfig, WebhookChannel

    monkeypatch.setenv("WORKBENCH_WEBHOOK_SECRET", "health-config-secret")
    url = f"sqlite:///{tmp_path / 'ledger.db'}"  # a ledger of its own: the page's other tests count deliveries
    monkeypatch.setenv("WORKBENCH_LEDGER_URL", url)
    outbox.enqueue([{"subject": "SPX", "kind": "drawdown", "severity": "critical", "message": "SPX 21% below its high",
                     "as_of": "2018-12-31"}], url=url)
    channel = WebhookChannel("pager", url="http://wb-no-such-host.invalid/hook", secret_env="WORKBENCH_WEBHOOK_SECRET",
                             retries=3, timeout=5)
    report = dispatch.deliver(AlertsConfig({"pager": channel}), url=url, sleep=lambda s: None)
    assert report.channels["pager"].misconfigured >= 1
    page = pipeline_health(runs_dir=runs)
    problem = one(page, "wb-outbox-problem").value
    assert "Configuration error on channel pager" in problem and "unknown host" in problem
    assert "workbench alerts retry --channel pager" in problem
    assert ">1</div><div class=\"wb-card-label\">misconfigured channels" in one(page, "wb-outbox-cards").value


def test_paper_page_shows_a_message_when_an_account_cannot_be_read(runs, monkeypatch):
    from research.viz.panels import paper

    def broken(name, **kw):
        raise OSError(f"prices of {name} unreadable")

    monkeypatch.setattr(paper, "load_account", broken)
    page = paper.paper_trading(runs_dir=runs)
    (error,) = by_class(page, "wb-panel-error-box")
    assert "Account demo: could not be shown (OSError: prices of demo unreadable)" in error.value
    assert "Traceback" not in page_text(page) and by_class(page, "wb-outbox")


def test_returns_end_at_the_as_of_date_and_stale_symbols_are_marked():
    idx = pd.date_range("2016-01-04", "2018-12-31", freq="B", tz="UTC")
    prices = pd.DataFrame({"SPX": np.linspace(100.0, 130.0, len(idx)), "OLD": np.linspace(50.0, 60.0, len(idx))},
                          index=idx)
    prices.loc[prices.index > "2017-11-10", "OLD"] = np.nan
    table = trailing_returns(prices, as_of="2018-12-31").set_index("symbol")
    assert bool(table.loc["OLD", "stale"]) and np.isnan(table.loc["OLD", "1 month [%]"])
    assert not table.loc["SPX", "stale"] and table.loc["SPX", "1 month [%]"] > 0
    report = pd.DataFrame({"symbol": ["SPX", "OLD"], "last": ["2018-12-31", "2017-11-10"], "stale": [False, False]})
    fresh = freshness_table(report, as_of="2018-12-31").set_index("symbol")
    assert fresh.loc["OLD", "stale"] and not fresh.loc["SPX", "stale"]
    assert fresh.loc["SPX", "sessions behind"] == 0 and fresh.loc["OLD", "sessions behind"] > 200


def test_no_champion_says_how_many_versions_are_registered():
    from research.viz.panels.predictions import champions_table_html

    evals = pd.DataFrame({"symbol": ["SPX"] * 2, "model": ["lstm", "naive"], "champion": [False, False],
                          "version": ["4", None], "reason": ["no registered model yet", None],
                          "directional_accuracy": [0.5, 0.52], "rmse": [0.01, 0.009]})
    markup = champions_table_html(evals)
    assert "no champion yet: 4 versions registered" in markup
    assert "no registered model yet" not in markup


@pytest.mark.parametrize("name", ["01-market-overview", "02-predictions", "03-backtest-explorer", "04-portfolio-risk"])
def test_each_page_opens_with_its_headline_figures(runs, name):
    page = DASHBOARDS[name](runs_dir=runs)
    (row,) = by_class(page, "wb-headline")
    assert page.children.index(row) == 2, "the headline row comes right after the header"
    run = latest("daily", runs_dir=runs)
    subject = run.document("risk")["headline"]["subject"]
    period = f"{subject['start']} to {subject['end']}"
    for label in ("total return", "Sharpe ratio", "max drawdown"):  # each names its book and period
        assert f'<div class="wb-card-label">{label} · sma_cross book · {period}</div>' in row.value, label
    for label in ("last signals", "data"):
        assert f'<div class="wb-card-label">{label}</div>' in row.value, label
    assert row.value.count('class="wb-card-bench">benchmark ') == 4
    assert "equal-weight buy and hold of the same symbols" in row.value


def test_headline_figures_come_from_the_recorded_document_with_the_benchmark_over_the_same_bars(runs):
    from research.risk import metrics
    from research.viz.panels.headline import headline_figures

    run = latest("daily", runs_dir=runs)
    head = run.document("risk")["headline"]
    prices = run.table("prices")
    start, end = pd.Timestamp(head["subject"]["start"], tz="UTC"), pd.Timestamp(head["subject"]["end"], tz="UTC")
    bench = metrics.equal_weight_returns(prices).loc[start:end].dropna()
    expected = metrics.total_return(bench) * 100
    assert head["benchmark"]["Total Return [%]"] == pytest.approx(expected)
    figures = {label.split(" · ")[0]: (value, label) for label, value, _ in headline_figures(run)}
    value, label = figures["total return"]
    assert value == f"{head['book']['Total Return [%]']:+.1f}%"
    assert label.endswith(f"(benchmark {expected:+.1f}%)")


def test_headline_names_stale_symbols(runs, tmp_path):
    import shutil

    from research.viz.panels.headline import headline_figures

    run = latest("daily", runs_dir=runs)
    sig = run.table("signals").assign(stale=False)
    sig.loc[sig["symbol"] == sig["symbol"].iloc[0], "stale"] = True
    copy = tmp_path / "daily"
    shutil.copytree(runs, copy)
    copied = latest("daily", runs_dir=copy)
    from research.workflow.results import write_output

    write_output(copied.outputs_dir, "signals", sig)
    figures = {label: value for label, value, _ in headline_figures(latest("daily", runs_dir=copy))}
    assert figures["data"].startswith("stale: ") and str(sig["symbol"].iloc[0]) in figures["data"]


def test_prices_of_different_ages_start_together_and_each_keeps_its_own_range():
    from research.viz.panels.market import PRICE_SCALES, _price_figure

    idx = pd.date_range("2010-01-01", "2018-12-31", freq="B", tz="UTC")
    prices = pd.DataFrame({"OLD": np.linspace(1.0, 1000.0, len(idx)), "NEW": np.linspace(50.0, 60.0, len(idx)),
                           "GONE": np.linspace(5.0, 6.0, len(idx))}, index=idx)
    prices.loc[prices.index < "2015-01-01", "NEW"] = np.nan
    prices.loc[prices.index > "2012-12-31", "GONE"] = np.nan
    run = types.SimpleNamespace(as_of="2018-12-31", finished_at=None, run_id="r")
    fig = _price_figure(prices, PRICE_SCALES[0], run)
    traces = {t.name: t for t in fig.data}
    assert set(traces) == {"OLD", "NEW"} and "no data since then: GONE" in fig.layout.title.text
    assert traces["OLD"].y[0] == pytest.approx(100.0) and traces["NEW"].y[0] == pytest.approx(100.0)
    fig = _price_figure(prices, PRICE_SCALES[1], run)
    assert fig.layout.yaxis.type == "log" and len(fig.data) == 3


def test_tables_offer_all_their_rows_as_csv():
    import base64
    import re

    from research.viz.panels.layout import table_html

    frame = pd.DataFrame({"symbol": [f"S{i}" for i in range(50)], "value": np.arange(50.0)})
    box = table_html(frame, dom_class="wb-demo-table", max_rows=10)
    found = re.search(r'download="demo-table.csv" href="data:text/csv;base64,([^"]+)"', box.value)
    assert found and "showing 10 of 50 rows" in box.value
    back = pd.read_csv(io.StringIO(base64.b64decode(found.group(1)).decode()))
    pd.testing.assert_frame_equal(back, frame)


def test_the_provenance_line_links_to_the_mlflow_run(runs, monkeypatch):
    monkeypatch.setenv("WORKBENCH_PUBLIC_TRACKING_URL", "https://mlflow.example")
    run = latest("daily", runs_dir=runs)
    page = DASHBOARDS["01-market-overview"](runs_dir=runs)
    (header,) = by_class(page, "wb-header-box")
    assert f'href="{mlflow_run_url(run.record["mlflow_run_id"])}"' in header.value and "MLflow run</a>" in header.value


def test_the_explorer_risk_summary_is_grouped_with_units_and_hides_empty_metrics_once():
    from research.viz.panels.explorer import _risk_csv, _risk_frame

    stats = pd.Series({"Sharpe Ratio": 0.81234, "Total Return [%]": 12.3456, "# Trades": 14.0, "Alpha": np.nan,
                       "Beta": np.nan, "Max. Drawdown [%]": -40.4667, "VaR 95% (Gauss.) [%]": -1.2})
    frame = _risk_frame(stats)
    shown = dict(zip(frame["metric"], frame["value"], strict=True))
    assert list(shown)[:2] == ["Total return", "Sharpe ratio"]
    assert shown["Total return"] == "12.35%" and shown["Sharpe ratio"] == "0.81" and shown["Trades"] == "14"
    assert shown["Max. drawdown"] == "-40.47%"
    assert list(frame["group"]) == ["Returns", "", "Drawdown", "Trading", ""]  # each group named once
    assert "Alpha" not in shown and shown["1 more"].startswith("not available")  # Beta; Alpha is not curated
    csv = _risk_csv(stats)  # the download keeps every metric, raw
    assert set(csv["metric"]) == set(stats.index) and -1.2 in csv["value"].tolist()


# ---------------------------------------------------------------- tables written for a reader
def _table_part(box: widgets.HTML) -> str:
    """A table's HTML without its CSV download link (which holds the raw values)."""
    return box.value.split('<a class="wb-download"')[0]


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_no_table_shows_scientific_notation_raw_booleans_or_iso_timestamps(runs, name):
    import re

    page = DASHBOARDS[name](runs_dir=runs)
    tables = [w for w in walk(page) if "wb-table" in getattr(w, "_dom_classes", ())]
    assert tables, name
    for box in tables:
        shown = _table_part(box)
        cells = [re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<t[dh](?: [^>]*)?>(.*?)</t[dh]>", shown)]
        for cell in cells:  # python writes scientific notation as 2.411e+04
            assert not re.search(r"(?<![\w.])[+-]?\d+(\.\d+)?[eE][+-]\d+\b", cell), (box._dom_classes, cell)
            assert cell not in {"True", "False", "nan", "NaN", "NaT", "None"}, (box._dom_classes, cell)
            assert not re.search(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}|:\d{2}\.\d{6}", cell), (box._dom_classes, cell)
        assert not re.search(r"<th(?: [^>]*)?>[a-z]+_[a-z_]+</th>", shown), (box._dom_classes, shown[:300])


def test_portfolio_risk_summary_is_a_short_grouped_table_with_the_full_document_in_its_csv(runs):
    import base64
    import re

    from research.viz.panels import portfolio_risk
    from research.viz.panels.portfolio import risk_summary

    run = latest("daily", runs_dir=runs)
    doc = run.document("risk")
    shown, raw = risk_summary(doc)
    assert len(shown) <= 30 and set(shown["group"]) - {""} <= {"Portfolio", "Returns", "Risk", "Drawdown",
                                                              "Benchmark", "Trading"}
    assert not shown["metric"].str.contains(" / |_").any(), "no internal keys on the page"
    assert not shown["value"].str.contains(r"T\d\d:").any(), "dates as dates"
    pct = [v for m, v in zip(shown["metric"], shown["value"], strict=True) if "drawdown" in m.lower() and "bars" not in m]
    assert pct and all(v.endswith("%") for v in pct), pct
    assert set(raw["key"]) == set(flatten_risk(doc))
    box = one(portfolio_risk(runs_dir=runs), "wb-risk-summary-table")
    assert "as_of" not in _table_part(box) and "summary / " not in _table_part(box)
    found = re.search(r'href="data:text/csv;base64,([^"]+)"', box.value)
    back = pd.read_csv(io.StringIO(base64.b64decode(found.group(1)).decode()))
    assert list(back.columns) == ["key", "value"] and set(back["key"]) == set(flatten_risk(doc))


def test_risk_values_read_fractions_as_percent_and_the_period_as_dates():
    from research.viz.panels.portfolio import risk_summary

    doc = {"as_of": "2018-12-31", "strategy": "ma_crossover", "periods_per_year": 252.0,
           "start": "1986-03-14T00:00:00+00:00", "end": "2018-12-31T00:00:00+00:00",
           "summary": {"# Periods": 8267.0, "Sharpe Ratio": 0.6030194, "VaR 95% (hist.) [%]": -0.95,
                       "# Trades": None},
           "drawdown": {"max": -0.4046665, "current": -0.0295834},
           "benchmark": {"name": "equal-weight buy and hold", "return_ann_pct": 25.5507}}
    shown, _ = risk_summary(doc)
    values = dict(zip(shown["metric"], shown["value"], strict=True))
    assert values["First bar"] == "1986-03-14" and values["Last bar"] == "2018-12-31" and values["Bars"] == "8,267"
    assert values["Max. drawdown"] == "-40.47%" and values["Current drawdown"] == "-2.96%"
    assert values["Benchmark"] == "equal-weight buy and hold" and values["Benchmark annual return"] == "25.55%"
    assert values["Sharpe ratio"] == "0.60" and "VaR 95% per bar (historical)" not in values  # in the VaR table
    assert values["1 more"].startswith("not available")


def test_explorer_trades_and_health_tables_are_labelled_for_a_reader(runs):
    from research.viz.panels.health import alert_rows

    trades = _table_part(one(backtest_explorer(runs_dir=runs), "wb-bt-trades-table"))
    assert "<th>Entry</th>" in trades and ">P&amp;L</th>" in trades and ">Exit price</th>" in trades
    assert "entry_time" not in trades and ">pnl<" not in trades
    page = pipeline_health(runs_dir=runs)
    signals = _table_part(one(page, "wb-signals-table"))
    assert "previous_signal" not in signals and "target_position" not in signals and "bar_time" not in signals
    assert ">Target position</th>" in signals
    alerts = pd.DataFrame({"kind": ["drawdown", "data", "technical", "price_move"],
                           "value": [-0.144639, 2131.0, 74.881389, -0.02229], "threshold": [-0.1, 3.0, 70.0, 0.02]})
    shown = alert_rows(alerts)
    assert shown["value"].tolist() == ["-14.5%", "2,131 days", "74.88", "-2.2%"]
    assert shown["threshold"].tolist() == ["-10.0%", "3 days", "70", "+2.0%"]
    assert shown["kind"].tolist() == ["drawdown", "data", "technical", "price move"]
    assert alerts["value"].tolist()[0] == -0.144639  # the frame itself (the CSV) is left raw
