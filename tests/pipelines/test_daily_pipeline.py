"""The daily pipeline end to end through the runner, with tiny parameters, on the sample data."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pandas as pd
import pytest

from research.workflow.results import latest
from research.workflow.runlog import RunLog, read_run_record
from research.workflow.runner import run_pipeline

pytestmark = pytest.mark.slow
SPEC = Path(__file__).resolve().parents[2] / "pipelines" / "daily.yaml"
TINY = [
    "symbols=SPX,MSFT", "start=2012-01-01", "preset=tiny", "max_bars=400", "epochs=1",
    "model.n_folds=2", "model.test_size=40", "model.lookback=20", "model.units=8",
    "backtest.sweep_fast=5,10", "backtest.sweep_slow=20,50",
    "backtest.sweep_grid=rsi_reversion.window=7,14; rsi_reversion.lower=20,30; rsi_reversion.exit_level=50; "
    "time_series_momentum.lookback=21,63; time_series_momentum.threshold=0",
]
CONTRACT = ["prices", "data_report", "features", "predictions", "model_eval", "backtests", "equity", "trades",
            "positions", "sweep", "sweep_summary", "sweep_returns", "sweep_bars", "risk", "signals", "alerts", "paper", "summary", "news"]


@pytest.fixture(scope="module")
def daily_run():
    result = run_pipeline(SPEC, TINY)
    assert result.status == "COMPLETED", result.message
    return result


def test_daily_run_is_published_with_every_output(daily_run):
    pub = latest("daily")
    assert pub is not None and pub.run_id == daily_run.run_id and pub.as_of == "2018-12-31"
    assert all(pub.has(name) for name in CONTRACT), [n for n in CONTRACT if not pub.has(n)]
    rec = read_run_record(daily_run.run_dir)
    assert [s["status"] for s in rec["stages"]] == ["COMPLETED"] * 9 and rec["published"]
    for stage in rec["stages"]:
        nb = nbformat.read(stage["notebook"], as_version=4)
        errors = [o for c in nb.cells for o in c.get("outputs", []) if o.output_type == "error"]
        assert not errors, f"{stage['name']}: {errors}"


def test_daily_ledger_has_the_run_and_its_stage_notebooks(daily_run):
    entry = RunLog().get_run(daily_run.run_id)
    assert entry["status"] == "COMPLETED" and entry["published"]
    assert [s["status"] for s in entry["stages"]] == ["COMPLETED"] * 9
    parent = Path(entry["artifact_uri"].removeprefix("file://"))
    assert (parent / "run.json").exists()
    child = Path(entry["stages"][0]["artifact_uri"].removeprefix("file://"))
    assert (child / "notebooks" / "01-ingest.ipynb").exists()


def test_daily_outputs_follow_the_contract_and_stop_at_the_as_of_date(daily_run):
    pub = latest("daily")
    as_of = pd.Timestamp("2018-12-31", tz="UTC")
    prices = pub.table("prices")
    assert list(prices.columns) == ["SPX", "MSFT"] and prices.index.max() == as_of and prices.index.min() >= pd.Timestamp("2012-01-01", tz="UTC")
    assert pub.table("features")["timestamp"].max() <= as_of
    report = pub.table("data_report")
    assert set(report["symbol"]) == {"SPX", "MSFT"} and not report["synthetic"].any()
    ev = pub.table("model_eval")
    assert set(ev["model"]) >= {"lstm", "naive", "naive_mean"} and set(ev["symbol"]) == {"SPX", "MSFT"}
    assert (ev["mode"] == "trained").all()
    assert not ev.loc[ev["model"].isin(["naive", "naive_mean"]), "champion"].any()
    preds = pub.table("predictions")
    assert set(preds["kind"]) == {"walk_forward", "forecast"} and preds["timestamp"].max() <= as_of
    fc = preds[preds["kind"] == "forecast"]
    assert len(fc) == 2 and fc["actual"].isna().all()
    bt = pub.table("backtests")
    assert {"ma_crossover", "rsi_reversion", "time_series_momentum", "buy_and_hold", "prediction"} <= set(bt["strategy"])
    assert "Sharpe Ratio" in bt.columns
    equity = pub.table("equity")
    assert set(equity.columns) >= {"ma_crossover|SPX", "ma_crossover|MSFT", "buy_and_hold|SPX", "portfolio|ma_crossover"}
    assert equity.index.max() <= as_of
    trades = pub.table("trades")
    assert {"strategy", "symbol", "params", "entry_time", "exit_time", "size", "entry_price", "exit_price", "pnl", "return"} <= set(trades.columns)
    positions = pub.table("positions")
    assert list(positions.columns) == ["SPX", "MSFT"] and positions.fillna(0).sum(axis=1).le(1 + 1e-9).all()
    sweep = pub.table("sweep")  # every backtested family, each over its (here tiny) grid
    assert sweep.groupby("family").size().to_dict() == {"ma_crossover": 2 * 4, "rsi_reversion": 2 * 4,
                                                        "time_series_momentum": 2 * 2}
    sweep_summary = pub.table("sweep_summary")
    assert len(sweep_summary) == 3 * 2 and sweep_summary["deflated_sharpe"].between(0, 1).all()
    sig = pub.table("signals")
    assert len(sig[sig["strategy"] != "prediction"]) == 2 * 3
    assert sig.loc[sig["symbol"] == "MSFT", "stale"].all() and not sig.loc[sig["symbol"] == "SPX", "stale"].any()
    alerts = pub.table("alerts")
    assert {"symbol", "kind", "severity", "message", "value", "threshold"} <= set(alerts.columns)
    assert ((alerts["symbol"] == "MSFT") & (alerts["kind"] == "data")).any()
    risk = pub.document("risk")
    assert risk["strategy"] == "ma_crossover" and "Sharpe Ratio" in risk["summary"] and risk["overfitting"]["n_trials"] == 4
    summary = pub.document("summary")
    assert summary["run_id"] == daily_run.run_id and summary["synthetic"] is False
    assert set(CONTRACT) <= set(summary["outputs"])


def test_a_published_date_is_not_run_twice(daily_run):
    again = run_pipeline(SPEC, TINY)
    assert again.status == "SKIPPED" and again.run_id == daily_run.run_id and again.exit_code == 0


def test_workbench_run_says_where_everything_is(daily_run):
    from typer.testing import CliRunner

    from research.cli import app

    result = CliRunner().invoke(app, ["run"])
    assert result.exit_code == 0, result.output
    assert "already published" in result.output
    run_dir = str(daily_run.run_dir)
    for needle in (f"executed notebooks  {run_dir}/notebooks", "signals.parquet", "experiment pipeline-daily",
                   "workbench mlflow", "http://127.0.0.1:8866", "today's signals", "workbench paper show demo"):
        assert needle in result.output, needle


def test_the_next_day_predicts_with_the_registered_model(daily_run):
    from research.stages.modeling import train_or_predict

    preds, ev = train_or_predict(["SPX"], as_of="2018-12-31", source="sample", preset="tiny",
                                 overrides={"max_bars": 400, "epochs": 1})
    assert (ev["mode"] == "predicted").all() and set(ev["model"]) >= {"lstm", "naive"}
    assert list(preds["kind"].unique()) == ["forecast"] and preds["timestamp"].max() == pd.Timestamp("2018-12-31", tz="UTC")
    published = latest("daily").table("predictions")
    before = published[(published["kind"] == "forecast") & (published["symbol"] == "SPX")]["predicted"].iloc[-1]
    assert preds["predicted"].iloc[-1] == pytest.approx(before, rel=1e-5)
