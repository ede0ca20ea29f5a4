"""Predictions: the champion model per symbol, predicted vs actual, accuracy against baselines.

Reads the run outputs ``model_eval`` (one row per symbol and model, out-of-sample metrics and
the MLflow run id) and ``predictions`` (out-of-sample: timestamp, symbol, model, predicted,
actual).
"""

from __future__ import annotations

import html
import os

import ipywidgets as widgets
import numpy as np
import pandas as pd
import plotly.graph_objects as go

from research.viz.panels.headline import headline_panel
from research.viz.panels.layout import (
    dropdown,
    figure_output,
    load_run,
    naive_index,
    note,
    page,
    require,
    section,
    show_figure,
    stamp,
)
from research.viz.panels.staleness import fresh_first, stale_note, stale_symbols
from research.viz.panels.viewer_safe import mlflow_link, on_change
from research.workflow.results import PublishedRun

__all__ = ["predictions_page", "champions_panel", "predicted_vs_actual_panel", "accuracy_panel", "out_of_sample",
           "champions_table_html"]

_METRICS = {
    "directional_accuracy": "Directional accuracy (higher is better)",
    "rmse": "RMSE (lower is better)",
    "mae": "MAE (lower is better)",
    "ic": "Information coefficient (higher is better)",
    "rank_ic": "Rank IC (higher is better)",
}
#: How the metrics are named in the metric dropdown.
METRIC_NAMES = {"directional_accuracy": "Directional accuracy", "rmse": "RMSE", "mae": "MAE",
                "ic": "Information coefficient", "rank_ic": "Rank IC"}
#: The rule that makes a model a symbol's champion, stated wherever champions are shown.
PROMOTION_RULE = ("A model is promoted to champion only when its out-of-sample RMSE (walk-forward forecasts of "
                  "the next bar's return) is below the naive baseline's (the random walk's zero forecast). "
                  "Hit rate, MAE and IC are shown for context; they do not promote a model.")


def _model_eval(run: PublishedRun) -> pd.DataFrame:
    require(run, "model_eval")
    frame = run.table("model_eval")
    for col in ("champion", "beats_naive"):
        if col in frame:
            frame[col] = frame[col].fillna(False).astype(bool)
    return frame


def _fmt(value: object, spec: str) -> str:
    return "" if value is None or (isinstance(value, float) and np.isnan(value)) else format(value, spec)


def out_of_sample(preds: pd.DataFrame) -> pd.DataFrame:
    """The evaluated predictions only: walk-forward rows (when ``kind`` is recorded) of one seed."""
    if "kind" in preds:
        preds = preds[preds["kind"].astype(str) != "forecast"]
    if "seed" in preds and preds["seed"].notna().any():
        preds = preds[preds["seed"] == preds["seed"].min()]
    return preds.dropna(subset=["actual"])


def _forecasts(preds: pd.DataFrame | None) -> dict[tuple[str, str], float]:
    if preds is None or "kind" not in preds:
        return {}
    fc = preds[preds["kind"].astype(str) == "forecast"].sort_values("timestamp")
    return {(str(r.symbol), str(r.model)): float(r.predicted) for r in fc.itertuples()}


def _link(run_id: object) -> str:
    run_id = "" if run_id is None or (isinstance(run_id, float) and np.isnan(run_id)) else str(run_id)
    if not run_id:
        return ""
    return mlflow_link(run_id, label=f"MLflow run {run_id[:8]}", dom_class="wb-mlflow-link")


def _no_champion(model_rows: pd.DataFrame) -> str:
    """Why a symbol has no champion, with how many versions of its model are registered."""
    versions = pd.to_numeric(model_rows.get("version", pd.Series(dtype=float)), errors="coerce").dropna()
    if versions.empty:
        return "no champion yet: no model beats the naive baseline out of sample"
    n = int(versions.max())
    return (f"no champion yet: {n} version{'s' if n != 1 else ''} registered, "
            "none beats the naive baseline out of sample")


def champions_table_html(evals: pd.DataFrame, preds: pd.DataFrame | None = None) -> str:
    """HTML rows: per symbol its champion (or why there is none), its metrics next to the naive
    baseline's, the next-bar forecast when recorded, and a link to the MLflow run."""
    forecasts = _forecasts(preds)
    rows = []
    for symbol, group in evals.groupby("symbol", sort=True):
        champ = group[group["champion"]] if "champion" in group else group.iloc[0:0]
        model_rows = group[~group["model"].astype(str).str.lower().str.startswith("naive")]
        naive = group[group["model"].astype(str).str.lower() == "naive"]
        base = naive.iloc[0] if len(naive) else None
        if len(champ):
            c = champ.iloc[0]
            model = html.escape(str(c["model"]))
            acc, rmse = _fmt(c.get("directional_accuracy"), ".1%"), _fmt(c.get("rmse"), ".5f")
            forecast = _fmt(forecasts.get((str(symbol), str(c["model"]))), "+.3%")
        else:
            c = model_rows.iloc[0] if len(model_rows) else group.iloc[0]
            model, acc, rmse, forecast = f"<i>{html.escape(_no_champion(model_rows))}</i>", "", "", ""
        base_acc = _fmt(base.get("directional_accuracy"), ".1%") if base is not None else ""
        base_rmse = _fmt(base.get("rmse"), ".5f") if base is not None else ""
        rows.append(f"<tr><td>{html.escape(str(symbol))}</td><td>{model}</td><td>{acc}</td><td>{base_acc}</td>"
                    f"<td>{rmse}</td><td>{base_rmse}</td><td>{forecast}</td><td>{_link(c.get('mlflow_run_id'))}</td></tr>")
    head = ("<tr><th>symbol</th><th>champion</th><th>direction hit rate</th><th>naive hit rate</th>"
            "<th>RMSE</th><th>naive RMSE</th><th>next-bar forecast</th><th>tracking</th></tr>")
    return f"<table>{head}{''.join(rows)}</table>"


def champions_panel(run: PublishedRun) -> widgets.Widget:
    """The champion per symbol (only models that beat the naive baseline out of sample)."""
    preds = run.table("predictions") if run.has("predictions") else None
    box = widgets.HTML(champions_table_html(_model_eval(run), preds))
    box.add_class("wb-table")
    box.add_class("wb-champions-table")
    return section("Champion model per symbol", box, note(PROMOTION_RULE, dom_class="wb-promotion-rule"),
                   dom_class="wb-champions")


def hit_rate(evals: pd.DataFrame, preds: pd.DataFrame, symbol: str, model: str) -> float:
    """The direction hit rate of ``model`` on ``symbol``: the recorded evaluation's (the number the
    champions table shows), else computed by the library's rule from the out-of-sample rows
    (:func:`research.models.evaluate.forecast_metrics`: a forecast says "up" when it is > 0)."""
    if "directional_accuracy" in evals:
        rec = evals[(evals["symbol"].astype(str) == symbol) & (evals["model"].astype(str) == model)]
        if len(rec) and pd.notna(rec["directional_accuracy"].iloc[0]):
            return float(rec["directional_accuracy"].iloc[0])
    from research.models.evaluate import forecast_metrics

    sel = preds[(preds["symbol"] == symbol) & (preds["model"] == model)]
    return forecast_metrics(sel["actual"], sel["predicted"])["directional_accuracy"] if len(sel) else float("nan")


def _pva_figure(preds: pd.DataFrame, symbol: str, model: str, run: PublishedRun,
                evals: pd.DataFrame | None = None) -> go.Figure:
    sel = preds[(preds["symbol"] == symbol) & (preds["model"] == model)].sort_values("timestamp")
    x = naive_index(pd.DatetimeIndex(pd.to_datetime(sel["timestamp"], utc=True)))
    hit = hit_rate(evals if evals is not None else pd.DataFrame(), preds, symbol, model)
    fig = go.Figure([
        go.Scatter(x=x, y=sel["actual"].to_numpy(), name="actual", mode="lines", line={"color": "#9aa5b1"}),
        go.Scatter(x=x, y=sel["predicted"].to_numpy(), name=f"predicted ({model})", mode="lines",
                   line={"color": "#2680c2"}),
    ])
    fig.update_layout(title=f"Predicted vs actual: {symbol} · {model} (direction hit rate {hit:.1%})",
                      hovermode="x unified", yaxis_title="next-bar return", yaxis_tickformat=".1%",
                      yaxis_hoverformat=".3%")
    return stamp(fig, run)


def predicted_vs_actual_panel(run: PublishedRun) -> widgets.Widget:
    """Out-of-sample predictions against what happened, for a chosen symbol and model."""
    require(run, "predictions")
    preds = out_of_sample(run.table("predictions"))
    evals = _model_eval(run) if run.has("model_eval") else pd.DataFrame(columns=["symbol", "model", "champion"])
    stale = stale_symbols(run)
    symbols = fresh_first(sorted(preds["symbol"].astype(str).unique()), stale)
    symbol = dropdown(symbols, description="Symbol", dom_class="wb-pva-symbol")

    def models_for(sym: str) -> list[str]:
        models = sorted(preds.loc[preds["symbol"] == sym, "model"].astype(str).unique())
        champ = evals[(evals["symbol"] == sym) & evals.get("champion", False)]["model"].astype(str).tolist()
        return champ[:1] + [m for m in models if m not in champ[:1]]

    model = dropdown(models_for(symbol.value), description="Model", dom_class="wb-pva-model")
    out = figure_output(_pva_figure(preds, symbol.value, model.value, run, evals), dom_class="wb-pva-fig", height=380)

    busy = {"on": False}

    def on_symbol(change: dict) -> None:
        busy["on"] = True
        try:
            options = models_for(change["new"])
            model.options = options
            model.value = options[0]
        finally:
            busy["on"] = False
        show_figure(out, _pva_figure(preds, change["new"], model.value, run, evals))

    def on_model(change: dict) -> None:
        if not busy["on"]:
            show_figure(out, _pva_figure(preds, symbol.value, change["new"], run, evals))

    on_change(symbol, on_symbol, names="value")
    on_change(model, on_model, names="value")
    flag = widgets.HTML(stale_note(symbols, stale))
    return section("Predicted vs actual (out of sample)", widgets.HBox([symbol, model]), flag, out, dom_class="wb-pva")


def _accuracy_figure(evals: pd.DataFrame, metric: str, run: PublishedRun) -> go.Figure:
    fig = go.Figure()
    for model, group in evals.groupby("model", sort=True):
        group = group.sort_values("symbol")
        fig.add_trace(go.Bar(x=group["symbol"].astype(str), y=group[metric].to_numpy(), name=str(model)))
    if metric == "directional_accuracy":
        fig.add_hline(y=0.5, line_dash="dot", line_color="#7b8794", annotation_text="coin flip")
    if metric == "directional_accuracy":
        fig.update_layout(yaxis_tickformat=".0%", yaxis_hoverformat=".1%")
    elif metric in ("rmse", "mae"):
        fig.update_layout(yaxis_tickformat=".2%", yaxis_hoverformat=".3%", yaxis_title="next-bar return error")
    else:
        fig.update_layout(yaxis_tickformat=".2f", yaxis_hoverformat=".3f")
    judged = " · champions are judged on RMSE only" if metric != "rmse" else " · a champion must beat naive here"
    fig.update_layout(title=f"Out-of-sample {_METRICS.get(metric, metric)} by model{judged}", barmode="group",
                      legend_title_text="model")
    return stamp(fig, run)


def accuracy_panel(run: PublishedRun) -> widgets.Widget:
    """Out-of-sample metrics of every model, the baselines included, side by side per symbol."""
    evals = _model_eval(run)
    metrics = [m for m in _METRICS if m in evals]
    metric = dropdown([(METRIC_NAMES.get(m, m), m) for m in metrics], description="Metric", dom_class="wb-acc-metric")
    out = figure_output(_accuracy_figure(evals, metric.value, run), dom_class="wb-acc-fig", height=360)
    on_change(metric, lambda change: show_figure(out, _accuracy_figure(evals, change["new"], run)), names="value")
    return section("Accuracy against the baselines (out of sample)", metric, out, dom_class="wb-accuracy")


def predictions_page(run: PublishedRun | None = None, *, pipeline: str = "daily",
                     runs_dir: str | os.PathLike | None = None) -> widgets.Widget:
    """The predictions page of the latest published run (or of ``run``).

    Parameters
    ----------
    run : PublishedRun, optional
        Defaults to ``research.workflow.results.latest(pipeline)``.
    pipeline : str
        Pipeline whose results are shown.
    runs_dir : path, optional
        The pipeline's folder (default ``<Settings.runs_dir>/<pipeline>``).
    """
    run = run if run is not None else load_run(pipeline, runs_dir=runs_dir)
    panels = [("Headline", headline_panel), ("Champions", champions_panel), ("Predicted vs actual", predicted_vs_actual_panel),
              ("Accuracy", accuracy_panel)]
    return page("Predictions", panels, run=run, pipeline=pipeline, runs_dir=runs_dir, dom_id="predictions")
