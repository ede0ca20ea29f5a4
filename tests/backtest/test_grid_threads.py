"""How the fused family kernel shares its (symbol, group) items among threads.

Each thread takes a contiguous share of the parallel loop (static scheduling); ``interleave_nb``
maps the iterations so that every item is computed exactly once and every share holds items
from the whole sorted range (a grid's costs grow along its sorted groups).
"""

from __future__ import annotations

import numba
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from research.backtest.families import RUN, interleave_nb


def _items(total: int, ways: int) -> np.ndarray:
    """The item of every iteration, in loop order (``-1`` for iterations past the last item)."""
    per = ((total + RUN - 1) // RUN + ways - 1) // ways
    got = np.array([interleave_nb(it, per, ways) for it in range(ways * per * RUN)], dtype=np.int64)
    return np.where(got < total, got, -1)


@settings(max_examples=200, deadline=None)
@given(total=st.integers(0, 4000), ways=st.integers(1, 8))
def test_every_item_runs_exactly_once(total, ways):
    items = _items(total, ways)
    done = np.sort(items[items >= 0])
    assert np.array_equal(done, np.arange(total))


@settings(max_examples=100, deadline=None)
@given(total=st.integers(200, 4000), ways=st.integers(2, 8))
def test_each_thread_share_carries_an_even_part_of_a_growing_cost(total, ways):
    """Costs growing along the items (cost of item i = i + 1): each contiguous share of the loop
    carries close to ``1 / ways`` of the total, where a plain split would give the last share
    up to ``2 / ways`` of it."""
    if total < 10 * RUN * ways:
        total = 10 * RUN * ways
    items = _items(total, ways)
    shares = np.array_split(items, ways)
    cost = [float(np.sum(s[s >= 0] + 1)) for s in shares]
    fair = total * (total + 1) / 2 / ways
    assert max(cost) <= fair * 1.25
    plain = np.array_split(np.arange(total), ways)
    assert float(np.sum(plain[-1] + 1)) > fair * 1.4  # the imbalance the mapping removes


@pytest.mark.parametrize("family,grid", [
    ("candlestick", {"bullish": ["engulfing", "hammer", "doji"], "bearish": ["engulfing", "shooting_star"],
                     "hold": [1, 3, 7], "take_profit": [0.0, 0.05]}),
    ("time_series_momentum", {"lookback": list(range(1, 60, 3)), "threshold": [0.0, 0.02],
                              "direction": ["long", "both"]}),
])
def test_the_table_is_the_same_on_one_thread_and_on_two(family, grid):
    from research.backtest.family_sweep import sweep_family
    from research.data.sources.sample import SampleSource

    prices = SampleSource().fetch("GOOG", None, None, "1d")
    before = numba.get_num_threads()
    tables = []
    try:
        for threads in (1, min(2, numba.config.NUMBA_NUM_THREADS)):
            numba.set_num_threads(threads)
            tables.append(sweep_family(prices, family, grid, fees=0.001, slippage=0.0005).table)
    finally:
        numba.set_num_threads(before)
    assert tables[0].shape == tables[1].shape and list(tables[0].columns) == list(tables[1].columns)
    for col in tables[0].columns:
        x, y = tables[0][col].to_numpy(), tables[1][col].to_numpy()
        if x.dtype.kind == "f":
            assert np.array_equal(x, y, equal_nan=True), col
        else:
            assert (x == y).all(), col
