"""Fill planning: stops fire at their levels, gaps fill at the open, the adverse level wins a bar."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from research.strategies import REASONS, RiskRules, plan_fills


def _plan(target, o, h, lo, c, rules=None, halt_from=None):
    col = lambda x: np.asarray(x, dtype=float)[:, None]  # noqa: E731
    held, fill, reason = plan_fills(np.asarray(target)[:, None], col(o), open=col(o), high=col(h), low=col(lo),
                                    close=col(c), rules=rules, halt_from=halt_from)
    return held[:, 0].tolist(), fill[:, 0], [REASONS[r] for r in reason[:, 0]]


def test_signal_fills_at_the_execution_price():
    held, fill, why = _plan([0, 1, 1, 0], [10, 11, 12, 13], [10, 11, 12, 13], [10, 11, 12, 13], [10, 11, 12, 13])
    assert held == [0, 1, 1, 0]
    assert np.isnan(fill[0]) and fill[1] == 11 and np.isnan(fill[2]) and fill[3] == 13
    assert why == ["", "signal", "", "signal"]


def test_missing_or_zero_price_defers_the_fill():
    held, fill, why = _plan([0, 1, 1, 1], [10, np.nan, 0.0, 12], [10, 11, 11, 12], [10, 9, 9, 12], [10, 10, 10, 12])
    assert held == [0, 0, 0, 1] and fill[3] == 12 and why[3] == "signal"


def test_stop_loss_intrabar_and_gap():
    rules = RiskRules(stop_loss=0.05)
    # entry at 100; bar 2 trades down to 94: stop at 95
    held, fill, why = _plan([1, 1, 1, 1], [100, 99, 98, 97], [101, 100, 99, 98], [99, 98, 94, 96], [100, 99, 96, 97], rules)
    assert fill[0] == 100 and fill[2] == pytest.approx(95.0) and why[2] == "stop_loss"
    assert held == [1, 1, 0, 0]  # stays flat: the direction did not leave "long"
    # gap below the stop: fills at the open
    held, fill, why = _plan([1, 1, 1], [100, 90, 91], [101, 92, 93], [99, 89, 90], [100, 91, 92], rules)
    assert fill[1] == 90 and why[1] == "stop_loss"


def test_both_levels_in_one_bar_assumes_the_adverse_one():
    rules = RiskRules(stop_loss=0.05, take_profit=0.05)
    held, fill, why = _plan([1, 1], [100, 100], [100, 106], [100, 94], [100, 100], rules)
    assert fill[1] == pytest.approx(95.0) and why[1] == "stop_loss"
    held, fill, why = _plan([1, 1], [100, 100], [100, 106], [100, 99], [100, 100], rules)
    assert fill[1] == pytest.approx(105.0) and why[1] == "take_profit"
    # short side mirrors
    held, fill, why = _plan([-1, -1], [100, 100], [100, 106], [100, 94], [100, 100], rules)
    assert fill[1] == pytest.approx(105.0) and why[1] == "stop_loss"


def test_trailing_stop_follows_the_best_price_including_the_entry_bar():
    rules = RiskRules(trailing_stop=0.10)
    o = [100, 110, 118, 112]
    h = [105, 120, 119, 113]
    lo = [99, 108, 110, 100]
    held, fill, why = _plan([1, 1, 1, 1], o, h, lo, o, rules)
    # best high 120 at bar 1 -> level 108; bar 2 low 110 holds; bar 3 low 100 hits 108
    assert np.isnan(fill[2]) and fill[3] == pytest.approx(108.0) and why[3] == "trailing_stop"


def test_reentry_needs_the_direction_to_leave_the_stopped_side():
    rules = RiskRules(stop_loss=0.05)
    target = [1, 1, 1, 0, 1, 1]
    o = [100, 99, 94, 95, 96, 97]
    held, fill, why = _plan(target, o, [x + 1 for x in o], [x - 1 for x in o], o, rules)
    assert held == [1, 1, 0, 0, 1, 1]
    assert why[2] == "stop_loss" and why[4] == "signal"


def test_halt_closes_and_keeps_flat():
    held, fill, why = _plan([1, 1, 1, 1, 1], [10, 11, 12, 13, 14], [10, 11, 12, 13, 14], [10, 11, 12, 13, 14],
                            [10, 11, 12, 13, 14], halt_from=np.array([2]))
    assert held == [1, 1, 0, 0, 0] and why[2] == "halt"


@pytest.mark.parametrize("bad", [{"stop_loss": 0.0}, {"stop_loss": 1.5}, {"trailing_stop": -0.1}, {"take_profit": 0}])
def test_rules_validate(bad):
    with pytest.raises(ValueError):
        RiskRules(**bad)


def _levels(n, **per_bar):
    return tuple(np.asarray(per_bar.get(k, [0.0] * n), dtype=float)[:, None]
                 for k in ("stop_loss", "take_profit", "trailing_stop"))


def test_levels_per_bar_act_on_their_bars():
    """A stop-loss loosened, then tightened while the position is open: the entry price stays, the level moves."""
    o, h, lo, c = [100, 99, 98, 97, 96], [101, 100, 99, 98, 97], [99, 97.5, 97.5, 96, 95], [100, 99, 98, 97, 96]
    col = lambda x: np.asarray(x, dtype=float)[:, None]  # noqa: E731
    held, fill, reason = plan_fills(np.ones((5, 1)), col(o), open=col(o), high=col(h), low=col(lo), close=col(c),
                                    levels=_levels(5, stop_loss=[0.02, 0.10, 0.02, 0.02, 0.02]))
    # bar 1 reaches 97.5 < 98 under 10%: no stop; bar 2 reaches 97.5 under 2% of the entry 100: stop at 98
    assert held[:, 0].tolist() == [1, 1, 0, 0, 0]
    assert fill[2, 0] == pytest.approx(98.0) and REASONS[reason[2, 0]] == "stop_loss"


@settings(max_examples=40)
@given(seed=st.integers(0, 2**16), sl=st.sampled_from([0.0, 0.01, 0.03, 0.1]), tp=st.sampled_from([0.0, 0.02, 0.06, 1.5]),
       trail=st.sampled_from([0.0, 0.02, 0.04]), at_open=st.booleans())
def test_constant_levels_per_bar_are_the_rules(seed, sl, tp, trail, at_open):
    rng = np.random.default_rng(seed)
    n = 200
    c = 100 * np.exp(np.cumsum(rng.normal(0, 0.02, n)))
    o = np.r_[c[0], c[:-1]] * np.exp(rng.normal(0, 0.005, n))
    h, lo = np.maximum(o, c) * 1.01, np.minimum(o, c) * 0.99
    target = rng.choice([-1, 0, 1], n).repeat(4)[:n]
    col = lambda x: np.asarray(x, dtype=float)[:, None]  # noqa: E731
    args = (target[:, None], col(o))
    kw = {"open": col(o), "high": col(h), "low": col(lo), "close": col(c), "fill_at_open": at_open}
    rules = RiskRules(stop_loss=sl or None, take_profit=tp or None, trailing_stop=trail or None)
    a = plan_fills(*args, **kw, rules=rules)
    b = plan_fills(*args, **kw, levels=_levels(n, stop_loss=[sl] * n, take_profit=[tp] * n, trailing_stop=[trail] * n))
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)


def test_a_schedule_names_a_bad_level():
    import pandas as pd

    from research.strategies.stops import RiskSchedule

    with pytest.raises(ValueError, match="stop_loss levels must be 0 \\(off\\) or in \\(0, 1\\); got 1.5"):
        RiskSchedule(stop_loss=pd.DataFrame({"A": [0.0, 1.5]}))
    with pytest.raises(ValueError, match="max_drawdown"):
        RiskSchedule(max_drawdown=2.0)
