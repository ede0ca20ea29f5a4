"""Write the stage notebooks of the pipelines (outputs stripped): ``python pipelines/build_notebooks.py``.

Each notebook is thin: a title, one cell tagged ``parameters`` holding every default, then a
call into ``research.stages.steps``. The runner injects the spec's values after the
``parameters`` cell; ``output_dir`` and ``as_of`` always come from the runner.
"""

from __future__ import annotations

from pathlib import Path

from research.workflow.notebooks import write_stage_notebook

HERE = Path(__file__).parent
COMMON = '''output_dir = ""  # the run's outputs/ folder (set by the runner)
as_of = ""  # as-of date or date-time (set by the runner)
symbols = ["SPX", "IXIC", "GOOG", "MSFT"]
source = "sample"
interval = "1d"'''

STAGES = {
    "daily/01-ingest.ipynb": (
        "# Ingest and validate\nFetch (or reuse) the universe's bars up to the as-of date through the validated store; "
        "write `data_report` and `prices`.",
        COMMON + '\nstart = None\nrefresh = False\nmin_rows = 50\nsource_note = ""  # which source a run took, and why',
        ["from research.stages.steps import ingest_stage",
         "ingest_stage(output_dir, symbols=symbols, as_of=as_of, source=source, interval=interval,\n"
         "             start=start, refresh=refresh, min_rows=min_rows, source_note=source_note)"],
    ),
    "daily/09-news.ipynb": (
        "# News\nHeadlines about the universe up to the as-of time through the news store (synthetic by default, "
        "labelled so), scored for sentiment, only what was available at the as-of time; write `news`.",
        'output_dir = ""  # the run\'s outputs/ folder (set by the runner)\nas_of = ""  # set by the runner\n'
        'symbols = ["SPX", "IXIC", "GOOG", "MSFT"]\nnews_source = "synthetic"  # synthetic, rss (news.yaml) or newsapi (NEWSAPI_KEY)\n'
        "lookback_days = 365",
        ["from research.stages.news_step import news_stage",
         "news_stage(output_dir, symbols=symbols, as_of=as_of, news_source=news_source, lookback_days=lookback_days).tail()"],
    ),
    "daily/02-features.ipynb": (
        "# Features\nThe named feature set per symbol, warm-up rows dropped; write `features`.",
        COMMON + '\nstart = None\nfeature_set_name = "lstm"',
        ["from research.stages.steps import features_stage",
         "features_stage(output_dir, symbols=symbols, as_of=as_of, source=source, interval=interval,\n"
         "               start=start, feature_set_name=feature_set_name).tail()"],
    ),
    "daily/03-model.ipynb": (
        "# Train or predict\nRetrain the LSTM and its baselines when the schedule or the flag says so, otherwise "
        "forecast with the champion; write `predictions` and `model_eval`.",
        COMMON + '\nretrain = False\nretrain_every_days = 7.0\npreset = "pipeline"\nmax_bars = 1500\nepochs = 3\n'
        "n_folds = 2\ntest_size = 126\nlookback = 30\nunits = 16",
        ["from research.stages.steps import model_stage",
         "model_stage(output_dir, symbols=symbols, as_of=as_of, source=source, interval=interval,\n"
         "            retrain=retrain, retrain_every_days=retrain_every_days, preset=preset,\n"
         "            overrides=dict(max_bars=max_bars, epochs=epochs, n_folds=n_folds, test_size=test_size,\n"
         "                           lookback=lookback, units=units))"],
    ),
    "daily/04-backtest.ipynb": (
        "# Backtests and sweeps\nEvery strategy on every symbol (and the model's out-of-sample forecasts), plus a "
        "sweep of every backtested strategy family over its grid (the whole moving-average grid: every fast < slow "
        "pair); write `backtests`, `equity`, `sweep`, `sweep_summary` (deflated Sharpe and PBO per family and "
        "symbol), `sweep_returns` and `sweep_bars`.",
        COMMON + '\nstart = None\nfees = 0.001\nslippage = 0.0005\nsweep_fast = "2:100"\n'
        'sweep_slow = "10:250:5"\nsweep_families = "backtested"  # backtested, all, none or a comma list\n'
        'sweep_grid = ""  # grid overrides, see research.stages.sweep_grids',
        ["from research.stages.steps import backtest_stage",
         "backtest_stage(output_dir, symbols=symbols, as_of=as_of, source=source, interval=interval, start=start,\n"
         "               fees=fees, slippage=slippage, sweep_fast=sweep_fast, sweep_slow=sweep_slow,\n"
         "               sweep_families=sweep_families, sweep_grid=sweep_grid)"],
    ),
    "daily/05-risk.ipynb": (
        "# Risk report\nThe equal-weight book of a strategy across the universe, against buy and hold, with the "
        "sweep's overfitting statistics; write `risk`.",
        'output_dir = ""  # the run\'s outputs/ folder (set by the runner)\nas_of = ""  # set by the runner\n'
        'strategy = "ma_crossover"',
        ["from research.stages.steps import risk_stage",
         "risk_stage(output_dir, as_of=as_of, strategy=strategy)"],
    ),
    "daily/06-signals.ipynb": (
        "# Signals and alerts\nToday's signal and target position per symbol and strategy (a research output, not "
        "orders), and the alerts: price, technical, volume, drawdown and stale data; write `signals` and `alerts`.",
        COMMON + '\nsizing = "vol_target"\nvol_target = 0.15\n'
        'periods_per_year = None  # None: the calendar the prices carry (252 equity days, 8760 crypto hours)\n'
        'move_sigma = 3.0\n'
        "volume_z = 3.0\ndrawdown_warning = 0.10\ndrawdown_critical = 0.20\nstrategy_drawdown = 0.15\nstale_bars = 3",
        ["from research.stages.steps import signals_stage",
         "signals, alerts = signals_stage(\n"
         "    output_dir, symbols=symbols, as_of=as_of, source=source, interval=interval, sizing=sizing,\n"
         "    sizing_params=dict(target=vol_target, periods_per_year=periods_per_year),\n"
         "    rules=dict(move_sigma=move_sigma, volume_z=volume_z, drawdown_warning=drawdown_warning,\n"
         "               drawdown_critical=drawdown_critical, strategy_drawdown=strategy_drawdown, stale_bars=stale_bars))\n"
         "alerts"],
    ),
    "daily/07-summary.ipynb": (
        "# Summary\nWhat ran, on what data, and the headline figures, for the dashboards; write `summary`.",
        'output_dir = ""  # the run\'s outputs/ folder (set by the runner)\nas_of = ""  # set by the runner\n'
        'pipeline = "daily"  # set by the runner\nrun_id = ""  # set by the runner',
        ["from research.stages.steps import summary_stage",
         "summary_stage(output_dir, as_of=as_of, pipeline=pipeline, run_id=run_id)"],
    ),
    "daily/08-paper.ipynb": (
        "# Paper accounts\nStep every paper account that follows this pipeline as of the run's date: fill the orders "
        "decided at the previous session at this bar's open, decide the next ones, reconcile with the backtest and "
        "check drift; write `paper`.",
        'output_dir = ""  # the run\'s outputs/ folder (set by the runner)\nas_of = ""  # set by the runner\n'
        'pipeline = "daily"  # set by the runner\ndrift_window = 20\ndrift_band = 0.01',
        ["from research.stages.paper_accounts import paper_stage",
         "paper_stage(output_dir, as_of=as_of, pipeline=pipeline, drift_window=drift_window, drift_band=drift_band)"],
    ),
}


def build() -> list[Path]:
    """Write every stage notebook; returns their paths."""
    return [write_stage_notebook(HERE / rel, params, cells, title=title) for rel, (title, params, cells) in STAGES.items()]


if __name__ == "__main__":
    for path in build():
        print(path.relative_to(HERE.parent))
