"""The explorer's sweep panel, built from the fixture run without a browser: the whole grid as one
heatmap, the best cell's deflated Sharpe and PBO, a picked cell re-run, compared and deep-linked."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from research.viz.panels import backtest_explorer
from research.viz.panels.layout import PLOTLY_MIME
from research.workflow.results import latest

ROOT = Path(__file__).resolve().parents[2]


def _load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


helpers = _load("wb_test_panels", ROOT / "tests" / "viz" / "test_panels.py")
one, by_class, title, figure_spec = helpers.one, helpers.by_class, helpers.title, helpers.figure_spec
_decode = helpers._decode  # base64 typed arrays, 2-D ones too


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("runs")
    _load("wb_run_fixture", ROOT / "tests" / "browser" / "run_fixture.py").write_fixture_run(root)
    return root / "daily"


@pytest.fixture
def page(runs):
    return backtest_explorer(runs_dir=runs)


def _pick(page, fast: int, slow: int, n: int = 1) -> None:
    """What the page script does on a heatmap click: ``"x,y,n"`` into the hidden text box."""
    one(page, "wb-sweep-pick").value = f"{slow},{fast},{n}"


def _crossover(sweep):
    """The crossover's rows of the long sweep table, with integer windows."""
    rows = sweep[sweep["family"] == "ma_crossover"]
    return rows.astype({"fast": int, "slow": int})


def test_the_heatmap_is_the_whole_grid_in_one_trace(runs, page):
    sweep = _crossover(latest("daily", runs_dir=runs).table("sweep"))
    rows = sweep[sweep["symbol"] == "SYN0001"]
    spec = figure_spec(one(page, "wb-sweep-fig"))
    heat = [t for t in spec["data"] if t["type"] == "heatmap"]
    assert len(heat) == 1 and len(spec["data"]) <= 3  # one trace for the grid, markers for the best cells
    fast, slow = sorted(rows["fast"].unique()), sorted(rows["slow"].unique())
    z = _decode(heat[0]["z"])
    assert z.shape == (len(fast), len(slow)) and list(_decode(heat[0]["y"])) == fast
    assert np.isfinite(z).sum() == len(rows) == 785
    cell = rows[(rows["fast"] == 7) & (rows["slow"] == 60)].iloc[0]
    assert z[fast.index(7), slow.index(60)] == pytest.approx(cell["sharpe"], abs=1e-4)
    assert np.isnan(z[fast.index(30), slow.index(20)])  # fast >= slow is not a cell
    best = rows.loc[rows["sharpe"].idxmax()]
    star = next(t for t in spec["data"] if t["type"] == "scatter")
    assert (list(_decode(star["x"])), list(_decode(star["y"]))) == ([best["slow"]], [best["fast"]])
    assert f"highest at fast={best['fast']}, slow={best['slow']}" in title(one(page, "wb-sweep-fig"))


def test_deflated_sharpe_and_pbo_are_shown_beside_the_best_cell(runs, page):
    summary = latest("daily", runs_dir=runs).table("sweep_summary")
    row = summary[summary["family"] == "ma_crossover"].set_index("symbol").loc["SYN0001"]
    card = one(page, "wb-sweep-overfit").value
    assert f"fast {row['fast']:.0f} · slow {row['slow']:.0f}" in card
    assert f"deflated Sharpe {100 * row['deflated_sharpe']:.1f}%" in card and f"best of {row['dsr_trials']:,}" in card
    assert f"PBO {100 * row['pbo']:.1f}%" in card and f"over {row['pbo_trials']:,} cells" in card
    one(page, "wb-sweep-symbol").value = "BTC-USD"
    btc = summary[summary["family"] == "ma_crossover"].set_index("symbol").loc["BTC-USD"]
    assert f"deflated Sharpe {100 * btc['deflated_sharpe']:.1f}%" in one(page, "wb-sweep-overfit").value


def test_a_click_re_runs_that_cell_with_the_sweeps_costs(runs, page):
    eq, dd = one(page, "wb-sweep-equity-fig"), one(page, "wb-sweep-drawdown-fig")
    trades, wf = one(page, "wb-sweep-trades-table"), one(page, "wb-sweep-wf-table")
    before = (title(eq), trades.value, wf.value)
    _pick(page, 7, 60)
    assert "fast=7, slow=60" in title(eq) and "fast=7, slow=60" in title(dd)
    assert (one(page, "wb-sweep-fast").value, one(page, "wb-sweep-slow").value) == (7, 60)
    assert trades.value != before[1] and wf.value != before[2]
    assert "matches the sweep" in one(page, "wb-sweep-pair-note").value
    assert "Sharpe in test" in wf.value and "not out of sample" in one(page, "wb-sweep-wf-note").value
    # the same click again (a new counter) and a cell outside the grid change nothing
    _pick(page, 7, 60, n=2)
    assert "fast=7, slow=60" in title(eq)
    _pick(page, 30, 20, n=3)
    assert "fast=7, slow=60" in title(eq)
    # the recorded curve of the re-run cell is the engine's: its last point is the sweep's final value
    sweep = _crossover(latest("daily", runs_dir=runs).table("sweep"))
    cell = sweep[(sweep["symbol"] == "SYN0001") & (sweep["fast"] == 7) & (sweep["slow"] == 60)].iloc[0]
    y = _decode(figure_spec(eq)["data"][0]["y"])
    assert y[-1] == pytest.approx(cell["final_value"], rel=1e-5)


def test_dropdowns_and_the_best_button_take_the_same_path(page):
    fast, slow, eq = one(page, "wb-sweep-fast"), one(page, "wb-sweep-slow"), one(page, "wb-sweep-equity-fig")
    slow.value = 45
    assert title(eq).endswith(f"fast={fast.value}, slow=45")
    fast.value, slow.value = 40, 20
    assert "not a cell of the grid" in one(page, "wb-sweep-pair-note").value
    one(page, "wb-sweep-metric").value = "total_return"
    one(page, "wb-sweep-best").click()
    heat_title = title(one(page, "wb-sweep-fig"))
    best = re.search(r"fast=(\d+), slow=(\d+)", heat_title)
    assert "Total return [%]" in heat_title and f"fast={best[1]}, slow={best[2]}" in title(eq)


def test_two_parameter_sets_or_a_recorded_strategy_side_by_side(page):
    _pick(page, 7, 60)
    compare, eq, stats = one(page, "wb-sweep-compare"), one(page, "wb-sweep-equity-fig"), one(page, "wb-sweep-stats-table")
    one(page, "wb-sweep-cfast").value, one(page, "wb-sweep-cslow").value = 12, 90
    compare.value = "cell"
    names = [t["name"] for t in figure_spec(eq)["data"]]
    assert names == ["fast=7, slow=60", "fast=12, slow=90", "buy and hold"]
    assert ">fast=7, slow=60</th>" in stats.value and ">fast=12, slow=90</th>" in stats.value
    assert "fast=12, slow=90: Sharpe in test" in one(page, "wb-sweep-wf-table").value
    label, value = next(o for o in compare.options if o[1] == 'curve:sma_cross|SYN0001|{"fast": 20, "slow": 100}')
    compare.value = value
    assert "vs sma_cross (fast=20, slow=100)" in title(eq)
    assert "sma_cross (fast=20, slow=100) (recorded)" in stats.value


def test_on_the_dashboard_server_heatmap_clicks_reach_the_pick_box(runs, monkeypatch):
    from research.viz.panels.deferred import release_all

    monkeypatch.setenv("WORKBENCH_FIGURES", "page")
    page = backtest_explorer(runs_dir=runs)
    release_all()  # what the page's first drawn figure does: the sweep is drawn after it
    (bundle,) = one(page, "wb-sweep-fig").outputs
    markup = bundle["data"]["text/html"]
    plot_id = re.search(r'<div class="wb-plot" id="(wb-plot-[0-9a-f]+)"', markup)[1]
    assert f'var id = "{plot_id}", target = "wb-sweep-pick"' in markup and '"plotly_click"' in markup
    assert '{"sweep-fast": "y", "sweep-slow": "x"}' in markup  # the picked cell goes into the address
    one(page, "wb-sweep-metric").value = "max_drawdown"
    assert "plotly_click" in one(page, "wb-sweep-fig").outputs[0]["data"]["text/html"]
    monkeypatch.delenv("WORKBENCH_FIGURES")
    page = backtest_explorer(runs_dir=runs)
    assert PLOTLY_MIME in one(page, "wb-sweep-fig").outputs[0]["data"]


def test_a_run_without_bars_or_overfitting_figures_still_shows_its_grid(runs, tmp_path):
    page = backtest_explorer(runs_dir=helpers.copy_without(runs, tmp_path, "sweep_bars", "sweep_summary"))
    assert not by_class(page, "wb-panel-error-box")
    assert "785 pairs" in title(one(page, "wb-sweep-fig"))
    assert "recorded no deflated Sharpe" in one(page, "wb-sweep-overfit").value
    assert "no sweep bars" in one(page, "wb-sweep-pair-note").value


def test_the_walk_forward_is_an_out_of_sample_benchmark_for_a_picked_cell(runs, page):
    from research.backtest.walkforward import walk_forward
    from research.stages.sweep_outputs import pbo_subgrid, wf_windows

    _pick(page, 7, 60)
    one(page, "wb-sweep-compare").value = "wf"
    eq, wf_table = one(page, "wb-sweep-equity-fig"), one(page, "wb-sweep-wf-table").value
    assert [t["name"] for t in figure_spec(eq)["data"]][:2] == ["fast=7, slow=60", "walk-forward"]
    assert "walk-forward: pick" in wf_table and "walk-forward (out of sample)" in one(page, "wb-sweep-stats-table").value
    # the same walk-forward as the library's on the recorded bars: picks made on training windows only
    run = latest("daily", runs_dir=runs)
    bars = run.table("sweep_bars")
    fields = {f: bars[[f"{f}|SYN0001"]].rename(columns=lambda c: "SYN0001").dropna() for f in ("open", "close")}
    sweep = _crossover(run.table("sweep"))
    fast, slow = pbo_subgrid(sorted(sweep["fast"].unique()), sorted(sweep["slow"].unique()))
    train, test = wf_windows(len(fields["close"]))
    wf = walk_forward(fields, fast=fast, slow=slow, train=train, test=test, fees=0.001, slippage=0.0005)
    first = wf.folds.iloc[0]
    assert f"{first['fast']}/{first['slow']}" in wf_table
    x = figure_spec(eq)["data"][1]["x"]  # the out-of-sample book starts at the first test bar
    assert isinstance(x, list) and str(x[0])[:10] >= str(first["test_start"])[:10]


@pytest.mark.parametrize("family", ["rsi_reversion", "time_series_momentum"])
def test_every_family_walks_forward_over_its_recorded_grid(runs, page, family):
    """The family's own walk-forward: its recorded grid (a regular sub-grid of at most 800 sets), picks
    made on training windows only, the same as the library's on the recorded bars and costs."""
    from research.backtest.walkforward import walk_forward
    from research.stages.sweep_outputs import pbo_grid, wf_windows

    one(page, "wb-sweep-family").value = family
    one(page, "wb-sweep-compare").value = "wf"
    eq, wf_table = one(page, "wb-sweep-equity-fig"), one(page, "wb-sweep-wf-table").value
    assert [t["name"] for t in figure_spec(eq)["data"]][1] == "walk-forward"
    assert "walk-forward: pick" in wf_table and "walk-forward (out of sample)" in one(page, "wb-sweep-stats-table").value
    run = latest("daily", runs_dir=runs)
    bars = run.table("sweep_bars")
    fields = {f: bars[[f"{f}|SYN0001"]].rename(columns=lambda c: "SYN0001").dropna()
              for f in ("open", "high", "low", "close") if f"{f}|SYN0001" in bars}
    sweep = run.table("sweep")
    rows = sweep[(sweep["family"] == family) & (sweep["symbol"] == "SYN0001")]
    names = [n for n in run.table("sweep_summary").query("family == @family")["param_names"].iloc[0].split(",") if n]
    grid = pbo_grid({n: sorted(v.item() if hasattr(v, "item") else v for v in rows[n].unique()) for n in names})
    grid = {n: [int(v) if float(v).is_integer() else v for v in vals] for n, vals in grid.items()}
    train, test = wf_windows(len(fields["close"]))
    wf = walk_forward(fields, family, grid, train=train, test=test, fees=0.001, slippage=0.0005)
    first = wf.folds.iloc[0]
    assert ", ".join(f"{n}={first[n]:g}" for n in names) in wf_table
    x = figure_spec(eq)["data"][1]["x"]  # the out-of-sample book starts at the first test bar
    assert isinstance(x, list) and str(x[0])[:10] >= str(first["test_start"])[:10]
    y = _decode(figure_spec(eq)["data"][1]["y"])
    assert y[-1] == pytest.approx(wf.result.equity["SYN0001"].dropna().iloc[-1], rel=1e-9)


def test_any_recorded_family_can_be_shown_and_sliced(runs, page):
    """RSI reversion has three parameters: two on the axes, the third folded or fixed."""
    from research.backtest.slices import grid_slice

    family = one(page, "wb-sweep-family")
    assert [o[1] for o in family.options] == ["ma_crossover", "rsi_reversion", "time_series_momentum"]
    family.value = "rsi_reversion"
    sweep = latest("daily", runs_dir=runs).table("sweep")
    rows = sweep[(sweep["family"] == "rsi_reversion") & (sweep["symbol"] == "SYN0001")]
    rows = rows[["symbol", "window", "lower", "exit_level", "sharpe"]]
    heat = next(t for t in figure_spec(one(page, "wb-sweep-fig"))["data"] if t["type"] == "heatmap")
    want = grid_slice(rows, x="lower", y="window", metric="sharpe", agg="max")
    np.testing.assert_allclose(_decode(heat["z"]), want.to_numpy(), rtol=1e-6, equal_nan=True)
    assert list(_decode(heat["y"])) == list(want.index) and "max over exit_level" in title(one(page, "wb-sweep-fig"))
    assert (one(page, "wb-sweep-xaxis").value, one(page, "wb-sweep-yaxis").value) == ("lower", "window")
    assert "exit_level" in one(page, "wb-sweep-overfit").value and not by_class(page, "wb-sweep-fast")
    # fix exit_level at 50, and put exit_level on the x axis instead
    one(page, "wb-sweep-fix-exit_level").value = 50
    heat = next(t for t in figure_spec(one(page, "wb-sweep-fig"))["data"] if t["type"] == "heatmap")
    want = grid_slice(rows, x="lower", y="window", metric="sharpe", fixed={"exit_level": 50})
    np.testing.assert_allclose(_decode(heat["z"]), want.to_numpy(), rtol=1e-6, equal_nan=True)
    assert "exit_level=50" in title(one(page, "wb-sweep-fig"))
    one(page, "wb-sweep-xaxis").value = "exit_level"
    one(page, "wb-sweep-agg").value = "median"
    heat = next(t for t in figure_spec(one(page, "wb-sweep-fig"))["data"] if t["type"] == "heatmap")
    want = grid_slice(rows, x="exit_level", y="window", metric="sharpe", agg="median")
    np.testing.assert_allclose(_decode(heat["z"]), want.to_numpy(), rtol=1e-6, equal_nan=True)
    one(page, "wb-sweep-yaxis").value = "exit_level"  # moving y onto x swaps the axes
    assert (one(page, "wb-sweep-xaxis").value, one(page, "wb-sweep-yaxis").value) == ("window", "exit_level")


def test_a_click_on_a_folded_cell_re_runs_the_set_behind_its_value(runs, page):
    from research.backtest import backtest

    one(page, "wb-sweep-family").value = "rsi_reversion"
    sweep = latest("daily", runs_dir=runs).table("sweep")
    rows = sweep[(sweep["family"] == "rsi_reversion") & (sweep["symbol"] == "SYN0001")]
    cell_rows = rows[(rows["window"] == 10) & (rows["lower"] == 30)]
    behind = cell_rows.loc[cell_rows["sharpe"].idxmax()]  # agg max: the set showing the cell's value
    one(page, "wb-sweep-pick").value = "30,10,1"  # x = lower, y = window
    label = f"window=10, lower=30, exit_level={behind['exit_level']:.0f}"
    eq = one(page, "wb-sweep-equity-fig")
    assert label in title(eq) and "matches the sweep" in one(page, "wb-sweep-pair-note").value
    assert one(page, "wb-sweep-exit_level").value == behind["exit_level"]
    # the engine's own backtest of that set on the recorded bars: the curve shown is its equity
    bars = latest("daily", runs_dir=runs).table("sweep_bars")
    fields = {f: bars[[f"{f}|SYN0001"]].rename(columns=lambda c: "SYN0001").dropna() for f in ("open", "close")}
    res = backtest(fields, "rsi_reversion", params={"window": 10, "lower": 30, "exit_level": behind["exit_level"]},
                   fees=0.001, slippage=0.0005)
    assert res.summary("SYN0001")["Sharpe Ratio"] == pytest.approx(behind["sharpe"], rel=1e-5)
    assert _decode(figure_spec(eq)["data"][0]["y"])[-1] == pytest.approx(res.equity["SYN0001"].iloc[-1], rel=1e-9)
    # a dropdown takes the same path; every family offers its walk-forward
    one(page, "wb-sweep-exit_level").value = 55
    assert "window=10, lower=30, exit_level=55" in title(eq)
    assert "wf" in [o[1] for o in one(page, "wb-sweep-compare").options]
    one(page, "wb-sweep-family").value = "ma_crossover"
    assert "fast=" in title(eq) and "wf" in [o[1] for o in one(page, "wb-sweep-compare").options]


def test_a_crossover_only_run_without_a_family_column_still_shows(runs, tmp_path):
    """Runs recorded before the sweep had families: the crossover's fast/slow grid."""
    copy = helpers.copy_without(runs, tmp_path)
    out = copy / latest("daily", runs_dir=runs).run_id / "outputs"
    for name in ("sweep", "sweep_summary"):
        table = pd.read_parquet(out / f"{name}.parquet")
        table = table[table["family"] == "ma_crossover"].drop(columns=["family"])
        table.to_parquet(out / f"{name}.parquet")
    page = backtest_explorer(runs_dir=copy)
    assert not by_class(page, "wb-panel-error-box")
    assert "785 pairs" in title(one(page, "wb-sweep-fig")) and len(one(page, "wb-sweep-family").options) == 1


@pytest.fixture(scope="module")
def rsi_data(runs):
    from research.viz.panels.sweep_data import SweepData

    return SweepData(latest("daily", runs_dir=runs))


@given(choice=st.data())
def test_a_click_re_runs_a_set_that_shows_the_cells_value(rsi_data, choice):
    """For every slice (axes, a fixed value or not, any fold) and every cell: the set a click picks
    lies in that cell and carries the value shown (max/min), or the cell's best value (median/mean)."""
    from research.backtest.slices import grid_slice
    from research.viz.panels.sweep import SweepView, click_cell

    params = rsi_data.params("rsi_reversion")
    x, y = choice.draw(st.permutations(params))[:2]
    third = next(p for p in params if p not in (x, y))
    values = rsi_data.values("rsi_reversion", "SYN0002", third)
    fixed = choice.draw(st.sampled_from([{}, *({third: v} for v in values)]))
    agg = choice.draw(st.sampled_from(["max", "min", "median", "mean"]))
    metric = choice.draw(st.sampled_from(["sharpe", "total_return", "annual_volatility"]))
    view = SweepView("rsi_reversion", "SYN0002", metric, x=x, y=y, fixed=fixed, agg=agg)
    rows = rsi_data.rows("rsi_reversion", "SYN0002")
    frame = grid_slice(rows, x=x, y=y, metric=metric, fixed=fixed, agg=agg)
    yv = choice.draw(st.sampled_from(list(frame.index)))
    xv = choice.draw(st.sampled_from(list(frame.columns)))
    cell = click_cell(rsi_data, view, xv, yv)
    assert cell is not None and (cell[x], cell[y]) == (xv, yv)
    assert all(cell[k] == v for k, v in fixed.items())
    value = rsi_data.cell("rsi_reversion", "SYN0002", cell)[metric]
    shown = frame.loc[yv, xv]
    inside = rows[(rows[x] == xv) & (rows[y] == yv) & ((rows[third] == fixed[third]) if fixed else True)][metric]
    if np.isnan(shown):
        assert inside.isna().all()
    elif agg in ("max", "min"):
        assert value == pytest.approx(shown)
    else:
        best = inside.min() if metric == "annual_volatility" else inside.max()
        assert value == pytest.approx(best)
