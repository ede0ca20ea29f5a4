"""Dashboard pages and their panels (ipywidgets and plotly), reading recorded pipeline results.

Each page function returns one widget built from the latest published run of a pipeline
(:func:`research.workflow.results.latest`); each view on a page is a function
``panel(run) -> Widget``. A Voila dashboard is the single call of a page function::

    from research.viz.panels import market_overview
    market_overview()

================================  ==========================================  =====================
page                              shows                                       run outputs read
================================  ==========================================  =====================
:func:`market_overview`           prices, returns, volatility, correlation,   prices, data_report
                                  data freshness
:func:`predictions_page`          champion per symbol, predicted vs actual,   predictions, model_eval
                                  accuracy against baselines, MLflow links
:func:`backtest_explorer`         equity vs buy-and-hold, drawdown, trades,   backtests, equity, trades,
                                  risk summary, sweep heatmap                 sweep, prices
:func:`portfolio_risk`            VaR/CVaR, drawdowns, exposures, rolling     risk, equity, positions,
                                  Sharpe and volatility                       signals
:func:`pipeline_health`           recent runs, failed stages, signals,        run.json files, signals,
                                  alerts, the alert outbox                    alerts; the ledger
:func:`paper_trading`             paper accounts, equity against the          the ledger (book,
                                  backtest, positions, fills, reconciliation, outbox) and
                                  alerts sent and pending                     research.paper.monitor
================================  ==========================================  =====================
"""

from research.viz.panels.explorer import backtest_explorer
from research.viz.panels.health import pipeline_health
from research.viz.panels.market import market_overview
from research.viz.panels.paper import paper_trading
from research.viz.panels.portfolio import portfolio_risk
from research.viz.panels.predictions import predictions_page

#: Dashboard notebook name -> page function (the notebooks in ``dashboards/`` call these).
DASHBOARDS = {
    "01-market-overview": market_overview,
    "02-predictions": predictions_page,
    "03-backtest-explorer": backtest_explorer,
    "04-portfolio-risk": portfolio_risk,
    "05-pipeline-health": pipeline_health,
    "06-paper-trading": paper_trading,
}

__all__ = ["market_overview", "predictions_page", "backtest_explorer", "portfolio_risk", "pipeline_health",
           "paper_trading", "DASHBOARDS"]
